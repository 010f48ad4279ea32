"""Terminal summary of a run: the metrics table and the sanity table with FAIL / N."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from artifactbench.reports.tables import fmt


def _metrics_table(metrics: dict[str, Any], sanity: dict[str, Any]) -> Table:
    table = Table(title=f"Metrics on scored tracks (threshold {metrics['threshold']:g})")
    table.add_column("model", style="bold")
    for name in ("n", "failed", "F1 [95% CI]", "prec.", "recall", "FPR", "AUC", "EER", "AP"):
        table.add_column(name, justify="right")
    table.add_column("FAIL / N", justify="right")
    for model, m in sorted(metrics["models"].items()):
        s = m["scored"]
        ci = s["ci"]["f1"]
        span = "" if ci["low"] is None else f" [{fmt(ci['low'], 2)}-{fmt(ci['high'], 2)}]"
        verdict = sanity["models"].get(model)
        fails = "n/a"
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
            fails,
        )
    return table


def _sanity_table(sanity: dict[str, Any]) -> Table:
    models = sorted(sanity["models"])
    table = Table(title="Sanity protocol (failed tracks count as misclassified)")
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
