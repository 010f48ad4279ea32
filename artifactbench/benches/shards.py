"""Tracks from Hugging Face style parquet shards: metadata read eagerly, audio left in place.

Only the metadata columns are read here. Each track keeps a `ShardRef` (file, row group, row
within the group) so `Track.read_bytes` later reads just the one row group holding its audio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from artifactbench.benches.base import AUDIO_COLUMN, LABELS, ShardRef, SubsetInfo, Track

REQUIRED_COLUMNS = ("track_id", "source", "label")
# Columns that become Track fields; every other metadata column is kept in Track.extra.
TRACK_COLUMNS = ("track_id", "source", "label", "generator", "bench_origin")
DEFAULT_ORIGIN = "test"
# (source, the row's label or None when the shard has no label column) -> its subset, or a
# ValueError saying why the row is refused.
SubsetLookup = Callable[[str, str | None], SubsetInfo]


def read_shard_dir(
    root: Path,
    bench_name: str,
    subsets: dict[str, SubsetInfo],
    audio_column: str = AUDIO_COLUMN,
    *,
    subset_of: SubsetLookup | None = None,
) -> list[Track]:
    """Every track of every `*.parquet` under `root` (sorted, recursive), in file/row order.

    `source` names the subset and must be one of `subsets`, with the same label. A bench whose
    shards may carry other sources, or no label column, passes `subset_of` instead: it decides
    each row's subset (and so the label of a row without one), raising ValueError to refuse it;
    the label column is then optional. A missing `generator` column falls back to the source
    name and a missing `bench_origin` to "test" (a benchmark with no declared split is all
    test). Refuses, naming the shard and row, anything a run could silently miscount: a missing
    column, an empty id, an unknown label or subset, a label contradicting its subset, or a
    track_id seen twice.
    """
    shards = sorted(p for p in Path(root).rglob("*.parquet") if p.is_file())
    if not shards:
        raise ValueError(f"no parquet shards under {root}")
    lookup = subset_of or _lookup_in(subsets, bench_name)
    required = REQUIRED_COLUMNS if subset_of is None else ("track_id", "source")
    tracks: list[Track] = []
    seen: dict[str, str] = {}
    for shard in shards:
        tracks.extend(_read_shard(shard, bench_name, lookup, required, audio_column, seen))
    return tracks


def _lookup_in(subsets: dict[str, SubsetInfo], bench_name: str) -> SubsetLookup:
    def lookup(source: str, label: str | None) -> SubsetInfo:
        if source not in subsets:
            raise ValueError(f"source {source!r} is not a subset of {bench_name}")
        return subsets[source]

    return lookup


def _read_shard(
    shard: Path,
    bench_name: str,
    subset_of: SubsetLookup,
    required: tuple[str, ...],
    audio_column: str,
    seen: dict[str, str],
) -> list[Track]:
    pf = pq.ParquetFile(shard)
    names = pf.schema_arrow.names
    missing = [c for c in (*required, audio_column) if c not in names]
    if missing:
        raise ValueError(f"{shard}: missing required column(s) {', '.join(missing)}")
    meta_columns = [c for c in names if c != audio_column]
    table = pf.read(columns=meta_columns)
    columns = {name: table.column(name).to_pylist() for name in meta_columns}
    places = [
        (f"{shard} row {i} (row group {group}, row {row})",
         {"shard": ShardRef(str(shard), group, row, audio_column)})
        for i, (group, row) in enumerate(
            (group, row)
            for group in range(pf.metadata.num_row_groups)
            for row in range(pf.metadata.row_group(group).num_rows)
        )
    ]  # fmt: skip
    return tracks_from_rows(columns, places, bench_name, subset_of, seen)


def tracks_from_rows(
    columns: dict[str, list],
    places: list[tuple[str, dict[str, Any]]],
    bench_name: str,
    subset_of: SubsetLookup,
    seen: dict[str, str],
) -> list[Track]:
    """One track per row of metadata `columns`; `places[i]` is the row's name for messages and
    where its audio is (the Track fields `shard` or `stream`). Refuses what `read_shard_dir`
    says, naming the row."""
    extra_names = [c for c in columns if c not in TRACK_COLUMNS]
    tracks = []
    for i, (where, location) in enumerate(places):
        track_id = columns["track_id"][i]
        if not track_id:
            raise ValueError(f"{where}: empty track_id")
        track_id = str(track_id)
        if track_id in seen:
            raise ValueError(f"{where}: duplicate track_id {track_id!r}, first at {seen[track_id]}")
        seen[track_id] = where
        label = columns["label"][i] if "label" in columns else None
        if "label" in columns and label not in LABELS:
            raise ValueError(f"{where}: unknown label {label!r} (expected one of {LABELS})")
        source = columns["source"][i]
        try:
            subset = subset_of(source, label)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        if label is not None and subset.label != label:
            raise ValueError(
                f"{where}: label {label!r} contradicts subset {source!r} ({subset.label})"
            )
        generator = columns["generator"][i] if "generator" in columns else None
        origin = columns["bench_origin"][i] if "bench_origin" in columns else None
        extra = tuple(
            (name, str(columns[name][i])) for name in extra_names if columns[name][i] is not None
        )
        tracks.append(
            Track(
                track_id=track_id,
                bench=bench_name,
                subset=source,
                label=subset.label,
                generator=str(generator) if generator is not None else source,
                bench_origin=str(origin) if origin is not None else DEFAULT_ORIGIN,
                extra=extra,
                **location,
            )
        )
    return tracks
