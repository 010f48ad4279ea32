"""Side flows: `train`, `export` and `ablate` of the open ArtifactNet, `bandwidth` of residuals,
and `reproduce` of a paper experiment from its recipe."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from artifactbench.cli.common import (
    DEFAULT_WORKERS,
    BenchOption,
    DeviceOption,
    RunsOption,
    Split,
    UsageProblem,
    WorkersOption,
    err,
    parse_bench,
    say,
    scoring_outcomes,
    show,
)
from artifactbench.experiments.artifactnet_open import TEACHERS
from artifactbench.experiments.bandwidth.measure import RESIDUAL_MODELS
from artifactbench.progress import progress_to
from artifactbench.recipes import RECIPES

OPEN_MODELS = ("artifactnet-open",)


Teacher = StrEnum("Teacher", {name: name for name in TEACHERS})


def _open_model(name: str) -> None:
    if name not in OPEN_MODELS:
        raise UsageProblem(
            f"unknown trainable model {name!r}; choose from: {', '.join(OPEN_MODELS)}"
        )


WeightsPt = Annotated[Path | None, typer.Option(help="trained .pt (default: shipped demo)")]


def train(
    model: Annotated[str, typer.Argument(help=" | ".join(OPEN_MODELS))],
    bench: Annotated[str, typer.Option(help="bench whose train split it learns")] = "demo",
    small: Annotated[
        bool, typer.Option(help="the configuration that trains on 2 CPU cores")
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="weights, checkpoints, loss log")] = Path(
        "models/artifactnet-open"
    ),
    seed: Annotated[int, typer.Option()] = 0,
    workers: WorkersOption = DEFAULT_WORKERS,
    teacher: Annotated[
        Teacher, typer.Option(help="phase 1 teacher; auto: demucs if its weights are on disk")
    ] = Teacher.auto,
    demucs_dir: Annotated[
        Path | None, typer.Option(help="folder with htdemucs.yaml and its model files")
    ] = None,
) -> None:
    """Train the open ArtifactNet on a bench's train split (resumable per phase)."""
    _open_model(model)
    from artifactbench.experiments.artifactnet_open.train import train as train_model

    bench_obj = parse_bench(bench)
    try:
        with progress_to(err) as progress:
            weights = train_model(
                bench_obj, out_dir, small=small, seed=seed, workers=workers, teacher=teacher.value,
                demucs_dir=demucs_dir, progress=say, bars=progress,
            )  # fmt: skip
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    show(f"weights: {weights}")


def export(
    model: Annotated[str, typer.Argument(help=" | ".join(OPEN_MODELS))],
    onnx: Annotated[Path, typer.Option(help="output ONNX file")],
    weights: WeightsPt = None,
    check_bench: Annotated[
        str | None, typer.Option(help="also compare ONNX and torch on every chunk of this bench")
    ] = None,
    check_split: Annotated[Split, typer.Option(help="bench_origin of --check-bench")] = Split.test,
    check_limit: Annotated[
        int | None, typer.Option(min=1, help="a seeded sample of N tracks of --check-bench")
    ] = None,
    workers: WorkersOption = DEFAULT_WORKERS,
) -> None:
    """Export the whole pipeline (audio in, P(AI) out) with the published ArtifactNet contract."""
    _open_model(model)
    from artifactbench.experiments.artifactnet_open.flows import export_checked, open_weights

    try:
        weights = open_weights(weights)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    check = parse_bench(check_bench) if check_bench is not None else None
    try:
        with progress_to(err) as progress:
            record = export_checked(
                onnx, weights=weights, check_bench=check, check_split=check_split.value,
                check_limit=check_limit, workers=workers, progress=progress,
            )  # fmt: skip
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    checked = f"{record['probe_chunks']} probe chunks"
    if "bench_chunks" in record:
        checked += f" and {record['bench_chunks']} chunks of {check_bench} {check_split.value}"
    show(
        f"exported {record['onnx']} (max |onnx - torch| = {record['max_abs_difference']:.2e} "
        f"over {checked}); score it with: artifactbench run --models artifactnet "
        f"--weights {record['onnx']}"
    )


