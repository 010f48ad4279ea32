"""What every command group shares: the consoles, the one-line usage error, the option types and
the parsing of names into benches, models and transform chains."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from artifactbench.analysis.transfer_rules import DEFAULT_METRIC, THRESHOLD_RULES
from artifactbench.benches import bench_spec_help
from artifactbench.benches.base import SPLITS
from artifactbench.progress import progress_to
from artifactbench.util import default_workers

if TYPE_CHECKING:
    from artifactbench.audio.transforms import Transform
    from artifactbench.benches import BenchOptions
    from artifactbench.benches.base import Bench
    from artifactbench.detectors.base import DetectorCard

# Tables stay readable when piped or logged: rich would otherwise wrap them at 80 columns
# (the metrics table is about 140 wide).
_WIDTH = None if sys.stdout.isatty() else 160
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


def _cost_check(field: str) -> Callable[[float | None], float | None]:
    """A callback refusing, before any work, a value the detection cost model refuses (the
    message names the valid range)."""

    def check(value: float | None) -> float | None:
        from artifactbench.analysis.detection_cost import CostModel

        if value is not None:
            try:
                CostModel(**{field: value})
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
        return value

    return check


_P_ATTACK_HELP = "prior of the attack (AI) class in minDCF / actDCF, in (0, 1); ASVspoof 5: 0.05"
_C_MISS_HELP = "cost of a miss (a real track called AI) in minDCF / actDCF, > 0; ASVspoof 5: 1"
_C_FA_HELP = "cost of a false alarm (an AI track called real), > 0; ASVspoof 5: 10"
_OF_RUN = " (default: the run's)"
DcfPAttackOption = Annotated[
    float, typer.Option(help=_P_ATTACK_HELP, callback=_cost_check("p_attack"))
]
DcfCMissOption = Annotated[float, typer.Option(help=_C_MISS_HELP, callback=_cost_check("c_miss"))]
DcfCFaOption = Annotated[float, typer.Option(help=_C_FA_HELP, callback=_cost_check("c_fa"))]
DcfPAttackOverride = Annotated[
    float | None, typer.Option(help=_P_ATTACK_HELP + _OF_RUN, callback=_cost_check("p_attack"))
]
DcfCMissOverride = Annotated[
    float | None, typer.Option(help=_C_MISS_HELP + _OF_RUN, callback=_cost_check("c_miss"))
]
DcfCFaOverride = Annotated[
    float | None, typer.Option(help=_C_FA_HELP + _OF_RUN, callback=_cost_check("c_fa"))
]


def cost_overrides(
    p_attack: float | None, c_miss: float | None, c_fa: float | None
) -> dict[str, float]:
    """The detection cost fields given on the command line, to replace the run's."""
    given = {"p_attack": p_attack, "c_miss": c_miss, "c_fa": c_fa}
    return {key: float(value) for key, value in given.items() if value is not None}


RunsOption = Annotated[Path, typer.Option("--out", help="where run directories go")]
WeightsOption = Annotated[Path | None, typer.Option(help="weights file for the one model")]
FitOnOption = Annotated[
    str | None,
    typer.Option(help="bench whose train split bench-fitted models (fakeprint) fit on"),
]
ThresholdFromOption = Annotated[
    str | None,
    typer.Option(
        "--threshold-from",
        metavar="RUN_DIR[:METRIC]",
        help="also report each model at the threshold chosen on another run's predictions by "
        f"METRIC: {' | '.join(THRESHOLD_RULES)} (default {DEFAULT_METRIC})",
    ),
]
CalibrateOnOption = Annotated[
    Path | None,
    typer.Option(
        "--calibrate-on",
        metavar="RUN_DIR",
        help="also report each model after a logistic calibration fitted on another run's "
        "predictions",
    ),
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


def parse_transfer(threshold_from: str | None, calibrate_on: Path | None) -> dict[str, Any] | None:
    """The transfer record `--threshold-from` / `--calibrate-on` ask for (None: neither),
    chosen now from the source runs' predictions, so a wrong source fails before any work."""
    if threshold_from is None and calibrate_on is None:
        return None
    from artifactbench.predictions import PredictionsError
    from artifactbench.reports.transfer import (
        TransferError,
        parse_threshold_source,
        resolve_transfer,
    )

    try:
        source = parse_threshold_source(threshold_from) if threshold_from is not None else None
        for run_dir in (source[0] if source else None, calibrate_on):
            if run_dir is not None:
                predictions_of(run_dir)
        return resolve_transfer(source, calibrate_on)
    except (TransferError, PredictionsError) as exc:
        raise UsageProblem(str(exc)) from exc


def print_run(run_dir: Path) -> None:
    """The summary tables, then the variant comparison when the run has several variants, and
    the threshold and calibration from another run when it has them."""
    from artifactbench.reports.console import print_run as printed
    from artifactbench.reports.transfer import print_transfer

    printed(out, run_dir)
    print_transfer(out, run_dir)


@contextmanager
def scoring_outcomes() -> Iterator[None]:
    """How a scoring run ends on the command line: an unusable model or nothing to score is
    wrong input (exit 2, with the fix), a failed engine exit 1 with the answers kept, an
    interrupt its one line and exit 130. A threshold or calibration from another run that
    lacks one of the run's models is wrong input too."""
    from artifactbench.analysis.transfer import TransferError
    from artifactbench.detectors.base import Unavailable
    from artifactbench.runner import EngineFailure, Interrupted, NothingToScore

    try:
        yield
    except TransferError as exc:
        raise UsageProblem(str(exc)) from exc
    except (Unavailable, NothingToScore) as exc:
        hint = getattr(exc, "hint", None)
        raise UsageProblem(f"{exc} (fix: {hint})" if hint else str(exc)) from exc
    except EngineFailure as exc:
        err.print(f"[red]error:[/red] {exc}; scores written so far are kept, rerun to resume")
        raise typer.Exit(1) from exc
    except Interrupted as exc:
        say(str(exc))
        raise typer.Exit(130) from None
