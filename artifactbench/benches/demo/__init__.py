"""The embedded demo bench: synthesized music, real and through AI-generator mechanisms.

It needs no download, builds once into the cache (288 tracks, about 300 MB, a few minutes of
CPU on two workers), and is laid out exactly like the Hugging Face ArtifactBench shards, so the
whole harness (decode, detectors, metrics, sanity, reports) can be exercised and tested end to
end offline. Each AI subset applies a genuine signal process (see `artifacts.py`); each real
subset is the same kind of music through real-world chains (lossless, lossy codecs, a live
room, an analogue transfer) that a detector must not flag.

Every track is a pure function of (seed, subset, index), so a bench is reproducible bit for bit
whatever the number of worker processes, their thread settings or the CPU they run on: rendering
uses only the portable arithmetic of `synth/` (no CPU-dispatched NumPy kernels, no BLAS sums),
and the encoders are asked for bit-exact output (no version strings, no random serials).
What remains tied to the install is the encoders themselves: another FFmpeg, LAME or libopus may
encode the same samples to other bytes, and libopus also picks SIMD kernels by CPU at run time,
so the Opus subset's bytes (and with them the fingerprint) can differ between CPUs even with the
same install; what it is given to encode does not. The fingerprint covers each track's metadata
and the sha256 of its encoded bytes, not the parquet files that hold them, so another pyarrow,
another compression library or another row grouping leaves it unchanged.

Here: opening the bench (`load_demo_bench`, generated on first use) and where it is cached. The
package splits the rest by concern: `subsets` (each subset's recipe and the rendering of one
track), `generate` (rendering every track in workers and writing the shards), `artifacts` (the
AI-generator mechanisms) and `synth/` (the synthesized music and its portable arithmetic).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from artifactbench.benches.base import Bench, SubsetInfo
from artifactbench.benches.demo.generate import (
    BENCH_NAME,
    GENERATOR_VERSION,
    ROW_GROUP,
    SCHEMA,
    SHARD_ROWS,
    build_demo_bench,
    content_records,
    fingerprint,
    track_record,
)
from artifactbench.benches.demo.subsets import (
    DEMO_SUBSETS,
    DemoSubset,
    encode_track,
    encoder_input,
    model_rng,
    render_track,
    track_rng,
)
from artifactbench.benches.shards import read_shard_dir
from artifactbench.paths import cache_dir
from artifactbench.progress import ProgressHook

__all__ = [
    "BENCH_NAME",
    "DEFAULT_BUILD",
    "DEMO_SUBSETS",
    "GENERATOR_VERSION",
    "ROW_GROUP",
    "SCHEMA",
    "SHARD_ROWS",
    "DemoSubset",
    "ProgressHook",
    "build_demo_bench",
    "content_records",
    "default_root",
    "encode_track",
    "encoder_input",
    "fingerprint",
    "load_demo_bench",
    "model_rng",
    "render_track",
    "track_record",
    "track_rng",
]

DEFAULT_BUILD: dict[str, Any] = {"tracks_per_subset": 24, "seconds": (8.0, 20.0)}


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / "bench.json"
    manifest = json.loads(path.read_text())
    for shard in manifest["shards"]:
        file = root / shard["file"]
        if not file.is_file() or file.stat().st_size != shard["bytes"]:
            raise ValueError(f"{root}: shard {shard['file']} is missing or changed size")
    return manifest


def _build_params(build_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The parameters that decide a bench's content (workers never does)."""
    params = {**DEFAULT_BUILD, **{k: v for k, v in build_kwargs.items() if k != "workers"}}
    params["seconds"] = [float(x) for x in params["seconds"]]
    return params


def default_root(seed: int = 0, **build_kwargs: Any) -> Path:
    """`cache_dir()/demo-v<version>-seed<seed>`, suffixed by a hash of any non-default size."""
    name = f"demo-v{GENERATOR_VERSION}-seed{seed}"
    params = _build_params(build_kwargs)
    if params != _build_params({}):
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        name += f"-{digest[:10]}"
    return cache_dir() / name


def load_demo_bench(
    seed: int = 0,
    root: Path | None = None,
    *,
    progress: ProgressHook | None = None,
    **build_kwargs: Any,
) -> Bench:
    """The demo bench, generated on first use (in the cache, or at `root`) and read from shards.

    `progress` (label, total) -> advance(n) follows a generation, one step per track; it is
    never called when the bench is already there.
    """
    root = Path(root) if root is not None else default_root(seed, **build_kwargs)
    if not (root / "bench.json").is_file():
        try:
            build_demo_bench(root, seed=seed, progress=progress, **build_kwargs)
        except FileExistsError:
            if not (root / "bench.json").is_file():
                raise
    manifest = _read_manifest(root)
    wanted = {"generator_version": GENERATOR_VERSION, "seed": seed}
    wanted |= {k: v for k, v in _build_params(build_kwargs).items() if k in build_kwargs}
    stale = {k: manifest.get(k) for k, v in wanted.items() if manifest.get(k) != v}
    if stale:
        raise ValueError(
            f"{root} holds a demo bench with {stale}, not {wanted}: remove it or use another root"
        )
    subsets = {
        s["name"]: SubsetInfo(s["name"], s["label"], bool(s["hard"])) for s in manifest["subsets"]
    }
    return Bench(
        name=BENCH_NAME,
        fingerprint=fingerprint(manifest),
        subsets=subsets,
        tracks=read_shard_dir(root, BENCH_NAME, subsets),
        source={
            "kind": "demo",
            "root": str(root),
            "seed": str(seed),
            "generator_version": str(GENERATOR_VERSION),
        },
    )
