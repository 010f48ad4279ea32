"""Commands that read results only: `sanity`, `report` and `leaderboard` rebuild everything from
run directories' predictions.parquet; no model is called."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artifactbench.cli.audit import AuditOption, read_audits
from artifactbench.cli.common import (
    CalibrateOnOption,
    DcfCFaOverride,
    DcfCMissOverride,
    DcfPAttackOverride,
    ThresholdFromOption,
    UsageProblem,
    cost_overrides,
    out,
    parse_transfer,
    predictions_of,
    print_run,
    show,
)


def _latest_run(runs: Path) -> Path:
    """The newest complete run directory under `runs` (partial ones are passed over)."""
    from artifactbench.runner import is_partial_run

    found = sorted(
        (p for p in runs.glob("*/predictions.parquet") if not is_partial_run(p.parent)),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise UsageProblem(f"no run found under {runs}; give RUN_DIR or run `artifactbench run`")
    return found[-1].parent


def sanity(
    run_dir: Annotated[Path | None, typer.Argument(help="run directory (default: latest)")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="where to look for the latest")] = Path(
        "runs"
    ),
) -> None:
    """Print the per-subset sanity table of a run, from its predictions alone."""
    from artifactbench.predictions import PredictionsError
    from artifactbench.reports import NothingToReport, sanity_text

    directory = run_dir or _latest_run(runs)
    try:
        text = sanity_text(predictions_of(directory))
    except NothingToReport as exc:
        raise UsageProblem(f"{directory} has no scored model: nothing to report") from exc
    except PredictionsError as exc:
        raise UsageProblem(str(exc)) from exc
    out.print(text, markup=False)


def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    threshold_from: ThresholdFromOption = None,
    calibrate_on: CalibrateOnOption = None,
    dcf_p_attack: DcfPAttackOverride = None,
    dcf_c_miss: DcfCMissOverride = None,
    dcf_c_fa: DcfCFaOverride = None,
    audit: AuditOption = None,
) -> None:
    """Rebuild every table and plot of a run from predictions.parquet (no model is called).
    A threshold or calibration from another run replaces the one the run recorded; the
    --dcf-* options replace its detection cost model; --audit marks results on tracks a model
    was trained on."""
    from artifactbench.analysis.transfer import TransferError
    from artifactbench.predictions import PredictionsError
    from artifactbench.reports import NothingToReport, write_reports
    from artifactbench.reports.leakage import AuditMismatch

    predictions = predictions_of(run_dir)
    transfer = parse_transfer(threshold_from, calibrate_on)
    audits = read_audits(audit)
    try:
        written = write_reports(
            predictions, run_dir, transfer=transfer,
            cost=cost_overrides(dcf_p_attack, dcf_c_miss, dcf_c_fa), audits=audits,
        )  # fmt: skip
    except NothingToReport as exc:
        raise UsageProblem(f"{run_dir} has no scored model: nothing to report") from exc
    except (PredictionsError, TransferError, AuditMismatch) as exc:
        raise UsageProblem(str(exc)) from exc
    print_run(run_dir)
    out.print(f"rebuilt: {', '.join(sorted(p.name for p in written.values()))}")


def leaderboard(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories to merge")],
    out_dir: Annotated[Path, typer.Option("--out", help="where leaderboard files go")] = Path(
        "leaderboard"
    ),
    seed: Annotated[int, typer.Option()] = 0,
    dcf_p_attack: DcfPAttackOverride = None,
    dcf_c_miss: DcfCMissOverride = None,
    dcf_c_fa: DcfCFaOverride = None,
    audit: AuditOption = None,
) -> None:
    """Merge runs of one bench, split and protocol into a ranked leaderboard (the --dcf-*
    options replace the detection cost model the runs recorded; --audit marks results on
    tracks a model was trained on)."""
    from artifactbench.reports.leaderboard import build_leaderboard, write_leaderboard

    for run_dir in run_dirs:
        predictions_of(run_dir)
    audits = read_audits(audit)
    try:
        cost = cost_overrides(dcf_p_attack, dcf_c_miss, dcf_c_fa)
        board = build_leaderboard(run_dirs, seed=seed, cost=cost, audits=audits)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageProblem(str(exc).splitlines()[0]) from exc
    paths = write_leaderboard(board, out_dir)
    show(paths["leaderboard.md"].read_text())
    show(f"leaderboard: {out_dir}")
