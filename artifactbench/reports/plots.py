"""ROC, F1-against-threshold and reliability figures, drawn with the Agg canvas only.

The object-oriented Figure API leaves pyplot's global backend alone, and PNG metadata is
reduced to nothing so rebuilding a report changes as little as possible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from artifactbench.analysis.metrics import FPR_TARGET, as_positive, f1_curve, roc_points
from artifactbench.util import write_atomic

_STYLE = {"font.family": "DejaVu Sans", "font.size": 9}
_PNG_META = {"Software": None}
_THRESHOLDS = np.linspace(0.0, 1.0, 201)


def _scored(preds: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(y, prob) of each model's scored tracks, models sorted by id."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ok = preds[preds["status"] == "scored"]
    for model in sorted(preds["model"].astype(str).unique()):
        rows = ok[ok["model"].astype(str) == model]
        y = as_positive(rows["label"].astype(str).to_numpy())
        out[model] = (y, rows["prob"].to_numpy(dtype=float))
    return out


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    return write_atomic(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, metadata=_PNG_META)
    )


def roc_label(model: str, y: np.ndarray, auc: float | None) -> str:
    """Legend text of one model's ROC curve from its scored labels `y`: the AUC, or why there
    is none (no scored track at all, or scored tracks of one class only)."""
    if y.size == 0:
        return f"{model} (AUC n/a: no scored tracks)"
    if auc is None or y.all() or not y.any():
        return f"{model} (AUC n/a: one class)"
    return f"{model} (AUC {auc:.3f})"


def plot_roc(preds: pd.DataFrame, aucs: dict[str, float | None], path: Path) -> Path:
    """ROC curve per model (AUC in the legend) with the FPR = 5% line."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 5.0))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls=":", label="chance")
        for model, (y, prob) in _scored(preds).items():
            fpr, tpr, _ = roc_points(y, prob)
            label = roc_label(model, y, aucs.get(model))
            if fpr.size == 0 or aucs.get(model) is None:
                ax.plot([], [], label=label)
                continue
            ax.plot(fpr, tpr, lw=1.4, label=label)
        ax.axvline(FPR_TARGET, color="crimson", lw=0.9, ls="--", label=f"FPR = {FPR_TARGET:.0%}")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (real called AI)")
        ax.set_ylabel("true positive rate (AI detected)")
        ax.set_title("ROC, scored tracks")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return _save(fig, path)


def plot_f1_threshold(preds: pd.DataFrame, threshold: float, path: Path) -> Path:
    """F1 against the decision threshold per model, with the run's threshold marked."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 4.0))
        ax = fig.add_subplot()
        for model, (y, prob) in _scored(preds).items():
            ax.plot(_THRESHOLDS, f1_curve(y, prob, _THRESHOLDS), lw=1.4, label=model)
        ax.axvline(
            threshold, color="crimson", lw=0.9, ls="--", label=f"run threshold {threshold:g}"
        )
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="threshold on P(AI)", ylabel="F1 (AI positive)")
        ax.set_title("F1 against threshold, scored tracks")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        return _save(fig, path)


def plot_reliability(calibration: dict[str, dict[str, Any]], path: Path) -> Path:
    """Reliability diagram: observed AI fraction against mean P(AI) per bin, one line per model
    with the diagonal of perfect calibration, and the bin counts per model in a lower panel."""
    path = Path(path)
    models = sorted(calibration)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 6.0))
        grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
        ax = fig.add_subplot(grid[0])
        counts_ax = fig.add_subplot(grid[1], sharex=ax)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="perfectly calibrated")
        width = 1.0 / max(1, len(models))
        for i, model in enumerate(models):
            block = calibration[model]
            filled = [b for b in block["bins"] if b["count"]]
            if not filled:
                why = block.get("reason") or "no scored tracks"
                ax.plot([], [], label=f"{model} (n/a: {why})")
                continue
            ece = block["ece"]
            label = f"{model} (ECE {ece:.3f}, Brier {block['brier']:.3f})"
            (line,) = ax.plot(
                [b["mean_prob"] for b in filled],
                [b["fraction_ai"] for b in filled],
                marker="o",
                ms=4,
                lw=1.4,
                label=label,
            )
            lows = np.array([b["lower"] for b in block["bins"]])
            bin_width = np.array([b["upper"] - b["lower"] for b in block["bins"]])
            counts_ax.bar(
                lows + bin_width * i * width,
                [b["count"] for b in block["bins"]],
                width=bin_width * width,
                align="edge",
                color=line.get_color(),
            )
        ax.set(xlim=(0, 1), ylim=(-0.01, 1.01), ylabel="observed AI fraction")
        ax.set_title("Reliability, scored tracks")
        ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        counts_ax.set(xlabel="mean P(AI) in bin", ylabel="tracks")
        counts_ax.grid(alpha=0.3, axis="y")
        fig.subplots_adjust(left=0.13, right=0.97, top=0.94, bottom=0.09)
        _save(fig, path)
    return path
