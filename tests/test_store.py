"""The score store: keys, idempotent writes, all-or-nothing batches, the locator index."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore

KEY = ScoreKey("det", "w1", "p1")


def test_write_fetch_and_rewrite_do_not_duplicate(tmp_path: Path) -> None:
    with ScoreStore(tmp_path / "s.sqlite") as store:
        store.write([(KEY, "a", ScoreRow(0.9, "scored", None, None, 0.1))], [("loc-a", "a")])
        store.write([(KEY, "a", ScoreRow(0.8, "scored", None, None, 0.2))])
        store.write([(KEY, "b", ScoreRow(None, "failed", "decode", "bad", 0.0))])
        assert store.scored_audio(KEY) == {"a", "b"}
        assert store.scored_audio(ScoreKey("det", "w2", "p1")) == set()
        rows = store.fetch(KEY, ["a", "b", "a", "zzz"])
        assert rows["a"].prob == 0.8 and rows["b"].stage == "decode" and "zzz" not in rows
        assert store.known_audio(["loc-a", "loc-x"]) == {"loc-a": "a"}
        count = store._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        assert count == 2


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    with ScoreStore(tmp_path / "s.sqlite") as store:
        good = (KEY, "a", ScoreRow(0.5, "scored", None, None, 0.1))
        broken = (KEY, "b", ScoreRow(0.5, "bogus-status", None, None, 0.1))
        with pytest.raises(Exception, match="CHECK"):
            store.write([good, broken], [("loc-a", "a")])
        assert store.scored_audio(KEY) == set()
        assert store.known_audio(["loc-a"]) == {}


def test_store_survives_reopening(tmp_path: Path) -> None:
    with ScoreStore(tmp_path / "s.sqlite") as store:
        store.write([(KEY, "a", ScoreRow(0.25, "scored", None, None, 0.1))])
    with ScoreStore(tmp_path / "s.sqlite") as store:
        assert store.fetch(KEY, ["a"])["a"].prob == 0.25


def test_a_store_written_before_notes_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE scores (detector TEXT NOT NULL, weights_sha256 TEXT NOT NULL, "
        "protocol TEXT NOT NULL, audio_sha256 TEXT NOT NULL, prob REAL, status TEXT NOT NULL, "
        "stage TEXT, error TEXT, seconds REAL NOT NULL, "
        "PRIMARY KEY (detector, weights_sha256, protocol, audio_sha256)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO scores VALUES ('det', 'w1', 'p1', 'a', 0.4, 'scored', NULL, NULL, 1)")
    db.commit()
    db.close()
    with ScoreStore(path) as store:
        assert store.fetch(KEY, ["a"])["a"] == ScoreRow(0.4, "scored", None, None, 1.0, None)
        store.write([(KEY, "b", ScoreRow(0.6, "scored", None, None, 0.1, "a note"))])
        assert store.fetch(KEY, ["b"])["b"].note == "a note"
