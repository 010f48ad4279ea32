"""Condition matrices in report.md and conditions.png: per model, EER, minDCF and TPR/FPR of each
subset under each variant with the pooled rows and column (see analysis/conditions.py).

Rates and EER are written in percent with one decimal, the precision ASVspoof 5 tables use;
minDCF is a normalised cost, written as every other metric (three decimals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from artifactbench.analysis.conditions import POOLED_REAL
from artifactbench.reports.format import MISSING, fmt
from artifactbench.reports.plots import _STYLE, _save
from artifactbench.reports.tables import md_table

# The heat map's colour scale: an EER of 50% is chance, so higher values share its colour.
EER_SCALE_MAX = 50.0
POOLED_MARK = "**pooled**"


def percent(value: float | None) -> str:
    """A rate as a percentage with one decimal; ``n/a`` when undefined."""
    return fmt(None if value is None else 100.0 * value, 1)


def column_names(columns: list[str]) -> list[str]:
    """Column headers: a codec run's variants by codec name (as Table X), the pooled column
    in bold."""
    variants = columns[:-1]
    if all(v.startswith("codec:") for v in variants):
        variants = [v.removeprefix("codec:") for v in variants]
    return [*variants, POOLED_MARK]


def _single_pooled(block: dict[str, Any], metric: str) -> tuple[list[str], list[list]]:
    """Row names and values of a class-symmetric metric: the subsets, then one pooled row
    (the two pooled rows hold the same values)."""
    keep = [i for i, name in enumerate(block["rows"]) if name != POOLED_REAL]
    names = [block["rows"][i] for i in keep]
    names[-1] = POOLED_MARK
    return names, [block[metric][i] for i in keep]


def score_table(block: dict[str, Any], metric: str) -> str:
    """The EER (percent) or minDCF matrix of one model as a markdown table."""
    show = percent if metric == "eer" else fmt
    names, values = _single_pooled(block, metric)
    rows = [[name, *(show(v) for v in line)] for name, line in zip(names, values, strict=True)]
    headers = ["subset", *column_names(block["columns"])]
    return md_table(headers, rows, right=set(range(1, len(headers))))


def _rate_cell(value: float | None, failed: int) -> str:
    return percent(value) + (f" ({failed} failed)" if failed else "")


def rate_table(block: dict[str, Any]) -> str:
    """The TPR/FPR matrix of one model (percent), each cell's failed tracks in parentheses."""
    rows = []
    for i, (name, label) in enumerate(zip(block["rows"], block["row_labels"], strict=True)):
        cells = [
            _rate_cell(v, k) for v, k in zip(block["tpr_fpr"][i], block["n_failed"][i], strict=True)
        ]
        shown = f"**{name}**" if i >= len(block["rows"]) - 2 else name
        rows.append([shown, "TPR" if label == "ai" else "FPR", *cells])
    headers = ["subset", "rate", *column_names(block["columns"])]
    return md_table(headers, rows, right=set(range(2, len(headers))))


def cost_text(cost: dict[str, Any]) -> str:
    """The cost model in words: ``P(attack) 0.05, C_miss 1, C_fa 10``."""
    return f"P(attack) {cost['p_attack']:g}, C_miss {cost['c_miss']:g}, C_fa {cost['c_fa']:g}"


def conditions_markdown(matrices: dict[str, Any]) -> str:
    """The report section: the accounting, then per model the EER, minDCF and TPR/FPR tables."""
    thr = matrices["threshold"]
    lines = [
        "## Condition matrices (subset x variant)",
        "",
        "Rows are subsets, then the pooled ones; columns are the variants in the run's order, "
        f"then all variants pooled. {matrices['note']} Rates and EER in percent; minDCF is "
        f"normalised, cost model {cost_text(matrices['cost_model'])}. `{MISSING}`: undefined "
        "(a class without a track). Heat map: conditions.png.",
    ]
    for model, block in matrices["models"].items():
        lines += [
            "",
            f"### {model}",
            "",
            "EER (%), each row against every scored track of the other class:",
            "",
            score_table(block, "eer"),
            "",
            f"minDCF ({cost_text(matrices['cost_model'])}):",
            "",
            score_table(block, "min_dcf"),
            "",
            f"TPR / FPR (%) at threshold {thr:g}; a failed track counts as misclassified "
            "(failed tracks in parentheses):",
            "",
            rate_table(block),
        ]
    return "\n".join(lines) + "\n"


def _panel(fig: Figure, ax: Any, model: str, block: dict[str, Any]) -> None:
    """One model's EER heat map: annotated cells, undefined ones grey, pooled row and column
    set apart by heavy lines."""
    names, values = _single_pooled(block, "eer")
    names[-1] = "pooled"
    columns = [*column_names(block["columns"])[:-1], "pooled"]
    grid = np.array([[np.nan if v is None else 100.0 * v for v in line] for line in values])
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="0.85")
    image = ax.imshow(
        np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=EER_SCALE_MAX, aspect="auto"
    )
    for (r, c), value in np.ndenumerate(grid):
        dark = np.isfinite(value) and value > 0.6 * EER_SCALE_MAX
        text = MISSING if not np.isfinite(value) else f"{value:.1f}"
        ax.text(c, r, text, ha="center", va="center", fontsize=8,
                color="white" if dark else "black")  # fmt: skip
    ax.axhline(len(names) - 1.5, color="black", lw=2.0)
    ax.axvline(len(columns) - 1.5, color="black", lw=2.0)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_title(f"{model}: EER (%) per subset and variant")
    fig.colorbar(image, ax=ax, label="EER (%)", fraction=0.05, pad=0.02)


def plot_conditions(matrices: dict[str, Any], path: Path) -> Path:
    """conditions.png: one EER heat map per model, stacked."""
    models = list(matrices["models"])
    first = matrices["models"][models[0]] if models else {"rows": [], "columns": []}
    n_rows, n_cols = max(1, len(first["rows"]) - 1), max(1, len(first["columns"]))
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(0.9 * n_cols + 3.5, (0.35 * n_rows + 1.6) * max(1, len(models))))
        axes = fig.subplots(max(1, len(models)), 1, squeeze=False)[:, 0]
        for ax, model in zip(axes, models, strict=False):
            _panel(fig, ax, model, matrices["models"][model])
        fig.tight_layout()
        return _save(fig, path)
