"""Detection metrics over a predictions table: pure functions, no I/O, no models.

Conventions, relied on by every report:

- The positive class is AI. A track is called AI when ``prob >= threshold``; ties with the
  threshold count as AI.
- A quantity whose denominator is zero is ``None`` (never NaN), so JSON stays valid and a reader
  sees "undefined" rather than a number: precision without predicted positives, recall without
  AI tracks, FPR without real tracks, F1 when there are no AI tracks and no AI calls.
- Threshold-free metrics (AUC, EER, average precision, the FPR <= 5% operating point) need
  both classes among the scored tracks (AP needs only AI tracks); otherwise ``None``.
- Detection cost and calibration (minDCF, actDCF, Cllr, minCllr; see
  :mod:`artifactbench.analysis.detection_cost`) follow ASVspoof 5 with AI as the attack class
  and real as bona fide; minDCF, Cllr and minCllr are threshold-free, actDCF decides at the cost
  model's Bayes threshold (not at ``threshold``).
- Bootstrap intervals resample AI and real tracks separately (stratified by label, so every
  replicate keeps the class sizes) with a seeded generator; a replicate whose metric is
  undefined is dropped and ``n_finite`` says how many remained.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.detection_cost import (
    COST_METRICS,
    DEFAULT_COST,
    CostModel,
    act_dcf_with_failures,
    cllr,
    cost_replicates,
    min_cllr,
    min_dcf,
)
from artifactbench.predictions import KEY, STAGES, validate_predictions

FPR_TARGET = 0.05
BOOTSTRAP_RESAMPLES = 2000
CI_LEVEL = 0.95
CI_METRICS: tuple[str, ...] = ("f1", "precision", "recall", "fpr", "auc")
# Replicates per chunk are sized so that one chunk holds about this many weights.
_CHUNK_CELLS = 1_000_000


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def as_positive(labels: Any) -> np.ndarray:
    """Label column (``ai`` / ``real``) or 0/1 values as a boolean array, True = AI."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "OUS":
        bad = sorted({str(v) for v in arr} - {"ai", "real"})
        if bad:
            raise ValueError(f"labels must be 'ai' or 'real', got {bad}")
        return arr == "ai"
    return arr.astype(bool)


def confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """tp/fp/tn/fn of boolean predictions (True = called AI) against y (True = AI)."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    return {
        "tp": int(np.sum(y & pred)),
        "fp": int(np.sum(~y & pred)),
        "tn": int(np.sum(~y & ~pred)),
        "fn": int(np.sum(y & ~pred)),
    }


def rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float | None]:
    """Precision, recall (TPR), FPR, F1 and accuracy from counts; None where undefined."""
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
    }


def _cumulative(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) with the AI and real counts scoring at or above each."""
    order = np.argsort(-prob, kind="mergesort")
    scores, hits = prob[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(hits)[last]
    return scores[last], tps, (last + 1) - tps


def roc_points(
    y: np.ndarray, prob: np.ndarray, corners_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ROC operating point: (fpr, tpr, thresholds), thresholds descending from +inf.

    One point per distinct score (as scikit-learn's ``roc_curve(drop_intermediate=False)``),
    so exact operating thresholds can be read off. `corners_only` keeps the two ends and every
    point where the curve turns (a point between two collinear neighbours on a vertical or
    horizontal run is dropped), which draws the same curve with far fewer points. Empty arrays
    when a class is missing.
    """
    y, prob = np.asarray(y, dtype=bool), np.asarray(prob, dtype=float)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        empty = np.empty(0)
        return empty, empty, empty
    thresholds, tps, fps = _cumulative(y, prob)
    fpr, tpr, at = np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, thresholds]
    if corners_only and fpr.size > 2:
        counts_fp, counts_tp = np.r_[0, fps], np.r_[0, tps]
        turns = np.logical_or(np.diff(counts_fp, 2), np.diff(counts_tp, 2))
        keep = np.r_[True, turns, True]
        fpr, tpr, at = fpr[keep], tpr[keep], at[keep]
    return fpr, tpr, at


def _ranking(y: np.ndarray, prob: np.ndarray) -> dict[str, float | None]:
    """Threshold-free metrics of finite scores."""
    out: dict[str, float | None] = {
        "auc": None,
        "eer": None,
        "eer_threshold": None,
        "average_precision": None,
        "threshold_at_fpr05": None,
        "tpr_at_fpr05": None,
        "fpr_at_fpr05": None,
    }
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos:
        return out
    thresholds, tps, fps = _cumulative(y, prob)
    recall_step = np.diff(np.r_[0, tps]) / pos
    out["average_precision"] = float(np.sum(recall_step * tps / (tps + fps)))
    if not neg:
        return out
    out["auc"] = float(_weighted_auc(y, prob, np.ones((1, y.size)))[0])
    out["eer"], out["eer_threshold"] = _equal_error(thresholds, tps, fps, pos, neg)
    # Lowest threshold with FPR <= 5%, decided on integer counts so 1 FP in 20 qualifies.
    bound = Fraction(FPR_TARGET).limit_denominator(10**6)
    ok = np.flatnonzero(fps * bound.denominator <= bound.numerator * neg)
    if ok.size:
        j = int(ok[-1])
        out["threshold_at_fpr05"] = float(thresholds[j])
        out["tpr_at_fpr05"] = float(tps[j] / pos)
        out["fpr_at_fpr05"] = float(fps[j] / neg)
    else:
        out["tpr_at_fpr05"] = 0.0
        out["fpr_at_fpr05"] = 0.0
    return out


def _equal_error(
    thresholds: np.ndarray, tps: np.ndarray, fps: np.ndarray, pos: int, neg: int
) -> tuple[float, float]:
    """EER and the first ROC threshold where FPR >= FNR, decided on integer counts.

    FPR >= FNR is ``fp / neg >= (pos - tp) / pos``, i.e. ``fp * pos >= (pos - tp) * neg``; in
    floats an exact tie (``1 - 4/6`` against ``2/6``) can compare as unequal and move the point
    one step down the curve. The EER is interpolated linearly between that point and the one
    before, with exact fractions.
    """
    fp = np.r_[0, fps].astype(np.int64)
    fn = pos - np.r_[0, tps].astype(np.int64)
    # gap = (FNR - FPR) * pos * neg; index 0 (threshold +inf) has gap pos * neg > 0.
    gap = fn * neg - fp * pos
    i = int(np.argmax(gap <= 0))
    d0, d1 = int(gap[i - 1]), int(gap[i])
    eer = Fraction(int(fp[i - 1]), neg) + Fraction(d0, d0 - d1) * Fraction(
        int(fp[i] - fp[i - 1]), neg
    )
    return float(eer), float(thresholds[i - 1])


def _scored(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (True = AI) and P(AI) of scored tracks; failed tracks belong to compute_metrics."""
    y = as_positive(y_true)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError("y_true and prob must have the same length")
    if not np.all(np.isfinite(p)):
        raise ValueError("prob must be finite; failed tracks belong to compute_metrics")
    return y, p


def equal_error_rate(y_true: Any, prob: Any) -> float | None:
    """The EER of scored tracks exactly as :func:`binary_metrics` computes it, for callers that
    need it alone on many subsets (condition matrices); None without both classes."""
    y, p = _scored(y_true, prob)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return None
    thresholds, tps, fps = _cumulative(y, p)
    return _equal_error(thresholds, tps, fps, pos, neg)[0]


def _weighted_auc(y: np.ndarray, prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC (ties count half) for each row of per-track weights; NaN where a class has no weight.

    With weights = resample counts this is the AUC of each bootstrap replicate, computed from one
    sort of the original scores instead of one sort per replicate.
    """
    neg_scores = prob[~y]
    order = np.argsort(neg_scores, kind="mergesort")
    sorted_neg = neg_scores[order]
    pos_scores = prob[y]
    below = np.searchsorted(sorted_neg, pos_scores, side="left")
    upto = np.searchsorted(sorted_neg, pos_scores, side="right")
    w_pos = weights[:, y]
    w_neg = weights[:, ~y][:, order]
    cum = np.zeros((weights.shape[0], sorted_neg.size + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    wins = cum[:, below] + 0.5 * (cum[:, upto] - cum[:, below])
    den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sum(w_pos * wins, axis=1) / den, np.nan)


def _resample_counts(rng: np.random.Generator, size: int, reps: int) -> np.ndarray:
    """How often each of `size` items is drawn in each of `reps` resamples with replacement."""
    if size == 0:
        return np.zeros((reps, 0))
    draws = rng.integers(0, size, size=(reps, size))
    flat = (draws + (np.arange(reps) * size)[:, None]).ravel()
    return np.bincount(flat, minlength=reps * size).reshape(reps, size).astype(float)


def bootstrap_intervals(
    y: np.ndarray,
    pred: np.ndarray,
    prob: np.ndarray,
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    draw: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    cost: CostModel | None = None,
) -> dict[str, dict[str, float | int | None]]:
    """Percentile intervals of F1, precision, recall, FPR (from `pred`) and AUC (from `prob`),
    and with a `cost` model of minDCF, actDCF, Cllr and minCllr (:data:`COST_METRICS`).

    Resampling is stratified by label; `draw(rng, reps)` may replace it with other resample
    counts per track ([reps, n], e.g. whole clusters). Tracks with a non-finite `prob` take part
    in the count metrics through `pred` but not in the AUC, which is how imputed failures are
    resampled; actDCF counts them as errors of their class, minDCF, Cllr and minCllr leave them
    out as the AUC does. The cost metrics are computed on the same replicates as the others, so
    adding them changes no other interval.
    """
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    prob = np.asarray(prob, dtype=float)
    rng = np.random.default_rng(seed)
    idx_pos, idx_neg = np.flatnonzero(y), np.flatnonzero(~y)
    ranked = np.isfinite(prob)
    chunk = max(1, _CHUNK_CELLS // max(1, y.size))
    cells = [(y & pred).astype(float), (y & ~pred).astype(float)]
    cells += [(~y & pred).astype(float), (~y & ~pred).astype(float)]
    names = CI_METRICS + (COST_METRICS if cost is not None else ())
    cost_of = cost_replicates(y, prob, cost) if cost is not None else None
    values: dict[str, list[np.ndarray]] = {m: [] for m in names}
    done = 0
    while done < resamples:
        reps = min(chunk, resamples - done)
        if draw is not None:
            weights = draw(rng, reps)
        else:
            weights = np.zeros((reps, y.size))
            weights[:, idx_pos] = _resample_counts(rng, idx_pos.size, reps)
            weights[:, idx_neg] = _resample_counts(rng, idx_neg.size, reps)
        tp, fn, fp, tn = (weights @ cell for cell in cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            values["precision"].append(tp / (tp + fp))
            values["recall"].append(tp / (tp + fn))
            values["fpr"].append(fp / (fp + tn))
            values["f1"].append(2 * tp / (2 * tp + fp + fn))
        if ranked.any():
            auc = _weighted_auc(y[ranked], prob[ranked], weights[:, ranked])
        else:
            auc = np.full(reps, np.nan)
        values["auc"].append(auc)
        if cost_of is not None:
            for name, arr in cost_of(weights).items():
                values[name].append(arr)
        done += reps
    tail = 100 * (1 - level) / 2
    out: dict[str, dict[str, float | int | None]] = {}
    for name, parts in values.items():
        arr = np.concatenate(parts) if parts else np.empty(0)
        arr = arr[np.isfinite(arr)]
        low, high = np.percentile(arr, [tail, 100 - tail]) if arr.size else (None, None)
        out[name] = {
            "low": None if low is None else float(low),
            "high": None if high is None else float(high),
            "n_finite": int(arr.size),
        }
    return out


def _detection_cost(y: np.ndarray, prob: np.ndarray, cost: CostModel) -> dict[str, Any]:
    """minDCF (and its P(AI) threshold), Cllr and minCllr of the finite `prob` values; actDCF
    of every track, one with a non-finite `prob` (failed) counted as an error of its class."""
    ranked = np.isfinite(prob)
    y_r, p_r = y[ranked], prob[ranked]
    value, threshold = min_dcf(y_r, p_r, cost)
    return {
        "min_dcf": value,
        "min_dcf_threshold": threshold,
        "act_dcf": act_dcf_with_failures(y, prob, cost),
        "cllr": cllr(y_r, p_r),
        "min_cllr": min_cllr(y_r, p_r),
    }


def _evaluate(
    y: np.ndarray,
    pred: np.ndarray,
    prob: np.ndarray,
    *,
    seed: int,
    resamples: int,
    cost: CostModel = DEFAULT_COST,
) -> dict[str, Any]:
    """All metrics: counts from `pred`, threshold-free ones from the finite `prob` values."""
    counts = confusion(y, pred)
    ranked = np.isfinite(prob)
    out: dict[str, Any] = {
        "n": int(y.size),
        "n_ai": int(y.sum()),
        "n_real": int((~y).sum()),
        **counts,
        **rates(**counts),
        **_ranking(y[ranked], prob[ranked]),
        **_detection_cost(y, prob, cost),
    }
    out["ci"] = bootstrap_intervals(y, pred, prob, seed=seed, resamples=resamples, cost=cost)
    return out


def binary_metrics(
    y_true: Any,
    prob: Any,
    threshold: float = 0.5,
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    cost: CostModel = DEFAULT_COST,
) -> dict[str, Any]:
    """Every metric of one model on scored tracks (True / ``"ai"`` = AI, prob = P(AI)).

    Keys: n, n_ai, n_real, tp, fp, tn, fn, precision, recall, fpr, f1, accuracy, auc, eer,
    eer_threshold (first ROC threshold where FPR >= FNR, decided on integer counts; the EER
    itself is interpolated linearly between that point and the one before), average_precision
    (step-wise, as scikit-learn), threshold_at_fpr05 / tpr_at_fpr05 / fpr_at_fpr05 (the lowest
    threshold whose FPR <= 5%; threshold None with TPR 0 when only rejecting every track meets
    it), min_dcf / min_dcf_threshold / act_dcf / cllr / min_cllr (ASVspoof 5's detection cost
    and calibration under `cost`, AI the attack class; min_dcf_threshold is the P(AI) threshold
    of the minDCF operating point, AI when ``prob >= it``, inf when it calls nothing AI), and
    ci (bootstrap intervals, see :func:`bootstrap_intervals`).
    """
    y, p = _scored(y_true, prob)
    return _evaluate(y, p >= threshold, p, seed=seed, resamples=resamples, cost=cost)


def _model_arrays(rows: pd.DataFrame, threshold: float) -> tuple[np.ndarray, ...]:
    """y, failed mask, prob (NaN when failed) and the imputed call of each row."""
    y = as_positive(rows["label"].astype(str).to_numpy())
    failed = (rows["status"] != "scored").to_numpy()
    prob = pd.to_numeric(rows["prob"], errors="coerce").to_numpy(dtype=float)
    prob = np.where(failed, np.nan, prob)
    # A failed AI track is a miss and a failed real track a false positive: the call is "not y".
    pred = np.where(failed, ~y, prob >= threshold)
    return y, failed, prob, pred


def compute_metrics(
    preds: pd.DataFrame,
    threshold: float,
    seed: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    cost: CostModel = DEFAULT_COST,
) -> dict[str, Any]:
    """Per-model metrics of a predictions table, on scored tracks and under both accountings.

    - ``scored``: each model on the tracks it scored.
    - ``accounting.exclude``: only tracks scored by every model in the table (a track any model
      failed on, or lacks a row for, is dropped from every model), so denominators match.
    - ``accounting.impute``: every row of the model; a failed AI track is a false negative and a
      failed real track a false positive. Counts, rates and their intervals include failures,
      and so does actDCF (a failed AI track is a false alarm, accepted as real; a failed real
      track a miss); AUC, EER, AP, the FPR <= 5% point, minDCF, Cllr and minCllr are computed
      on scored tracks only.

    `cost` is the detection cost model of minDCF and actDCF (ASVspoof 5's by default), written
    as the top-level ``cost_model`` block.

    Rows are sorted by (bench, track_id) first and every bootstrap starts from `seed`, so the
    result does not depend on row order and models under ``exclude`` share their resamples.
    """
    validate_predictions(preds)
    frame = preds.sort_values(["model", *KEY], kind="mergesort")
    scored_keys = [
        set(map(tuple, rows.loc[rows["status"] == "scored", KEY].to_numpy().tolist()))
        for _, rows in frame.groupby("model", sort=True, observed=True)
    ]
    common = set.intersection(*scored_keys) if scored_keys else set()
    models: dict[str, Any] = {}
    for model, rows in frame.groupby("model", sort=True, observed=True):
        y, failed, prob, pred = _model_arrays(rows, threshold)
        keys = list(map(tuple, rows[KEY].to_numpy().tolist()))
        keep = np.fromiter((k in common for k in keys), dtype=bool, count=len(keys))
        ok = ~failed
        stages = rows.loc[failed, "stage"].fillna("unknown").value_counts()
        scored = _evaluate(y[ok], pred[ok], prob[ok], seed=seed, resamples=resamples, cost=cost)
        # Without failures or dropped tracks an accounting is the scored population itself.
        if keep.all():
            exclude = copy.deepcopy(scored)
        else:
            exclude = _evaluate(
                y[keep], pred[keep], prob[keep], seed=seed, resamples=resamples, cost=cost
            )
        if ok.all():
            impute = copy.deepcopy(scored)
        else:
            impute = _evaluate(y, pred, prob, seed=seed, resamples=resamples, cost=cost)
        models[str(model)] = {
            "n": int(y.size),
            "n_scored": int(ok.sum()),
            "n_failed": int(failed.sum()),
            "failures": {s: int(stages.get(s, 0)) for s in (*STAGES, "unknown")},
            "scored": scored,
            "accounting": {
                "exclude": {"n_dropped": int((~keep).sum()), **exclude},
                "impute": {"n_imputed": int(failed.sum()), "threshold_free_on": "scored", **impute},
            },
        }
    return {
        "threshold": float(threshold),
        "seed": int(seed),
        "positive_label": "ai",
        "decision": "ai when prob >= threshold",
        "bootstrap": {
            "resamples": int(resamples),
            "level": CI_LEVEL,
            "method": "percentile, resampled within each label",
        },
        "fpr_target": FPR_TARGET,
        "cost_model": cost.to_json(),
        "n_tracks": int(frame[KEY].drop_duplicates().shape[0]),
        "n_common_scored": len(common),
        "models": models,
    }


def f1_curve(y_true: Any, prob: Any, thresholds: np.ndarray) -> np.ndarray:
    """F1 at each threshold (NaN where undefined), for the F1-against-threshold plot."""
    y = as_positive(y_true)
    p = np.asarray(prob, dtype=float)
    pos_sorted = np.sort(p[y])
    neg_sorted = np.sort(p[~y])
    t = np.asarray(thresholds, dtype=float)
    tp = pos_sorted.size - np.searchsorted(pos_sorted, t, side="left")
    fp = neg_sorted.size - np.searchsorted(neg_sorted, t, side="left")
    fn = pos_sorted.size - tp
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / den, np.nan)
