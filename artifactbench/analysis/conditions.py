"""Condition matrices: every subset under every variant, laid out as ASVspoof 5 reports attacks
under codec conditions, with pooled rows and a pooled column.

Rows are the subsets (AI subsets, then real ones, each in the metadata's order), then all AI
and all real tracks; columns are the variants in the run's order, then every variant pooled.

- ``tpr_fpr``: the share of the row's tracks under the column called AI at the run threshold
  (TPR of an AI row, FPR of a real row). A failed track counts as misclassified, as in the
  sanity protocol: a model cannot look robust by failing on the audio a codec broke.
- ``eer`` and ``min_dcf``: the row's scored tracks against every scored track of the other
  class under the same column (ASVspoof's pooled bona fide), on scored tracks only, as every
  threshold-free metric of the project. Both pooled rows compare all AI with all real tracks
  and hold the same values. ``min_dcf_threshold`` is the P(AI) threshold reaching minDCF
  (``inf``, null in JSON, when calling nothing AI is cheapest).
- ``n`` and ``n_failed``: the row's tracks under the column, and how many of them failed.

A cell without a track of each class it needs is ``None``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.detection_cost import CostModel, min_dcf
from artifactbench.analysis.metrics import as_positive, equal_error_rate
from artifactbench.analysis.sanity import subset_rules

POOLED = "pooled"
POOLED_AI = "all AI"
POOLED_REAL = "all real"
METRICS = ("tpr_fpr", "eer", "min_dcf", "min_dcf_threshold", "n", "n_failed")
NOTE = (
    "TPR/FPR: share of the row's tracks under the column's variant called AI at the run "
    "threshold (TPR for AI rows, FPR for real rows); a failed track counts as misclassified "
    "(a failed AI track is a miss, a failed real track a false positive), as in the sanity "
    "protocol. EER and minDCF: the row's scored tracks against every scored track of the other "
    "class under the same variant (the pooled column: across all variants), as ASVspoof 5 "
    "reports each attack and condition against all bona fide trials; failed tracks take no "
    "part in them. Both pooled rows compare all AI with all real tracks."
)


def run_cost_model(meta: dict[str, Any]) -> CostModel:
    """The run's cost model from its metadata (``cost_model``), else the default one; a key
    the block lacks keeps its default."""
    return CostModel.from_json(meta.get("cost_model"))


def condition_rows(
    preds: pd.DataFrame, subsets: dict[str, dict[str, Any]] | None
) -> list[tuple[str, str]]:
    """(row name, label) of every row: AI subsets, real subsets, then the two pooled rows."""
    rules = subset_rules(preds, subsets)
    rows = [(name, "ai") for name, rule in rules.items() if rule["label"] == "ai"]
    rows += [(name, "real") for name, rule in rules.items() if rule["label"] == "real"]
    return [*rows, (POOLED_AI, "ai"), (POOLED_REAL, "real")]


def _cell(
    mine: np.ndarray,
    other: np.ndarray,
    arrays: dict[str, np.ndarray],
    cost: CostModel,
) -> dict[str, Any]:
    """Every metric of one cell: `mine` selects the row's tracks under the column, `other`
    the other class's tracks under the same column."""
    failed, called, y, prob = arrays["failed"], arrays["called"], arrays["y"], arrays["prob"]
    n = int(mine.sum())
    out: dict[str, Any] = {
        "n": n,
        "n_failed": int((mine & failed).sum()),
        "tpr_fpr": float(called[mine].mean()) if n else None,
        "eer": None,
        "min_dcf": None,
        "min_dcf_threshold": None,
    }
    trials = (mine | other) & ~failed
    if (mine & trials).any() and (other & trials).any():
        out["eer"] = equal_error_rate(y[trials], prob[trials])
        out["min_dcf"], out["min_dcf_threshold"] = min_dcf(y[trials], prob[trials], cost)
    return out


def model_matrices(
    rows: pd.DataFrame,
    threshold: float,
    order: list[str],
    row_spec: list[tuple[str, str]],
    cost: CostModel,
) -> dict[str, Any]:
    """The matrices of one model's prediction rows (see the module docstring)."""
    y = as_positive(rows["label"].astype(str).to_numpy())
    failed = (rows["status"] != "scored").to_numpy()
    prob = pd.to_numeric(rows["prob"], errors="coerce").to_numpy(dtype=float)
    prob = np.where(failed, np.nan, prob)
    arrays = {
        "y": y,
        "failed": failed,
        "prob": prob,
        # A failed track is called the class it is not: AI tracks missed, real ones flagged.
        "called": np.where(failed, ~y, prob >= threshold),
    }
    subset = rows["subset"].astype(str).to_numpy()
    variant = rows["variant"].astype(str).to_numpy()
    columns = [(v, variant == v) for v in order] + [(POOLED, np.isin(variant, order))]
    out: dict[str, Any] = {
        "rows": [name for name, _ in row_spec],
        "row_labels": [label for _, label in row_spec],
        "columns": [name for name, _ in columns],
        **{metric: [] for metric in METRICS},
    }
    for name, label in row_spec:
        own_class = y if label == "ai" else ~y
        pooled = name in (POOLED_AI, POOLED_REAL)
        members = own_class & (pooled | (subset == name))
        cells = [_cell(members & col, ~own_class & col, arrays, cost) for _, col in columns]
        for metric in METRICS:
            out[metric].append([cell[metric] for cell in cells])
    return out


def condition_matrices(
    preds: pd.DataFrame,
    threshold: float,
    order: list[str],
    subsets: dict[str, dict[str, Any]] | None = None,
    cost: CostModel | None = None,
) -> dict[str, Any]:
    """Per model, the subset x variant matrices of TPR/FPR, EER and minDCF with pooled rows and
    column, the cell sizes, the threshold, cost model and a note on the accounting.

    `order` lists the variants (columns) in the run's order; `subsets` is the metadata's
    subset map, which orders the rows; `cost` defaults to :class:`CostModel`'s defaults.
    """
    cost = cost or CostModel()
    row_spec = condition_rows(preds, subsets)
    frame = preds.sort_values(["model", "bench", "track_id", "variant"], kind="mergesort")
    models = {
        str(model): model_matrices(rows, threshold, order, row_spec, cost)
        for model, rows in frame.groupby("model", sort=True, observed=True)
    }
    return {
        "threshold": float(threshold),
        "cost_model": cost.to_json(),
        "note": NOTE,
        "models": models,
    }
