"""The open ArtifactNet's side flows end to end, as the command line and the recipes call them:
which weights, which bench views, and where the results are written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.benches.base import Bench
from artifactbench.progress import ProgressHook, no_progress

ABLATION_TARGETS = ("all", "bounded-mask")


def open_weights(weights: Path | None) -> Path:
    """`weights` when given, else the demo model shipped in the package; ValueError when the
    file is not there, with the command that trains one."""
    from artifactbench.assets import packaged_dir
    from artifactbench.detectors.artifactnet_open.detector import TRAIN_HINT
    from artifactbench.experiments.artifactnet_open.train import WEIGHTS_FILE

    if weights is not None:
        if not Path(weights).is_file():
            raise ValueError(f"weights not found: {weights}")
        return Path(weights)
    shipped = packaged_dir() / WEIGHTS_FILE
    if not shipped.is_file():
        raise ValueError(f"no trained artifactnet-open weights; give --weights or: {TRAIN_HINT}")
    return shipped


def bench_views(
    bench: Bench,
    split: str,
    limit: int | None,
    workers: int,
    progress: ProgressHook,
    label: str,
) -> Iterator[tuple[np.ndarray, str]]:
    """(7-chunk view, label) per decodable track of a bench split, as the ArtifactNet card
    decodes it; a seeded sample of `limit` tracks when given. A track counts in `progress`
    when the consumer asks for the next one, i.e. once it has been used."""
    from artifactbench.audio.pool import decode_stream
    from artifactbench.detectors.registry import cards
    from artifactbench.runner import select_tracks

    _, tracks = select_tracks(bench, split, None, limit, seed=0)
    view = cards()["artifactnet"].view
    advance = progress(label, len(tracks))
    for decoded in decode_stream(list(enumerate(tracks)), [view], workers):
        if decoded.views is not None:
            yield decoded.views[0], tracks[decoded.index].label
        advance(1)


def ablation_choices() -> tuple[str, ...]:
    """What `ablate` accepts: every channel, `all`, and the bounded-mask comparison."""
    from artifactbench.experiments.artifactnet_open.ablate import ABLATIONS

    return (*ABLATION_TARGETS, *ABLATIONS)


def check_ablation(channel: str, unbounded_weights: Path | None) -> None:
    """ValueError when the choice cannot mean anything, before any bench is opened."""
    choices = ablation_choices()
    if channel not in choices:
        raise ValueError(f"unknown channel {channel!r}; choose from: {', '.join(choices)}")
    if unbounded_weights is not None and channel != "bounded-mask":
        raise ValueError("--unbounded-weights goes with bounded-mask only")


def run_ablation(
    channel: str,
    bench: Bench,
    split: str,
    out: Path,
    *,
    weights: Path | None = None,
    unbounded_weights: Path | None = None,
    workers: int = 1,
    progress: ProgressHook = no_progress,
    say: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Appendix B on a bench split: one channel ablation, all of them, or the bounded-mask
    comparison (training the unbounded twin on first use). Writes ablation.md and
    ablation.json into a new run directory; returns the result and that directory.
    ValueError for a wrong choice or unusable weights, before any work."""
    from artifactbench.experiments.artifactnet_open.ablate import (
        ablate,
        compare_mask_bound,
        render_json,
        render_markdown,
    )
    from artifactbench.experiments.artifactnet_open.twin import unbounded_twin
    from artifactbench.runner import new_run_dir

    check_ablation(channel, unbounded_weights)
    path = open_weights(weights)
    twin = open_weights(unbounded_weights) if unbounded_weights else None
    if channel == "bounded-mask" and twin is None:
        twin = unbounded_twin(path, bench, workers=workers, say=say, bars=progress)
    examples = bench_views(bench, split, None, workers, progress, f"ablate {channel} on {split}")
    if twin is not None:
        result = compare_mask_bound(path, twin, examples)
    else:
        result = ablate(path, channel, examples)
    with new_run_dir(out, f"ablate-{channel}-{bench.name}", split) as target:
        (target.work / "ablation.md").write_text(render_markdown(result))
        (target.work / "ablation.json").write_text(render_json(result))
    return result, target.final


def export_checked(
    onnx: Path,
    *,
    weights: Path | None = None,
    check_bench: Bench | None = None,
    check_split: str = "test",
    check_limit: int | None = None,
    workers: int = 1,
    progress: ProgressHook = no_progress,
) -> dict[str, Any]:
    """Export the whole pipeline to `onnx`, checked against torch on probes and, with
    `check_bench`, on every chunk of that split (or a seeded sample of `check_limit` tracks)."""
    from artifactbench.experiments.artifactnet_open.export import export_onnx

    path = open_weights(weights)
    views = None
    if check_bench is not None:
        label = f"checking onnx against torch on {check_bench.name} {check_split}"
        labelled = bench_views(check_bench, check_split, check_limit, workers, progress, label)
        views = (view for view, _ in labelled)
    return export_onnx(path, onnx, views)
