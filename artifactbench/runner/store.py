"""The score store: every score or failure, keyed by what determines it, safe against SIGKILL.

A score is a pure function of (detector id, weights sha256, protocol hash, audio sha256), so that
tuple is the key: a rerun, a resumed run or a run over a bench holding the same audio twice looks
the answer up instead of calling the model. SQLite in WAL mode with one transaction per batch
means a killed run loses at most the batch in flight and never writes half a row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    detector TEXT NOT NULL,
    weights_sha256 TEXT NOT NULL,
    protocol TEXT NOT NULL,
    audio_sha256 TEXT NOT NULL,
    prob REAL,
    status TEXT NOT NULL CHECK (status IN ('scored', 'failed')),
    stage TEXT,
    error TEXT,
    seconds REAL NOT NULL,
    note TEXT,
    PRIMARY KEY (detector, weights_sha256, protocol, audio_sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audio_index (
    locator TEXT PRIMARY KEY,
    audio_sha256 TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ScoreKey:
    """Which model, with which weights, under which protocol: the store's namespace."""

    detector: str
    weights_sha256: str
    protocol: str


@dataclass(frozen=True)
class ScoreRow:
    prob: float | None
    status: str
    stage: str | None
    error: str | None
    seconds: float
    note: str | None = None  # what the model reported besides P(AI), e.g. excluded chunks


class ScoreStore:
    """One SQLite file shared by every run written to the same output directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Answers committed through this handle (what an interrupted run keeps), and when the
        # first and the last were committed (Unix time), for the run's timeline.
        self.written = 0
        self.first_write: float | None = None
        self.last_write: float | None = None
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(scores)")}
        if "note" not in columns:  # a store written before notes existed
            self._db.execute("ALTER TABLE scores ADD COLUMN note TEXT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known_audio(self, locators: Iterable[str]) -> dict[str, str]:
        """sha256 of the bytes behind each locator seen before (locators change with the file)."""
        wanted = list(locators)
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 900):
            part = wanted[start : start + 900]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT locator, audio_sha256 FROM audio_index WHERE locator IN ({marks})", part
            )
            found.update(rows)
        return found

    def scored_audio(self, key: ScoreKey) -> set[str]:
        """Every audio sha256 that already has an answer under `key`."""
        rows = self._db.execute(
            "SELECT audio_sha256 FROM scores WHERE detector=? AND weights_sha256=? AND protocol=?",
            (key.detector, key.weights_sha256, key.protocol),
        )
        return {r[0] for r in rows}

    def fetch(self, key: ScoreKey, audio: Iterable[str]) -> dict[str, ScoreRow]:
        wanted = list(set(audio))
        out: dict[str, ScoreRow] = {}
        for start in range(0, len(wanted), 900):
            part = wanted[start : start + 900]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                "SELECT audio_sha256, prob, status, stage, error, seconds, note FROM scores WHERE "
                f"detector=? AND weights_sha256=? AND protocol=? AND audio_sha256 IN ({marks})",
                (key.detector, key.weights_sha256, key.protocol, *part),
            )
            for sha, *fields in rows:
                out[sha] = ScoreRow(*fields)
        return out

    def write(
        self,
        results: Iterable[tuple[ScoreKey, str, ScoreRow]],
        locators: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write one batch of answers and the locators they came from in one transaction."""
        results = list(results)
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO audio_index (locator, audio_sha256) VALUES (?, ?)",
                list(locators),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO scores (detector, weights_sha256, protocol, audio_sha256, "
                "prob, status, stage, error, seconds, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        k.detector,
                        k.weights_sha256,
                        k.protocol,
                        sha,
                        r.prob,
                        r.status,
                        r.stage,
                        r.error,
                        r.seconds,
                        r.note,
                    )
                    for k, sha, r in results
                ],
            )
        self.written += len(results)
        if results:
            self.last_write = time.time()
            self.first_write = self.first_write or self.last_write

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
