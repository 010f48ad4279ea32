"""Terminal summary of a run: the metrics table, the sanity table with FAIL / N and, for a run
with several variants, the variants table (codec runs: Table X and the P(AI) spread), all rich
tables built from the run's JSON files, each with a title."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from artifactbench.reports.format import MISSING, fmt, interval
from artifactbench.reports.robustness import (
    SPREAD_HEADERS,
    SUBSET_SPREAD_HEADERS,
    TABLE_X_HEADERS,
    VARIANT_HEADERS,
    WAV,
    spread_rows,
    spread_title,
    subset_spread_rows,
    table_x_rows,
    table_x_title,
    variant_rows,
    variants_title,
)


def _of_variant(results: dict[str, Any]) -> str:
    """``, variant NAME`` for a title, or nothing for a table without variants."""
    variant = results.get("variant")
    return f", variant {variant}" if variant else ""


def _metrics_table(metrics: dict[str, Any], sanity: dict[str, Any]) -> Table:
    title = f"Metrics on scored tracks{_of_variant(metrics)} (threshold {metrics['threshold']:g})"
    table = Table(title=Text(title))
    table.add_column("model", style="bold")
    names = ("n", "failed", "F1 [95% CI]", "prec.", "recall", "FPR", "AUC", "EER", "AP")
    for name in (*names, "minDCF", "Cllr"):
        table.add_column(name, justify="right")
    table.add_column("FAIL / N", justify="right")
    for model, m in sorted(metrics["models"].items()):
        s = m["scored"]
        ci = s["ci"]["f1"]
        span = "" if ci["low"] is None else " " + interval(ci, 2, sep="-")
        verdict = sanity["models"].get(model)
        fails = MISSING
        if verdict is not None:
            colour = "red" if verdict["n_fail"] else "green"
            fails = f"[{colour}]{verdict['summary']}[/{colour}]"
        failed = f"[red]{m['n_failed']}[/red]" if m["n_failed"] else "0"
        table.add_row(
            model,
            str(m["n"]),
            failed,
            f"{fmt(s['f1'])}{span}",
            fmt(s["precision"]),
            fmt(s["recall"]),
            fmt(s["fpr"]),
            fmt(s["auc"]),
            fmt(s["eer"]),
            fmt(s["average_precision"]),
            fmt(s.get("min_dcf")),
            fmt(s.get("cllr")),
            fails,
        )
    return table


def _sanity_table(sanity: dict[str, Any]) -> Table:
    models = sorted(sanity["models"])
    title = f"Sanity protocol{_of_variant(sanity)} (failed tracks count as misclassified)"
    table = Table(title=Text(title))
    table.add_column("subset")
    table.add_column("rule")
    table.add_column("n", justify="right")
    for model in models:
        table.add_column(model, justify="right")
    for name in sanity["subset_order"]:
        info = sanity["subsets"][name]
        cells = []
        for model in models:
            row = sanity["models"][model]["subsets"][name]
            verdict = "[green]PASS[/green]" if row["pass"] else "[bold red]FAIL[/bold red]"
            cells.append(f"{fmt(row['rate'])} {verdict}")
        table.add_row(name, info["rule"], str(info["n_tracks"]), *cells)
    table.add_section()
    table.add_row("FAIL / N", "", "", *(sanity["models"][m]["summary"] for m in models))
    return table


def print_summary(console: Console, metrics: dict[str, Any], sanity: dict[str, Any]) -> None:
    """Print both tables; takes the dicts as written to metrics.json and sanity.json."""
    console.print(_metrics_table(metrics, sanity))
    console.print(_sanity_table(sanity))


def _plain_table(title: str, headers: list[str], rows: list[list[str]], left: int) -> Table:
    """A titled table of plain cells (no markup); the first `left` columns are left-aligned."""
    table = Table(title=Text(title.replace("`", "")))
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def variant_tables(robustness: dict[str, Any]) -> list[Table]:
    """The variant comparison of a robustness.json: Table X, the P(AI) spread and its split by
    subset for a codec run; otherwise the variants table against the primary variant."""
    order = robustness.get("order")
    if "table_x" in robustness:
        codecs = [r["codec"] for r in robustness["table_x"]]
        reference = robustness.get("reference") or (
            WAV if WAV.removeprefix("codec:") in codecs else robustness["primary"]
        )
        spread = robustness["prob_spread"]
        return [
            _plain_table(table_x_title(reference), TABLE_X_HEADERS,
                         table_x_rows(robustness["table_x"]), 2),
            _plain_table(spread_title(), SPREAD_HEADERS, spread_rows(spread), 1),
            _plain_table("P(AI) spread across codecs, per subset", SUBSET_SPREAD_HEADERS,
                         subset_spread_rows(spread), 2),
        ]  # fmt: skip
    primary = robustness["primary"]
    variants = dict(sorted(robustness["variants"].items()))
    rows = variant_rows(variants, primary, order)
    return [_plain_table(variants_title(primary), VARIANT_HEADERS, rows, 2)]


def print_run(console: Console, run_dir: Path) -> None:
    """Print a run's tables from its metrics.json, sanity.json and, when the run compares
    variants, robustness.json."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    sanity = json.loads((run_dir / "sanity.json").read_text(encoding="utf-8"))
    print_summary(console, metrics, sanity)
    robustness = run_dir / "robustness.json"
    if robustness.is_file():
        for table in variant_tables(json.loads(robustness.read_text(encoding="utf-8"))):
            console.print(table)
