"""Parquet shards read through `datasets` streaming: a run starts before a bench is downloaded.

A shard is opened with `load_dataset(..., streaming=True)`, from a Hugging Face dataset at a
commit or from local files (`load_dataset("parquet", data_files=...)`), through the same
Parquet reader either way. The track list comes from one pass that asks for the metadata
columns only (the HTTP reads go in blocks, which may cover some audio); the audio column stays
encoded (`Audio(decode=False)`: decoding is ours) and reaches each
track in bench order (`Delivery`, called by the decode pool as it hands tracks to workers),
one shard stream open at a time, so memory holds one row group of encoded audio, not the
bench. A shard whose tracks the score store already answers is never streamed for its audio:
a resumed run streams only what is left. A track's locator is its shard's sha256 and row, the
same on the hub and on a local copy of the same files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from artifactbench.benches.base import StreamRef, StreamShard, Track

__all__ = ["Delivery", "StreamRef", "StreamShard", "shard_metadata"]


def shard_metadata(shard: StreamShard) -> tuple[dict[str, list], int]:
    """The shard's columns other than audio, as lists, and its row count (audio not asked for)."""
    names = [c for c in shard.open().features if c != shard.audio_column]
    columns: dict[str, list] = {name: [] for name in names}
    count = 0
    for row in shard.open(names):
        for name in names:
            columns[name].append(row[name])
        count += 1
    return columns, count


class Delivery:
    """Attaches streamed tracks' bytes, reading each shard forward once.

    Tracks arrive in bench order (a resumed run skips some); a track before the stream's
    position reopens its shard. A failed read is recorded on the track (stage `resolve`,
    retried by the next run), never raised here."""

    def __init__(self) -> None:
        self._shard: StreamShard | None = None
        self._rows: Iterator[bytes | None] | None = None
        self._at = 0

    def __call__(self, items: Sequence[tuple[int, Track]]) -> list[tuple[int, Track]]:
        return [(i, self._attach(t)) for i, t in items]

    def close(self) -> None:
        """End the open shard stream: its reader threads stop now, not at interpreter exit
        (where an unfinished Arrow reader can abort the process)."""
        rows, self._rows = self._rows, None
        if rows is not None:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _attach(self, track: Track) -> Track:
        ref = track.stream
        if ref is None or track.data is not None:
            return track
        try:
            if self._rows is None or self._shard != ref.shard or self._at > ref.row:
                self.close()
                self._shard, self._rows, self._at = ref.shard, ref.shard.audio(), 0
            while self._at < ref.row:
                next(self._rows)
                self._at += 1
            blob = next(self._rows)
            self._at += 1
        except StopIteration:
            self.close()
            return _failed(track, f"{ref.shard.name()} has no row {ref.row}")
        except Exception as exc:  # noqa: BLE001 - any failure of the stream fails this track only
            self.close()  # a broken stream is reopened for the next track
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            return _failed(track, f"cannot stream {ref.shard.name()} row {ref.row}: {reason}")
        if not isinstance(blob, bytes) or not blob:
            what = "empty" if not blob else type(blob).__name__
            return _failed(track, f"audio in {ref.shard.name()} row {ref.row} is {what}")
        return replace(track, data=blob)


def _failed(track: Track, reason: str) -> Track:
    assert track.stream is not None
    return replace(track, stream=replace(track.stream, error=reason))
