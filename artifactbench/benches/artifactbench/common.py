"""What every form of ArtifactBench shares: its name and license, the splits, where the harness
caches it, and the subset taxonomy a row is checked against (the catalog first)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from artifactbench.benches import catalog
from artifactbench.benches.base import Bench, Label, SubsetInfo, Track
from artifactbench.paths import cache_dir
from artifactbench.util import write_atomic

BENCH_NAME = "artifactbench"
LICENSE = "CC BY-NC 4.0"
ORIGINS = ("train", "test")


def default_cache() -> Path:
    """Where the hub snapshot, its revision record and the audio sha256 index live."""
    return cache_dir() / BENCH_NAME


def write_json(path: Path, value: Any) -> None:
    """Write `value` as JSON to `path` atomically (the hub record, the audio sha256 index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=1, sort_keys=True)))


def with_split(fingerprint: str, split: str | None) -> str:
    """A bench fingerprint that also names the `--protocol-split` filter, if any."""
    return fingerprint if split is None else f"{fingerprint};protocol_split={split}"


class Taxonomy:
    """The subsets rows declare: catalog ones keep the catalog's label and hard flag; any other
    source is accepted with the label its first row gives, and reported as an extra subset."""

    def __init__(self) -> None:
        self.seen: dict[str, SubsetInfo] = {}
        self.extra: set[str] = set()

    def subset_of(self, source: str, label: str | None) -> SubsetInfo:
        if not isinstance(source, str) or not source:
            raise ValueError(f"empty or non-text source {source!r}")
        info = self.seen.get(source)
        if info is None:
            if source in catalog.AI_SUBSETS or source in catalog.REAL_SUBSETS:
                kind = "ai" if source in catalog.AI_SUBSETS else "real"
                info = SubsetInfo(source, kind, source in catalog.HARD_SUBSETS)
            elif label is None:
                raise ValueError(
                    f"source {source!r} is not in the ArtifactBench catalog and there is no "
                    "label column to say whether it is ai or real"
                )
            else:
                info = SubsetInfo(source, cast(Label, label))
                self.extra.add(source)
            self.seen[source] = info
        if label is not None and label != info.label:
            origin = "its first row" if source in self.extra else "the catalog"
            raise ValueError(
                f"label {label!r} contradicts subset {source!r} ({info.label}, from {origin})"
            )
        return info

    def present(self, tracks: Iterable[Track]) -> dict[str, SubsetInfo]:
        """The subsets of `tracks`: the catalog's in catalog order, then the extra ones sorted."""
        names = {t.subset for t in tracks}
        order = [*catalog.AI_SUBSETS, *catalog.REAL_SUBSETS, *sorted(self.extra)]
        return {name: self.seen[name] for name in order if name in names}


def with_group(track: Track) -> Track:
    """The track with the paper's group of its subset in `extra` ("" outside the catalog)."""
    return replace(track, extra=(*track.extra, ("group", catalog.group_of(track.subset) or "")))


def shard_bench(
    tracks: list[Track],
    taxonomy: Taxonomy,
    split: str | None,
    fingerprint: str,
    provenance: dict[str, Any],
    where: str,
) -> Bench:
    """The bench from every track of a set of shards (`where` names them in messages): the
    `--protocol-split` filter, the groups, and the provenance with its row counts."""
    read = len(tracks)
    if split is not None:
        if not any(k == "protocol_split" for t in tracks for k, _ in t.extra):
            raise ValueError(
                f"--protocol-split needs a v2 manifest or shards with a protocol_split column; "
                f"{where} has none"
            )
        tracks = [t for t in tracks if dict(t.extra).get("protocol_split") == split]
    tracks = [with_group(t) for t in tracks]
    source = {
        **provenance,
        "license": LICENSE,
        "protocol_split": split,
        "rows_read": read,
        "rows_filtered": read - len(tracks),
        "rows_bound": len(tracks),
        "rows_unbound": 0,
        "unbound": {"count": 0, "first": []},
    }
    subsets = taxonomy.present(tracks)
    source["extra_subsets"] = [s for s in subsets if s in taxonomy.extra]
    return Bench(BENCH_NAME, with_split(fingerprint, split), subsets, tracks, source)