def ablate(
    channel: Annotated[str, typer.Argument(help="a channel name, all, or bounded-mask")],
    bench: Annotated[str, typer.Option(help="bench to evaluate on")] = "demo",
    split: Annotated[Split, typer.Option(help="bench_origin to evaluate")] = Split.test,
    weights: WeightsPt = None,
    unbounded_weights: Annotated[
        Path | None,
        typer.Option(help="bounded-mask: the unbounded twin (default: trained and cached)"),
    ] = None,
    out_dir: RunsOption = Path("runs"),
    workers: WorkersOption = DEFAULT_WORKERS,
) -> None:
    """Replace a forensic channel by its training-set mean, or compare the mask bound, and
    report F1, AUC, TPR, FPR against the baseline."""
    from artifactbench.experiments.artifactnet_open.ablate import render_markdown
    from artifactbench.experiments.artifactnet_open.flows import (
        check_ablation,
        open_weights,
        run_ablation,
    )

    try:
        check_ablation(channel, unbounded_weights)
        weights = open_weights(weights)
        unbounded_weights = open_weights(unbounded_weights) if unbounded_weights else None
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    bench_obj = parse_bench(bench)
    try:
        with progress_to(err) as progress:
            result, run_dir = run_ablation(
                channel, bench_obj, split.value, out_dir, weights=weights,
                unbounded_weights=unbounded_weights, workers=workers, progress=progress, say=say,
            )  # fmt: skip
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    show(render_markdown(result))
    show(f"run directory: {run_dir}")


def bandwidth(
    bench: BenchOption = "demo",
    split: Annotated[Split, typer.Option(help="bench_origin to measure")] = Split.test,
    residual: Annotated[
        str, typer.Option(help="residual model: " + " | ".join(RESIDUAL_MODELS))
    ] = "hpss",
    weights: Annotated[
        Path | None, typer.Option(help="artifactnet-open .pt, or the demucs weights folder")
    ] = None,
    n_per_source: Annotated[
        int | None, typer.Option(min=1, help="the same seeded N tracks per subset")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N tracks")] = None,
    max_seconds: Annotated[
        float, typer.Option(min=0.0, help="measure the centred N s of each track (0: whole track)")
    ] = 60.0,
    workers: WorkersOption = DEFAULT_WORKERS,
    device: DeviceOption = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    out_dir: RunsOption = Path("runs"),
) -> None:
    """Effective bandwidth of each track's residual (Appendix C): Table XI and its figure."""
    from artifactbench.audio.separation import DemucsUnavailable
    from artifactbench.detectors.base import Unavailable
    from artifactbench.experiments.bandwidth.run import measure_bandwidth

    if residual not in RESIDUAL_MODELS:  # before the bench, which may be generated first
        choices = ", ".join(RESIDUAL_MODELS)
        raise UsageProblem(f"unknown residual model {residual!r}; choose from: {choices}")
    bench_obj = parse_bench(bench)
    try:
        with progress_to(err) as progress:
            run_dir = measure_bandwidth(
                bench_obj, split.value, residual, weights, workers=workers,
                n_per_source=n_per_source, limit=limit, seed=seed, out=out_dir,
                max_seconds=max_seconds or None, progress=progress, device=device,
            )  # fmt: skip
    except (ValueError, DemucsUnavailable) as exc:
        raise UsageProblem(str(exc)) from exc
    except Unavailable as exc:
        raise UsageProblem(f"{exc} (fix: {exc.hint})") from exc
    show((run_dir / "bandwidth.md").read_text())
    show(f"run directory: {run_dir}")


def run_recipe_command(name: str, out_dir: Path, overrides: dict[str, object]) -> None:
    """Run a recipe with the settings given on the command line and print its comparison; the
    one path of `reproduce NAME` and `run --recipe NAME`."""
    from artifactbench.recipes import run_recipe

    try:
        with scoring_outcomes(), progress_to(err) as progress:
            result = run_recipe(name, out_dir, progress, say, **overrides)
    except ValueError as exc:  # a wrong recipe setting (RecipeError), or a side flow's refusal
        raise UsageProblem(str(exc)) from exc
    show(result.markdown)
    for run_dir in result.run_dirs:
        show(f"run directory: {run_dir}")
    if result.leaderboard_dir is not None:
        show(f"leaderboard: {result.leaderboard_dir}")
    if result.reference is not None and not result.reference.ok:
        raise typer.Exit(1)


def reproduce(
    name: Annotated[str, typer.Argument(help=" | ".join(RECIPES))],
    out_dir: RunsOption = Path("runs"),
    bench: Annotated[str | None, typer.Option(help="instead of the recipe's bench")] = None,
    models: Annotated[str | None, typer.Option(help="instead of the recipe's models")] = None,
    split: Annotated[Split | None, typer.Option(help="instead of the recipe's split")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N tracks")] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="decode processes")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
) -> None:
    """Run a paper experiment (or the demo) from its recipe in runners/, ending with the
    published figures against this run."""
    given = {"bench": bench, "models": models, "split": split.value if split else None,
             "limit": limit, "workers": workers, "device": device}  # fmt: skip
    run_recipe_command(name, out_dir, given)
