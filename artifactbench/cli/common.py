"""What every command group shares: the consoles, the one-line usage error, the option types and
the parsing of names into benches, models and transform chains."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from artifactbench.benches import bench_spec_help
from artifactbench.benches.base import SPLITS
from artifactbench.progress import progress_to
from artifactbench.util import default_workers

if TYPE_CHECKING:
    from artifactbench.audio.transforms import Transform
    from artifactbench.benches import BenchOptions
    from artifactbench.benches.base import Bench
    from artifactbench.detectors.base import DetectorCard

# Tables stay readable when piped or logged: rich would otherwise wrap them at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 120
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True)


# The splits a bench can be scored on, as choices the command line lists.
Split = StrEnum("Split", {name: name for name in SPLITS})


class UsageProblem(Exception):
    """Wrong input from the user: printed as one line, exit code 2."""


def check_device(value: str) -> str:
    """The device, refused before any work when it is misspelt or unusable on this machine."""
    from artifactbench.detectors.devices import DeviceError
    from artifactbench.detectors.devices import check_device as checked

    try:
        return checked(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc)) from exc


DEFAULT_WORKERS = default_workers()
BenchOption = Annotated[str, typer.Option(help=bench_spec_help())]
ModelsOption = Annotated[str, typer.Option(help="'all' or comma-separated model ids")]
SplitOption = Annotated[Split, typer.Option(help="bench_origin to score")]
NPerSourceOption = Annotated[
    int | None, typer.Option(min=1, help="the same seeded N tracks per subset for every model")
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="score a seeded sample of N")]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(min=1, help="tracks per detector call (default: 4 on CPU, 16 on CUDA)"),
]
MemoryBudgetOption = Annotated[
    float,
    typer.Option(
        min=16, help="MiB of intermediates one detector call may hold, whatever the batch"
    ),
]
WorkersOption = Annotated[int, typer.Option(min=0, help="decode processes (0: in-process)")]
DeviceOption = Annotated[str, typer.Option(help="cpu | cuda | cuda:N", callback=check_device)]
ThresholdOption = Annotated[float, typer.Option(min=0.0, max=1.0)]
SeedOption = Annotated[int, typer.Option()]
RunsOption = Annotated[Path, typer.Option("--out", help="where run directories go")]
WeightsOption = Annotated[Path | None, typer.Option(help="weights file for the one model")]
FitOnOption = Annotated[
    str | None,
    typer.Option(help="bench whose train split bench-fitted models (fakeprint) fit on"),
]


def say(line: str) -> None:
    """A line for the person running the command, on stderr beside the progress."""
    err.print(line, markup=False, highlight=False)


def show(text: str) -> None:
    """Text for stdout as it is: no markup, no highlighting."""
    out.print(text, markup=False, highlight=False)


def parse_bench(spec: str, options: BenchOptions | None = None) -> Bench:
    """The bench a spec names, with progress when it is generated on first use (the demo)."""
    from artifactbench.benches import UnknownBench, open_bench

    try:
        with progress_to(err) as progress:
            return open_bench(spec, options, progress)
    except (UnknownBench, ValueError) as exc:
        raise UsageProblem(str(exc)) from exc


def parse_models(spec: str) -> list[DetectorCard]:
    from artifactbench.detectors.registry import UnknownModel, resolve_models

    try:
        return resolve_models(spec)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc


def parse_chain(spec: str) -> list[Transform]:
    """A transform chain from its spec, loaded now so a missing backend fails before decoding."""
    from artifactbench.audio.transforms import (
        TransformUnavailable,
        describe_chain,
        parse_transforms,
    )

    try:
        chain = parse_transforms(spec)
        describe_chain(chain)
    except (ValueError, TransformUnavailable) as exc:
        raise UsageProblem(str(exc)) from exc
    return chain


def predictions_of(run_dir: Path) -> Path:
    """The predictions of a complete run directory; anything else is refused in one line."""
    from artifactbench.runner import is_partial_run

    if is_partial_run(run_dir):
        raise UsageProblem(
            f"{run_dir} is an incomplete run directory (its run was interrupted or is still "
            "writing); rerun the command that made it to resume"
        )
    path = run_dir / "predictions.parquet"
    if not path.is_file():
        raise UsageProblem(f"{run_dir} is not a run directory (no predictions.parquet)")
    return path


def print_run(run_dir: Path) -> None:
    """The summary tables, then the variant comparison when the run has several variants."""
    from artifactbench.reports.console import print_run as printed

    printed(out, run_dir)


@contextmanager
def scoring_outcomes() -> Iterator[None]:
    """How a scoring run ends on the command line: an unusable model or nothing to score is
    wrong input (exit 2, with the fix), a failed engine exit 1 with the answers kept, an
    interrupt its one line and exit 130."""
    from artifactbench.detectors.base import Unavailable
    from artifactbench.runner import EngineFailure, Interrupted, NothingToScore

    try:
        yield
    except (Unavailable, NothingToScore) as exc:
        hint = getattr(exc, "hint", None)
        raise UsageProblem(f"{exc} (fix: {hint})" if hint else str(exc)) from exc
    except EngineFailure as exc:
        err.print(f"[red]error:[/red] {exc}; scores written so far are kept, rerun to resume")
        raise typer.Exit(1) from exc
    except Interrupted as exc:
        say(str(exc))
        raise typer.Exit(130) from None
