"""Single-model diagnostics over a predictions table: operating points (the threshold's, the
best F1, the 5% FPR point) and calibration. Pure functions, no I/O; conventions as in
:mod:`artifactbench.analysis.stats` (ties called AI, non-finite probs excluded and counted)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from artifactbench.analysis.metrics import FPR_TARGET, _cumulative, confusion, f1_curve, rates
from artifactbench.analysis.stats import TIES, class_counts, finite_rows


def _point(y: np.ndarray, prob: np.ndarray, threshold: float, chosen: bool) -> dict[str, Any]:
    """Counts and rates of the calls ``prob >= threshold``."""
    counts = confusion(y, prob >= threshold)
    r = rates(**counts)
    return {
        "threshold": float(threshold),
        "tpr": r["recall"],
        "fpr": r["fpr"],
        "precision": r["precision"],
        "f1": r["f1"],
        **counts,
        "chosen_on_evaluated_data": chosen,
    }


def _impossible(reason: str) -> dict[str, Any]:
    return {"impossible": True, "reason": reason}


def operating_points(y: Any, prob: Any, threshold: float) -> dict[str, Any]:
    """One model's metrics at its run threshold and at two thresholds read off the data.

    - ``at_threshold``: the run's own threshold, the only honest figure of the three.
    - ``best_f1``: the threshold maximising F1 over the candidates (the distinct finite probs
      plus +inf); among equal F1 the highest threshold wins (fewest AI calls). Chosen on the
      evaluated tracks, so it is optimistic: a diagnostic of how far the run threshold is
      from this model's best, never a score to rank by.
    - ``at_fpr05``: the lowest candidate threshold whose FPR <= 5% (decided on integer counts,
      so 1 false positive in 20 real tracks qualifies), which maximises TPR under that bound.
      Predicting nothing as AI (+inf) always has FPR 0, so the point must call at least one
      track AI; when no such threshold exists (e.g. every real track scores the maximum)
      it is ``{"impossible": True}``. It too is chosen on the evaluated data. Unlike
      ``metrics.binary_metrics``'s ``threshold_at_fpr05``, a reject-everything answer is not
      reported as TPR 0.

    With no finite prob at all (e.g. every track failed) both chosen points are impossible
    with the reason ``no scored tracks``, not a reason about one class.

    Ties: a track is called AI when ``prob >= t``, so tracks tied at a score are always on the
    same side and the FPR can only move in steps of whole tie groups.

    Keys: n, n_excluded, n_ai, n_real, ties, fpr_target, at_threshold, best_f1, at_fpr05; each
    point has threshold, tpr, fpr, precision, f1, tp, fp, tn, fn, chosen_on_evaluated_data, or
    impossible and reason.
    """
    labels, (p,), keep = finite_rows(y, prob)
    out: dict[str, Any] = {
        **class_counts(labels, keep),
        "ties": TIES,
        "fpr_target": FPR_TARGET,
        "at_threshold": _point(labels, p, threshold, chosen=False),
    }
    n_ai, n_real = out["n_ai"], out["n_real"]
    if n_ai == 0 and n_real == 0:
        out["best_f1"] = _impossible("no scored tracks")
        out["at_fpr05"] = _impossible("no scored tracks")
        return out
    if n_ai == 0:
        out["best_f1"] = _impossible("no AI tracks: F1 is 0 or undefined at every threshold")
    else:
        candidates = np.r_[np.unique(p), np.inf]
        f1 = f1_curve(labels, p, candidates)
        best = int(np.flatnonzero(f1 == np.nanmax(f1))[-1])
        out["best_f1"] = _point(labels, p, float(candidates[best]), chosen=True)
    if n_ai == 0 or n_real == 0:
        out["at_fpr05"] = _impossible("needs both AI and real tracks")
        return out
    # Distinct scores, descending, with the AI / real counts at or above each: every one of
    # them calls at least one track AI, and the FPR only grows down the list.
    scores, _, fps = _cumulative(labels, p)
    bound = Fraction(FPR_TARGET).limit_denominator(10**6)
    ok = np.flatnonzero(fps * bound.denominator <= bound.numerator * n_real)
    if ok.size == 0:
        out["at_fpr05"] = _impossible(
            "no threshold that calls any track AI keeps the FPR within the target"
        )
    else:
        out["at_fpr05"] = _point(labels, p, float(scores[ok[-1]]), chosen=True)
    return out


# --- calibration ----------------------------------------------------------------------------


def calibration(y: Any, prob: Any, bins: int = 10) -> dict[str, Any]:
    """Brier score, reliability table and expected calibration error (ECE) of finite probs.

    A detector's prob is read as P(AI) by anyone setting a threshold, so whether 0.8 means
    "AI four times in five" matters separately from ranking quality. Bins are equal-width over
    [0, 1]: ``[k/bins, (k+1)/bins)``, the last one closed, so a prob on an inner edge goes to
    the upper bin. ECE = sum over bins of (count / n) * |mean prob - observed AI fraction|.
    Empty bins report ``None`` means and do not enter the ECE. Probs outside [0, 1] are
    rejected: they are scores, not probabilities.

    Keys: n, n_excluded, n_ai, n_real, brier, ece, bins (a list of lower, upper, count,
    mean_prob, fraction_ai).
    """
    if int(bins) < 1:
        raise ValueError("bins must be at least 1")
    bins = int(bins)
    labels, (p,), keep = finite_rows(y, prob)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], p, side="right")
    counts = np.bincount(which, minlength=bins)
    sum_p = np.bincount(which, weights=p, minlength=bins)
    sum_y = np.bincount(which, weights=labels.astype(float), minlength=bins)
    table = []
    ece = 0.0
    for k in range(bins):
        count = int(counts[k])
        mean_p = float(sum_p[k] / count) if count else None
        frac = float(sum_y[k] / count) if count else None
        if count:
            ece += count / p.size * abs(mean_p - frac)
        table.append(
            {
                "lower": float(edges[k]),
                "upper": float(edges[k + 1]),
                "count": count,
                "mean_prob": mean_p,
                "fraction_ai": frac,
            }
        )
    n = int(p.size)
    return {
        **class_counts(labels, keep),
        "brier": float(np.mean((p - labels) ** 2)) if n else None,
        "ece": float(ece) if n else None,
        "bins": table,
    }
