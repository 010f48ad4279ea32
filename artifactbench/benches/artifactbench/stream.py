"""`--bench artifactbench:hub`: ArtifactBench streamed from the Hugging Face hub at a pinned
commit through `datasets`, without fetching it first.

The revision (`--revision`, default `main`) is resolved to a commit once; the parquet shards
are listed at that commit with the sha256 and size the hub records for each, and every read
names the commit. The bench fingerprint is a digest of (path, size, sha256) over the shards, so
the same files streamed from the hub or read from a local copy (`stream_local`, the
`load_dataset("parquet", ...)` path) give the same fingerprint, tracks and locators. The
fetched snapshot (`fetch bench artifactbench`, then `--bench artifactbench`) stays the way to
run offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from artifactbench.benches.artifactbench.common import BENCH_NAME, Taxonomy, shard_bench
from artifactbench.benches.artifactbench.hub import DEFAULT_REVISION, REPO_ID
from artifactbench.benches.base import Bench
from artifactbench.benches.catalog import PROTOCOL_SPLITS
from artifactbench.benches.shards import tracks_from_rows
from artifactbench.benches.streamed import StreamRef, StreamShard, shard_metadata
from artifactbench.errors import FetchError
from artifactbench.paths import hub_offline
from artifactbench.util import sha256_file


def hub_shards(revision: str | None) -> tuple[str, list[StreamShard]]:
    """The commit `revision` resolves to and the dataset's parquet shards at that commit."""
    requested = revision or DEFAULT_REVISION
    if hub_offline():
        raise FetchError(
            f"artifactbench:hub streams {REPO_ID}@{requested} from the Hugging Face hub and "
            "HF_HUB_OFFLINE is set: run offline from the fetched snapshot (`artifactbench fetch "
            "bench artifactbench` where the hub is reachable, then --bench artifactbench)"
        )
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        commit = api.dataset_info(REPO_ID, revision=requested).sha
        files = [
            f
            for f in api.list_repo_tree(
                REPO_ID, repo_type="dataset", revision=commit, recursive=True
            )
            if getattr(f, "size", None) is not None and f.path.endswith(".parquet")
        ]
    except Exception as exc:  # noqa: BLE001 - the hub's errors vary by version; one line each
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise FetchError(
            f"cannot stream {REPO_ID}@{requested}: {reason}; the Hugging Face hub must be "
            "reachable (or run offline: `artifactbench fetch bench artifactbench`, then "
            "--bench artifactbench)"
        ) from exc
    if commit is None or not files:
        raise FetchError(f"{REPO_ID}@{requested} holds no parquet shards")
    shards = [
        StreamShard(f.path, _hub_sha256(f, commit), f.size, REPO_ID, commit)
        for f in sorted(files, key=lambda f: f.path)
    ]
    return commit, shards


def _hub_sha256(entry: Any, commit: str) -> str:
    """The hub's record of an LFS file's sha256; a small file stored in git is read to hash."""
    if entry.lfs is not None:
        return entry.lfs.sha256
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(REPO_ID, entry.path, repo_type="dataset", revision=commit)
    return sha256_file(Path(path))


def local_shards(root: Path) -> list[StreamShard]:
    """The parquet files under `root` (each read once to hash it), named relative to `root`."""
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file())
    if not files:
        raise ValueError(f"no parquet shards under {root}")
    return [StreamShard(str(p), sha256_file(p), p.stat().st_size) for p in files]


def stream_hub(revision: str | None, split: str | None = None) -> Bench:
    commit, shards = hub_shards(revision)
    provenance = {
        "form": "hf-stream",
        "repo": REPO_ID,
        "revision_requested": revision or DEFAULT_REVISION,
        "revision_resolved": commit,
    }
    return streamed_bench(shards, split, provenance, root=None)


def stream_local(root: Path, split: str | None = None) -> Bench:
    provenance = {"form": "local-stream", "path": str(root)}
    return streamed_bench(local_shards(root), split, provenance, root=root)


def streamed_bench(
    shards: list[StreamShard], split: str | None, provenance: dict[str, Any], root: Path | None
) -> Bench:
    """The bench from the shards' metadata columns; audio is delivered when tracks decode."""
    if split is not None and split not in PROTOCOL_SPLITS:
        raise ValueError(
            f"unknown protocol split {split!r}; choose from {', '.join(PROTOCOL_SPLITS)}"
        )
    taxonomy = Taxonomy()
    seen: dict[str, str] = {}
    tracks = []
    listing = hashlib.sha256()
    entries = []
    for shard in shards:
        name = Path(shard.path).relative_to(root).as_posix() if root else shard.path
        columns, count = shard_metadata(shard)
        places = [(f"{name} row {row}", {"stream": StreamRef(shard, row)}) for row in range(count)]
        tracks += tracks_from_rows(columns, places, BENCH_NAME, taxonomy.subset_of, seen)
        listing.update(f"{name}\t{shard.size}\t{shard.sha256}\n".encode())
        entries.append({"name": name, "size": shard.size, "sha256": shard.sha256, "rows": count})
    provenance = {**provenance, "shards": entries}
    fingerprint = f"parquet-sha256:{listing.hexdigest()}"
    where = "the streamed shards"
    return shard_bench(tracks, taxonomy, split, fingerprint, provenance, where)
