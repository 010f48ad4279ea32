"""The two abstractions every bench source yields: tracks (metadata, lazy audio) and benches."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Label = Literal["ai", "real"]
LABELS: tuple[str, ...] = ("ai", "real")
SPLITS: tuple[str, ...] = ("train", "valid", "test", "all")

AI_TPR_RULE = 0.90
HARD_TPR_RULE = 0.60
REAL_FPR_RULE = 0.05


@dataclass(frozen=True)
class BenchOptions:
    """Source options a bench may use: local audio roots, a v2 protocol split, a hub revision."""

    audio_roots: tuple[Path, ...] = field(default_factory=tuple)
    protocol_split: str | None = None
    revision: str | None = None


class ResolveError(Exception):
    """A track's encoded bytes cannot be found or read (stage `resolve`)."""


@dataclass(frozen=True)
class ShardRef:
    """Where one track's encoded bytes sit inside a parquet shard."""

    path: str
    row_group: int
    row: int
    column: str


AUDIO_COLUMN = "audio"


@dataclass(frozen=True)
class StreamShard:
    """One parquet file: in a hub dataset (`repo` at `revision`, a commit) or on disk (`path`
    alone), with the sha256 and size that identify its bytes."""

    path: str
    sha256: str
    size: int
    repo: str | None = None
    revision: str | None = None
    audio_column: str = AUDIO_COLUMN

    def name(self) -> str:
        return f"{self.repo}@{(self.revision or '')[:12]}/{self.path}" if self.repo else self.path

    def open(self, columns: list[str] | None = None) -> Any:
        """The shard as a streaming `IterableDataset` (only `columns`, when given)."""
        from datasets import load_dataset

        options: dict[str, Any] = {"split": "train", "streaming": True}
        if columns is not None:
            options["columns"] = columns
        if self.repo is None:
            return load_dataset("parquet", data_files=[self.path], **options)
        return load_dataset(self.repo, revision=self.revision, data_files=[self.path], **options)

    def audio(self) -> Iterator[bytes | None]:
        """Each row's encoded audio, in row order."""
        from datasets import Audio

        rows = self.open([self.audio_column])
        if isinstance(rows.features.get(self.audio_column), Audio):
            rows = rows.cast_column(self.audio_column, Audio(decode=False))
        for row in rows:
            value = row[self.audio_column]
            yield value.get("bytes") if isinstance(value, dict) else value


@dataclass(frozen=True)
class StreamRef:
    """Row `row` of `shard`; `error` says why its bytes could not be delivered."""

    shard: StreamShard
    row: int
    error: str | None = None

    def locator(self) -> str:
        return f"parquet-sha256:{self.shard.sha256}#{self.row}"


@dataclass(frozen=True)
class Track:
    """One track's metadata; the audio is read only when `read_bytes` is called."""

    track_id: str
    bench: str
    subset: str
    label: Label
    generator: str
    bench_origin: str
    path: str | None = None
    shard: ShardRef | None = None
    extra: tuple[tuple[str, str], ...] = ()
    stream: StreamRef | None = None
    # A streamed track's bytes, attached in bench order just before it is decoded.
    data: bytes | None = field(default=None, repr=False, compare=False)

    def read_bytes(self) -> bytes:
        if self.stream is not None:
            if not self.data:
                raise ResolveError(self.stream.error or "streamed audio was not delivered")
            return self.data
        if self.shard is not None:
            return _shard_row_bytes(self.shard)
        if self.path is None:
            raise ResolveError("track has no audio location")
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ResolveError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    def locator(self) -> str:
        """A cheap identity of the stored bytes (no read): used to remember their sha256."""
        if self.stream is not None:
            return self.stream.locator()
        ref = self.shard.path if self.shard else self.path
        if ref is None:
            return f"missing:{self.track_id}"
        try:
            st = os.stat(ref)
        except OSError:
            return f"missing:{ref}"
        where = f"#{self.shard.row_group}:{self.shard.row}" if self.shard else ""
        return f"{os.path.abspath(ref)}{where}|{st.st_size}|{st.st_mtime_ns}"


@lru_cache(maxsize=1)  # one row group of encoded audio per process: memory stays flat
def _row_group_audio(path: str, row_group: int, column: str) -> list[bytes | None]:
    import pyarrow.parquet as pq  # here, not at import: listing benches needs no Arrow

    table = pq.ParquetFile(path).read_row_group(row_group, columns=[column])
    col = table.column(column).to_pylist()
    # Hugging Face `Audio` columns are structs {"bytes", "path"}; plain binary columns are bytes.
    return [v["bytes"] if isinstance(v, dict) else v for v in col]


def _shard_row_bytes(ref: ShardRef) -> bytes:
    import pyarrow as pa

    try:
        blob = _row_group_audio(ref.path, ref.row_group, ref.column)[ref.row]
    except (OSError, IndexError, KeyError, ValueError, pa.ArrowException) as exc:
        raise ResolveError(f"cannot read row {ref.row} of {ref.path}: {exc}") from exc
    if not blob:
        raise ResolveError(f"empty audio blob in {ref.path} row {ref.row}")
    if not isinstance(blob, bytes):
        raise ResolveError(f"audio in {ref.path} row {ref.row} is {type(blob).__name__}, not bytes")
    return blob


@dataclass(frozen=True)
class SubsetInfo:
    """A sanity unit: its label and the rule it must meet at the run's threshold."""

    name: str
    label: Label
    hard: bool = False

    @property
    def rule(self) -> dict[str, float | str]:
        if self.label == "real":
            return {"label": "real", "metric": "fpr", "op": "<=", "bound": REAL_FPR_RULE}
        bound = HARD_TPR_RULE if self.hard else AI_TPR_RULE
        return {"label": "ai", "metric": "tpr", "op": ">=", "bound": bound}


@dataclass
class Bench:
    """A named, fingerprinted source of tracks."""

    name: str
    fingerprint: str
    subsets: dict[str, SubsetInfo]
    tracks: list[Track]
    source: dict[str, Any] = field(default_factory=dict)

    def select(self, split: str) -> list[Track]:
        if split == "all":
            return list(self.tracks)
        return [t for t in self.tracks if t.bench_origin == split]

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)


def cohort(tracks: list[Track], n_per_source: int, seed: int) -> list[Track]:
    """The same N tracks per subset for every model: order each subset by sha256("seed:track_id")
    and keep the first N; the bench's order is kept."""
    ranked: dict[str, list[tuple[str, int]]] = {}
    for i, t in enumerate(tracks):
        key = hashlib.sha256(f"{seed}:{t.track_id}".encode()).hexdigest()
        ranked.setdefault(t.subset, []).append((key, i))
    keep = {i for rows in ranked.values() for _, i in sorted(rows)[:n_per_source]}
    return [t for i, t in enumerate(tracks) if i in keep]
