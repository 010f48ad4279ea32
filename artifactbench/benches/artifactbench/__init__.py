"""ArtifactBench (Intrect, CC BY-NC 4.0) in each form it is published in.

`Bench.source["form"]` says which form a bench was read from:

- `hf-shards`: the Hugging Face dataset `intrect/artifactbench`, parquet shards with the audio
  embedded, fetched once (`artifactbench fetch bench artifactbench`) into the harness cache and
  read offline from then on. Its fingerprint is the resolved commit.
- `local-shards`: a directory of such shards (`--bench artifactbench:DIR`).
- `manifest-v1`: `{"bench": [...], "metadata": {...}}`, rows of path, label, source, track_id,
  bench_origin and generator.
- `manifest-v2`: `{"tracks": [...]}`, the v1 fields plus generator_family, generator_version,
  protocol_split, audio_sha256, audio_format and lineage_id.

The real sources are not redistributed, so manifest rows are bound to local files: by
audio_sha256 under the `--audio-root` folders where a row has one, else by path (relative to the
audio roots, or to the manifest's folder without roots; a foreign absolute path is re-bound
under the roots by its trailing folders). With roots, a row's audio_sha256 is binding: a file
found by path must hold those bytes. Without roots it is not checked at load, since that would
read every file. A row that binds to nothing still becomes a track whose read fails at the
`resolve` stage, and is listed in `source["unbound"]`: the bench never shrinks silently.
`source["rows_filtered"]` counts the rows a `--protocol-split` filter left out.

Here: `load_artifactbench`, which opens any of these forms. The package splits the rest by
concern: `hub` (fetching the snapshot and finding it again), `manifest` (reading and validating
v1/v2 manifests), `binding` (finding each manifest row's audio here) and `common` (the name,
splits, cache and subset taxonomy they share).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from artifactbench.benches import catalog
from artifactbench.benches.artifactbench.binding import AUDIO_EXTENSIONS, Binder, UnboundTrack
from artifactbench.benches.artifactbench.common import (
    BENCH_NAME,
    LICENSE,
    ORIGINS,
    Taxonomy,
    default_cache,
    shard_bench,
    with_split,
)
from artifactbench.benches.artifactbench.hub import (
    ALLOW_PATTERNS,
    DEFAULT_REVISION,
    FETCH_COMMAND,
    REPO_ID,
    FetchError,
    fetch_artifactbench,
    fetch_status,
    fetched_snapshot,
)
from artifactbench.benches.artifactbench.manifest import (
    MANIFEST,
    V1_REQUIRED,
    V2_FIELDS,
    V2_REQUIRED,
    parse_manifest,
    parse_row,
)
from artifactbench.benches.base import Bench, BenchOptions, Track
from artifactbench.benches.catalog import PROTOCOL_SPLITS
from artifactbench.benches.shards import read_shard_dir

__all__ = [
    "ALLOW_PATTERNS",
    "AUDIO_EXTENSIONS",
    "BENCH_NAME",
    "DEFAULT_REVISION",
    "EDGE_BYTES",
    "FETCH_COMMAND",
    "LICENSE",
    "MANIFEST",
    "ORIGINS",
    "PROTOCOL_SPLITS",
    "REPO_ID",
    "UNBOUND_LISTED",
    "V1_REQUIRED",
    "V2_FIELDS",
    "V2_REQUIRED",
    "FetchError",
    "UnboundTrack",
    "default_cache",
    "fetch_artifactbench",
    "fetch_status",
    "load_artifactbench",
]

EDGE_BYTES = 1 << 20
UNBOUND_LISTED = 20


def load_artifactbench(
    path: Path | None, options: BenchOptions, cache: Path | None = None
) -> Bench:
    """ArtifactBench from the fetched hub snapshot (`path` None), a shard directory, or a v1/v2
    manifest (a `.json` file, or a directory holding `manifest.json` and no shards).

    Raises a one-line ValueError for anything a run would otherwise miscount.
    """
    cache = cache if cache is not None else default_cache()
    split = options.protocol_split
    if split is not None and split not in PROTOCOL_SPLITS:
        raise ValueError(
            f"unknown protocol split {split!r}; choose from {', '.join(PROTOCOL_SPLITS)}"
        )
    if path is None:
        snapshot, resolved = fetched_snapshot(cache, options.revision)
        provenance = {
            "form": "hf-shards",
            "repo": REPO_ID,
            "revision_requested": options.revision or DEFAULT_REVISION,
            "revision_resolved": resolved,
            "path": str(snapshot),
        }
        fingerprint = f"hf:{REPO_ID}@{resolved or options.revision or DEFAULT_REVISION}"
        return _shard_bench(snapshot, split, fingerprint, provenance)
    if options.revision is not None:
        raise ValueError(f"--revision selects a hub revision; it does not apply to {path}")
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return _manifest_bench(path, options, cache)
    if not path.is_dir():
        raise ValueError(f"ArtifactBench path not found: {path}")
    shard_files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if shard_files:
        digest, files = _shards_digest(path, shard_files)
        provenance = {
            "form": "local-shards",
            "path": str(path),
            "shards": files,
            "shards_sha256": digest,
        }
        return _shard_bench(path, split, f"sha256:{digest}", provenance)
    if (path / MANIFEST).is_file():
        return _manifest_bench(path / MANIFEST, options, cache)
    found = sorted(p.name for p in path.glob("*.json"))
    hint = f"; pass one of its JSON files directly: {', '.join(found[:5])}" if found else ""
    raise ValueError(f"{path} holds no *.parquet shards and no {MANIFEST}{hint}")


def _shard_bench(
    root: Path, split: str | None, fingerprint: str, provenance: dict[str, Any]
) -> Bench:
    taxonomy = Taxonomy()
    tracks = read_shard_dir(root, BENCH_NAME, {}, subset_of=taxonomy.subset_of)
    return shard_bench(tracks, taxonomy, split, fingerprint, provenance, str(root))


def _shards_digest(root: Path, files: list[Path]) -> tuple[str, list[dict[str, Any]]]:
    """A cheap identity of a shard directory: each shard's relative name, size, and sha256 of
    its first and last MiB, hashed together.

    Hashing whole shards would cost a full read of the bench on every load (about 1.6 GB/s from
    the page cache here, far slower from a cold disk, for tens of GB), against milliseconds for
    this. A re-exported shard changes its size or its footer (row group offsets and statistics,
    in the last MiB); an edit of the same size in the middle of a shard goes unnoticed.
    """
    listing = hashlib.sha256()
    entries = []
    for file in files:
        size = file.stat().st_size
        edge = hashlib.sha256()
        with open(file, "rb") as fh:
            edge.update(fh.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                fh.seek(max(EDGE_BYTES, size - EDGE_BYTES))
                edge.update(fh.read())
        name = file.relative_to(root).as_posix()
        entries.append({"name": name, "size": size, "edge_sha256": edge.hexdigest()})
        listing.update(f"{name}\t{size}\t{edge.hexdigest()}\n".encode())
    return listing.hexdigest(), entries


def _manifest_bench(path: Path, options: BenchOptions, cache: Path) -> Bench:
    data = path.read_bytes()
    form, rows, metadata = parse_manifest(path, data)
    taxonomy = Taxonomy()
    seen: dict[str, int] = {}
    parsed = [parse_row(path.name, form, i, row, taxonomy, seen) for i, row in enumerate(rows)]
    split = options.protocol_split
    kept = [r for r in parsed if split is None or dict(r.fields).get("protocol_split") == split]
    binder = Binder(_audio_roots(options), path, cache)
    tracks: list[Track] = []
    unbound: list[str] = []
    bound_by: dict[str, int] = {}
    for row in kept:
        file, how = binder.bind(row)
        extra = (*row.fields, ("group", catalog.group_of(row.source) or ""))
        common = (row.track_id, BENCH_NAME, row.source, row.label, row.generator, row.origin)
        if file is None:
            tracks.append(UnboundTrack(*common, extra=extra, reason=how))
            unbound.append(row.track_id)
        else:
            tracks.append(Track(*common, path=str(file), extra=extra))
            bound_by[how] = bound_by.get(how, 0) + 1
    manifest_sha = hashlib.sha256(data).hexdigest()
    source: dict[str, Any] = {
        "form": form,
        "path": str(path),
        "manifest_sha256": manifest_sha,
        "license": LICENSE,
        "protocol_split": split,
        "audio_roots": [str(r) for r in binder.roots],
        "rows_read": len(parsed),
        "rows_filtered": len(parsed) - len(kept),
        "rows_bound": len(tracks) - len(unbound),
        "rows_unbound": len(unbound),
        "bound_by": dict(sorted(bound_by.items())),
        "unbound": {"count": len(unbound), "first": unbound[:UNBOUND_LISTED]},
    }
    subsets = taxonomy.present(tracks)
    source["extra_subsets"] = [s for s in subsets if s in taxonomy.extra]
    if metadata:
        source["manifest_metadata"] = metadata
    fingerprint = with_split(f"sha256:{manifest_sha}", split)
    return Bench(BENCH_NAME, fingerprint, subsets, tracks, source)


def _audio_roots(options: BenchOptions) -> tuple[Path, ...]:
    roots = tuple(Path(r).expanduser().resolve() for r in options.audio_roots)
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise ValueError(f"--audio-root folder not found: {', '.join(missing)}")
    return roots
