"""The unbounded twin of a trained open ArtifactNet: the second model of the bounded-mask
ablation, trained exactly as the first (bench, tracks, seed, schedule, phases) but for the bound,
and cached by the first model's sha256 so it is trained once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from artifactbench.benches.base import Bench
from artifactbench.experiments.artifactnet_open.train import (
    WEIGHTS_FILE,
    Schedule,
    ids_sha256,
    train,
)
from artifactbench.paths import cache_dir
from artifactbench.progress import ProgressHook
from artifactbench.util import sha256_file


def unbounded_twin(
    weights: Path,
    bench: Bench,
    *,
    workers: int = 1,
    say: Callable[[str], None] | None = None,
    bars: ProgressHook | None = None,
) -> Path:
    """The unbounded twin of `weights`: the cached one, else trained now (`say` tells why a
    first ablation takes a training's time) and cached in the harness cache."""
    twin_dir = cache_dir() / "artifactnet-open" / f"unbounded-twin-{sha256_file(weights)[:16]}"
    if (twin_dir / WEIGHTS_FILE).is_file():
        return twin_dir / WEIGHTS_FILE
    if say is not None:
        say(
            f"training the unbounded twin of {weights.name} on {bench.name!r} as it was trained "
            f"(once; cached in {twin_dir})"
        )
    return train_twin(
        weights, bench, twin_dir, bounded=False, workers=workers, progress=say, bars=bars
    )


def train_twin(
    weights: Path,
    bench: Bench,
    out_dir: Path,
    *,
    bounded: bool,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    bars: ProgressHook | None = None,
    demucs_dir: Path | None = None,
) -> Path:
    """Train a model exactly as `weights` was trained (bench, train tracks, seed, schedule,
    phases, size) but for the mask bound: the second model of the bounded-mask ablation.

    The bench must be the one `weights` was trained on (same fingerprint); resumable like
    `train`, so an interrupted twin continues from its last phase."""
    blob = torch.load(weights, map_location="cpu", weights_only=True)
    meta = dict(blob.get("meta", {}))
    needed = {"bench_fingerprint", "seed", "small", "schedule", "phases"}
    missing = sorted(needed - set(meta))
    if missing:
        raise ValueError(f"{weights} does not record how it was trained (missing {missing})")
    if meta["bench_fingerprint"] != bench.fingerprint:
        raise ValueError(
            f"{weights} was trained on bench {meta.get('bench')!r} "
            f"(fingerprint {str(meta['bench_fingerprint'])[:12]}), not on {bench.name!r} "
            f"({bench.fingerprint[:12]}); give that bench"
        )
    pool = bench.select("train")
    if "train_track_ids" in meta:
        wanted = set(meta["train_track_ids"])
        pool = [t for t in pool if t.track_id in wanted]
    if ids_sha256(sorted(t.track_id for t in pool)) != meta.get("train_track_ids_sha256"):
        raise ValueError(f"the train tracks of {weights} are not all in bench {bench.name!r}")
    return train(
        bench,
        out_dir,
        tracks=pool,
        small=bool(meta["small"]),
        seed=int(meta["seed"]),
        phases=list(meta["phases"]),
        workers=workers,
        progress=progress,
        schedule=Schedule(**meta["schedule"]),
        bars=bars,
        bounded=bounded,
        teacher=str(meta.get("teacher") or "hpss").split(":")[0],
        demucs_dir=demucs_dir,
    )
