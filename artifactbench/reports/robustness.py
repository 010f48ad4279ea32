"""Variants of one run side by side: transforms against the original, codecs against WAV.

A run with several transform chains (`run --transform`, `artifactbench codec`) stores one
prediction row per (model, variant, track). These tables compare variants on the same tracks:
metrics per variant with the difference to the primary variant, the paper's Table X (AI TPR and
real FPR per codec, TPR change versus WAV in percentage points), and the per-track spread of
P(AI) across codecs with the codec sanity rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from artifactbench.analysis.metrics import as_positive, binary_metrics
from artifactbench.reports.format import MISSING, fmt, signed
from artifactbench.reports.plots import _STYLE, _save
from artifactbench.reports.tables import md_table

# The codec sanity rule: a detector whose P(AI) moves this little across codecs passes.
DELTA_MEAN_MAX = 0.15
DELTA_MAX_MAX = 0.35
WAV = "codec:wav"


def variant_order(preds: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """Variants in the run's order (the first is primary), else in order of appearance."""
    present = list(dict.fromkeys(preds["variant"].astype(str)))
    declared = [v for v in meta.get("variants") or [] if v in present]
    return declared + [v for v in present if v not in declared]


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if hits.size else None


def variant_metrics(
    preds: pd.DataFrame, threshold: float, order: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model and variant: F1, AUC, TPR (AI), FPR (real) on scored tracks, and failures."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model, rows in preds.groupby("model", sort=True):
        out[str(model)] = {}
        for variant in order:
            part = rows[rows["variant"].astype(str) == variant]
            ok = part["status"] == "scored"
            y = as_positive(part.loc[ok, "label"].astype(str).to_numpy())
            prob = part.loc[ok, "prob"].to_numpy(dtype=float)
            m = binary_metrics(y, prob, threshold, resamples=0) if ok.any() else {}
            calls = prob >= threshold
            out[str(model)][variant] = {
                "n": int(len(part)),
                "n_failed": int((~ok).sum()),
                "failed_stages": part.loc[~ok, "stage"].astype(str).value_counts().to_dict(),
                "f1": m.get("f1"),
                "auc": m.get("auc"),
                "tpr": _rate(calls[y]),
                "fpr": _rate(calls[~y]),
            }
    return out


def _delta(value: float | None, base: float | None, scale: float = 1.0) -> float | None:
    return None if value is None or base is None else scale * (value - base)


def codec_table(metrics: dict[str, dict[str, dict[str, Any]]], reference: str) -> list[dict]:
    """Table X rows: per model and codec, AI TPR, real FPR and TPR - TPR(reference) in points."""
    rows = []
    for model, by_variant in metrics.items():
        base = by_variant.get(reference, {}).get("tpr")
        for variant, m in by_variant.items():
            rows.append({
                "model": model, "codec": variant.removeprefix("codec:"), "ai_tpr": m["tpr"],
                "real_fpr": m["fpr"], "delta_tpr_pp": _delta(m["tpr"], base, 100.0),
                "n_failed": m["n_failed"],
            })  # fmt: skip
    return rows


def _spread_stats(deltas: np.ndarray) -> dict[str, Any]:
    if deltas.size == 0:
        return {"n_tracks": 0, "mean": None, "median": None, "p90": None, "max": None}
    return {
        "n_tracks": int(deltas.size),
        "mean": float(deltas.mean()),
        "median": float(np.median(deltas)),
        "p90": float(np.percentile(deltas, 90)),
        "max": float(deltas.max()),
    }


def prob_spread(preds: pd.DataFrame, order: list[str]) -> dict[str, dict[str, Any]]:
    """Per model: max - min of P(AI) across the variants of each track scored in all of them,
    summarised overall and per subset, with the codec sanity verdict."""
    out: dict[str, dict[str, Any]] = {}
    scored = preds[(preds["status"] == "scored") & preds["variant"].astype(str).isin(order)]
    for model, rows in scored.groupby("model", sort=True):
        wide = rows.pivot_table(index=["bench", "track_id"], columns="variant", values="prob")
        complete = wide.dropna()
        complete = complete[[v for v in order if v in complete.columns]]
        if complete.shape[1] < len(order):
            complete = complete.iloc[0:0]
        deltas = (complete.max(axis=1) - complete.min(axis=1)).rename("delta")
        subsets = rows.drop_duplicates(["bench", "track_id"]).set_index(["bench", "track_id"])
        joined = deltas.to_frame().join(subsets["subset"])
        overall = _spread_stats(joined["delta"].to_numpy())
        passed = (
            None
            if overall["mean"] is None
            else overall["mean"] <= DELTA_MEAN_MAX and overall["max"] <= DELTA_MAX_MAX
        )
        out[str(model)] = {
            **overall,
            "pass": passed,
            "subsets": {
                str(subset): _spread_stats(part["delta"].to_numpy())
                for subset, part in joined.groupby("subset", sort=True)
            },
        }
    return out


def _diff(value: float | None, digits: int = 3) -> str:
    """A signed difference, a small negative one keeping its minus (``-0.000``)."""
    return signed(value, digits, clean_zero=False)


VARIANT_HEADERS = ["model", "variant", "F1", "ΔF1", "AUC", "ΔAUC", "TPR", "FPR", "failed / n"]
TABLE_X_HEADERS = ["model", "codec", "AI TPR", "real FPR", "ΔTPR (pp)", "failed"]
SPREAD_HEADERS = ["model", "tracks", "mean", "median", "p90", "max", "sanity"]
SUBSET_SPREAD_HEADERS = ["model", "subset", "tracks", "mean", "median", "p90", "max"]


def variants_title(primary: str) -> str:
    """Title of the variants table (a heading in report.md, a table title in the terminal)."""
    return f"Variants (differences against `{primary}` on the same tracks)"


def variant_rows(
    metrics: dict[str, dict[str, dict[str, Any]]], primary: str, order: list[str] | None = None
) -> list[list[str]]:
    """Cells of the variants table, one row per (model, variant): each variant's metrics, the
    differences against `primary`, and its failed tracks out of its rows. `order` fixes the
    variant order (default: the order of `metrics`)."""
    rows = []
    for model, by_variant in metrics.items():
        base = by_variant.get(primary, {})
        variants = [v for v in order if v in by_variant] if order else list(by_variant)
        for variant in variants:
            m = by_variant[variant]
            rows.append([
                model, variant, fmt(m["f1"]), _diff(_delta(m["f1"], base.get("f1"))),
                fmt(m["auc"]), _diff(_delta(m["auc"], base.get("auc"))),
                fmt(m["tpr"]), fmt(m["fpr"]), f"{m['n_failed']} / {m['n']}",
            ])  # fmt: skip
    return rows


def variants_markdown(metrics: dict[str, dict[str, dict[str, Any]]], primary: str) -> str:
    """Every variant's metrics beside the primary variant's, with the differences."""
    return (
        f"## {variants_title(primary)}\n\n"
        + md_table(VARIANT_HEADERS, variant_rows(metrics, primary), right=set(range(2, 9)))
        + "\n"
    )


def table_x_title(reference: str) -> str:
    """Title of Table X, the codec layout, against the `reference` codec."""
    return f"Table X layout: codecs (ΔTPR in percentage points against {reference})"


def spread_title() -> str:
    """Title of the P(AI) spread table, with the codec sanity bounds."""
    return (
        f"P(AI) spread across codecs (max - min per track; passes when mean <= "
        f"{DELTA_MEAN_MAX} and max <= {DELTA_MAX_MAX})"
    )


def table_x_rows(table: list[dict]) -> list[list[str]]:
    """Cells of Table X, one row per (model, codec)."""
    return [
        [r["model"], r["codec"], fmt(r["ai_tpr"]), fmt(r["real_fpr"]),
         _diff(r["delta_tpr_pp"], digits=1), str(r["n_failed"])]
        for r in table
    ]  # fmt: skip


def spread_rows(spread: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Cells of the P(AI) spread table, one row per model, with the codec sanity verdict."""
    return [
        [model, str(s["n_tracks"]), fmt(s["mean"]), fmt(s["median"]), fmt(s["p90"]),
         fmt(s["max"]), MISSING if s["pass"] is None else ("PASS" if s["pass"] else "FAIL")]
        for model, s in spread.items()
    ]  # fmt: skip


def subset_spread_rows(spread: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Cells of the per-subset P(AI) spread table, one row per (model, subset)."""
    return [
        [model, subset, str(s["n_tracks"]), fmt(s["mean"]), fmt(s["median"]), fmt(s["p90"]),
         fmt(s["max"])]
        for model, block in spread.items()
        for subset, s in block["subsets"].items()
    ]  # fmt: skip


def codec_markdown(table: list[dict], spread: dict[str, dict[str, Any]], reference: str) -> str:
    """Table X and the per-track P(AI) spread across codecs with the sanity verdict."""
    lines = [
        f"## {table_x_title(reference)}",
        "",
        md_table(TABLE_X_HEADERS, table_x_rows(table), right={2, 3, 4, 5}),
        "",
        f"## {spread_title()}",
        "",
        md_table(SPREAD_HEADERS, spread_rows(spread), right={1, 2, 3, 4, 5}),
        "",
        "Per subset:",
        "",
        md_table(SUBSET_SPREAD_HEADERS, subset_spread_rows(spread), right={2, 3, 4, 5, 6}),
    ]
    return "\n".join(lines) + "\n"


def plot_codec_probs(preds: pd.DataFrame, order: list[str], path: Path) -> Path:
    """P(AI) per codec, real and AI tracks side by side, one row of axes per model."""
    scored = preds[preds["status"] == "scored"]
    models = sorted(scored["model"].astype(str).unique()) or ["(none)"]
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(1.4 * len(order) + 3, 3 * len(models)))
        axes = fig.subplots(len(models), 1, squeeze=False)
        for ax, model in zip(axes[:, 0], models, strict=True):
            rows = scored[scored["model"].astype(str) == model]
            for offset, label, color in ((-0.18, "real", "tab:blue"), (0.18, "ai", "tab:red")):
                data = [
                    rows.loc[(rows["variant"] == v) & (rows["label"] == label), "prob"].to_numpy()
                    for v in order
                ]
                present = [i for i, d in enumerate(data) if d.size]
                if present:
                    parts = ax.boxplot(
                        [data[i] for i in present],
                        positions=np.arange(len(order))[present] + offset,
                        widths=0.3,
                        patch_artist=True,
                    )
                    for box in parts["boxes"]:
                        box.set_facecolor(color)
                        box.set_alpha(0.5)
                ax.plot([], [], color=color, lw=6, alpha=0.5, label=label)
            ax.set_xticks(np.arange(len(order)), [v.removeprefix("codec:") for v in order])
            ax.set(ylim=(-0.02, 1.02), ylabel="P(AI)", title=f"{model}: P(AI) per codec")
            ax.grid(alpha=0.3, axis="y")
            ax.legend(loc="center right", fontsize=8)
        fig.tight_layout()
        return _save(fig, path)
