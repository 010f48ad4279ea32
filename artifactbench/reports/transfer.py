"""Threshold and calibration from another run: reading the source run's predictions into a
transfer record, and the report section and terminal tables of metrics.json's ``transfer``
block. The numbers themselves are :mod:`artifactbench.analysis.transfer`'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from artifactbench.analysis.detection_cost import CostModel
from artifactbench.analysis.transfer import TransferError, choose_thresholds, fit_calibrations
from artifactbench.analysis.transfer_rules import DEFAULT_METRIC, THRESHOLD_RULES
from artifactbench.predictions import read_predictions
from artifactbench.reports.format import fmt
from artifactbench.reports.tables import md_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TransferError",
    "parse_threshold_source",
    "print_transfer",
    "resolve_transfer",
    "transfer_markdown",
    "transfer_tables",
]

SECTION = "Threshold and calibration from another run"


def parse_threshold_source(spec: str) -> tuple[Path, str]:
    """(run directory, metric) of ``RUN_DIR[:METRIC]``.

    Only a trailing ``:NAME`` is a metric, so a directory whose name holds ':' still parses: a
    suffix that is a metric of THRESHOLD_RULES is split off; an existing directory, or a suffix
    holding a path separator, is all path (default metric); any other suffix is a wrong metric,
    refused naming the choices."""
    head, sep, tail = spec.rpartition(":")
    whole = Path(spec)
    if sep and head and tail in THRESHOLD_RULES and (Path(head).is_dir() or not whole.is_dir()):
        return Path(head), tail
    if not sep or not head or whole.is_dir() or "/" in tail or "\\" in tail:
        return whole, DEFAULT_METRIC
    raise TransferError(
        f"unknown threshold metric {tail!r} in {spec!r}; choose from: {', '.join(THRESHOLD_RULES)}"
    )


def _source(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A source run's predictions and metadata; a directory without them is refused."""
    path = Path(run_dir) / "predictions.parquet"
    if not path.is_file():
        raise TransferError(f"{run_dir} is not a run directory (no predictions.parquet)")
    return read_predictions(path)


def resolve_transfer(
    threshold_from: tuple[Path, str] | None,
    calibrate_on: Path | None,
    cost: CostModel | None = None,
) -> dict[str, Any]:
    """The transfer record (see :mod:`artifactbench.analysis.transfer`) chosen on the source
    runs' predictions alone: thresholds by a metric, and/or calibration coefficients. `cost` is
    minDCF's cost model (default: the source run's)."""
    record: dict[str, Any] = {}
    if threshold_from is not None:
        run_dir, metric = threshold_from
        preds, meta = _source(run_dir)
        record["threshold"] = choose_thresholds(preds, meta, metric, cost, str(run_dir))
    if calibrate_on is not None:
        preds, meta = _source(calibrate_on)
        record["calibration"] = fit_calibrations(preds, meta, str(calibrate_on))
    return record


# --- rendering -----------------------------------------------------------------------------


def _source_line(source: dict[str, Any]) -> str:
    """Where a rule came from: directory, bench, split, protocol split and variant."""
    facts = [f"bench `{source.get('bench')}`", f"split `{source.get('split')}`"]
    if source.get("protocol_split"):
        facts.append(f"protocol split `{source['protocol_split']}`")
    if source.get("variant"):
        facts.append(f"variant `{source['variant']}`")
    return f"`{source['run_dir']}` ({', '.join(facts)})"


def _rates(block: dict[str, Any]) -> str:
    """``TPR / FPR / F1`` of one population's counts."""
    return f"{fmt(block['recall'])} / {fmt(block['fpr'])} / {fmt(block['f1'])}"


def _change(before: float | None, after: float | None) -> str:
    return f"{fmt(before)} -> {fmt(after)}"


def _threshold_rows(part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    thr = part["run_threshold"]
    headers = [
        "model",
        f"threshold (source, {part['metric']})",
        "TPR / FPR / F1 at it",
        f"TPR / FPR / F1 at {thr:g}",
    ]
    rows = [
        [
            model,
            fmt(m["threshold"]),
            _rates(m["at_source_threshold"]["scored"]),
            _rates(m["at_run_threshold"]["scored"]),
        ]
        for model, m in sorted(part["models"].items())
    ]
    return headers, rows


def _calibration_rows(part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    thr = part["run_threshold"]
    headers = [
        "model",
        "a",
        "b",
        f"TPR / FPR / F1 calibrated, at {thr:g}",
        f"TPR / FPR / F1 at {thr:g}",
        "Cllr before -> after",
        "actDCF before -> after",
    ]
    rows = []
    for model, m in sorted(part["models"].items()):
        before, after = m["probabilistic_before"], m["probabilistic_after"]
        rows.append(
            [
                model,
                fmt(m["a"]),
                fmt(m["b"]),
                _rates(m["after"]["scored"]),
                _rates(m["before"]["scored"]),
                _change(before["cllr"], after["cllr"]),
                _change(before["act_dcf"], after["act_dcf"]),
            ]
        )
    return headers, rows


def transfer_markdown(block: dict[str, Any]) -> str:
    """report.md's section for metrics.json's ``transfer`` block ('' without one)."""
    if not block:
        return ""
    out = [f"## {SECTION}", ""]
    if "threshold" in block:
        part = block["threshold"]
        headers, rows = _threshold_rows(part)
        cost = ""
        if "cost" in part:
            c = part["cost"]
            cost = f" (p_attack {c['p_attack']:g}, c_miss {c['c_miss']:g}, c_fa {c['c_fa']:g})"
        out += [
            "### Threshold chosen on another run",
            "",
            f"Source: {_source_line(part['source'])}. Each model's threshold was chosen on the "
            f"source's scored tracks by `{part['metric']}`: {part['rule']}{cost}. It is applied "
            f"here unchanged, beside this run's own threshold ({part['run_threshold']:g}). On "
            "scored tracks; metrics.json has both accountings of failures.",
            "",
            md_table(headers, rows, right=set(range(1, len(headers)))),
            "",
        ]
    if "calibration" in block:
        part = block["calibration"]
        headers, rows = _calibration_rows(part)
        out += [
            "### Calibration fitted on another run",
            "",
            f"Source: {_source_line(part['source'])}. {part['method']}; this run's P(AI) is "
            f"mapped through it and called AI when P' >= {part['run_threshold']:g}. Cllr (bits) "
            "and actDCF are on scored tracks, before and after the map; metrics.json also has "
            "the Brier score, ECE and both accountings of failures.",
            "",
            md_table(headers, rows, right=set(range(1, len(headers)))),
            "",
        ]
    return "\n".join(out)


def _table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=Text(title))
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def transfer_tables(block: dict[str, Any]) -> list[Table]:
    """The terminal tables of metrics.json's ``transfer`` block (none without one)."""
    tables = []
    if "threshold" in block:
        part = block["threshold"]
        title = f"Threshold from {part['source']['run_dir']} ({part['metric']})"
        tables.append(_table(title, *_threshold_rows(part)))
    if "calibration" in block:
        part = block["calibration"]
        title = f"Calibration fitted on {part['source']['run_dir']}"
        tables.append(_table(title, *_calibration_rows(part)))
    return tables


def print_transfer(console: Console, run_dir: Path) -> None:
    """Print a run's transfer tables from its metrics.json (nothing when it has none)."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
    for table in transfer_tables(metrics.get("transfer") or {}):
        console.print(table)
