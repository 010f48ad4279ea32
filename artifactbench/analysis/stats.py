"""Paired comparisons of two detectors and clustered intervals: pure functions, no I/O
(single-model diagnostics are in :mod:`artifactbench.analysis.diagnostics`).

A leaderboard gap between two detectors scored on the same tracks is only worth reporting when
it survives the sampling noise of the track set, and that noise is shared: both models saw the
same tracks. So the comparisons here are paired (one resample, or one set of placement values,
serves both models) rather than two independent intervals that overlap for no reason.

Conventions, shared with :mod:`artifactbench.analysis.metrics`:

- Labels are booleans (True = AI) or ``"ai"`` / ``"real"``; probabilities are P(AI).
- A track is called AI when ``prob >= threshold``; ties with the threshold count as AI, so tied
  tracks are always called together and no threshold can split them.
- A non-finite prob (NaN = a failed track) is excluded. Paired functions keep only the tracks
  where *both* models have a finite prob; every result says how many were left out
  (``n_excluded``) and how many remained (``n``).
- An undefined quantity is ``None`` (never NaN), usually with a ``reason`` string.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from artifactbench.analysis.metrics import (
    _CHUNK_CELLS,
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    _resample_counts,
    _weighted_auc,
    as_positive,
    bootstrap_intervals,
    confusion,
    rates,
)

PAIRED_RESAMPLES = 2000
TIES = "called AI when prob >= threshold: tracks tied at a threshold are called together"
# Placement-value differences closer than this are treated as constant (zero variance). Real
# differences between placement values are multiples of 1 / (2 * class size), far above it.
_CONSTANT_TOL = 1e-12


def finite_rows(y: Any, *probs: Any) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Labels and probs restricted to tracks where every prob is finite, plus that mask."""
    labels = as_positive(y)
    if labels.ndim != 1:
        raise ValueError("labels must be one-dimensional")
    arrays = [np.asarray(p, dtype=float) for p in probs]
    for arr in arrays:
        if arr.shape != labels.shape:
            raise ValueError("labels and probs must have the same length")
    keep = np.ones(labels.shape, dtype=bool)
    for arr in arrays:
        keep &= np.isfinite(arr)
    return labels[keep], [arr[keep] for arr in arrays], keep


def class_counts(y: np.ndarray, keep: np.ndarray) -> dict[str, int]:
    return {
        "n": int(y.size),
        "n_excluded": int((~keep).sum()),
        "n_ai": int(y.sum()),
        "n_real": int((~y).sum()),
    }


# --- paired bootstrap ----------------------------------------------------------------------


def _strata(
    y: np.ndarray, clusters: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray | None, int]]:
    """Per label stratum (AI first): track indices, their resampling-unit codes, unit count.

    Without clusters each track is its own unit (codes None). With clusters, a unit is a
    (label, cluster) pair: a cluster holding both labels is resampled independently within
    each stratum, which keeps the class sizes' stratification intact.
    """
    out = []
    for stratum in (y, ~y):
        idx = np.flatnonzero(stratum)
        if clusters is None:
            out.append((idx, None, idx.size))
        else:
            codes, uniques = pd.factorize(clusters[idx])
            out.append((idx, codes, len(uniques)))
    return out


def _stratified_weights(
    rng: np.random.Generator,
    size: int,
    strata: list[tuple[np.ndarray, np.ndarray | None, int]],
    reps: int,
) -> np.ndarray:
    """Resample counts per track, one row per replicate; a drawn cluster brings all members.

    Draws in the same order as :func:`artifactbench.analysis.metrics.bootstrap_intervals` (AI, then
    real), so with no clusters (or all-singleton clusters) the replicates are the same ones.
    """
    weights = np.zeros((reps, size))
    for idx, codes, units in strata:
        counts = _resample_counts(rng, units, reps)
        weights[:, idx] = counts if codes is None else counts[:, codes]
    return weights


def _cluster_array(clusters: Any, size: int) -> np.ndarray | None:
    """Cluster ids as an object array of one id per track (None stays None); rejects gaps."""
    if clusters is None:
        return None
    ids = np.asarray(clusters, dtype=object)
    if ids.shape != (size,):
        raise ValueError("clusters must have one id per track")
    if pd.isna(ids).any():
        raise ValueError("every track needs a cluster id")
    return ids


def _weighted_f1(weights: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 of each replicate (NaN where undefined) from per-track weights."""
    tp = weights @ (y & pred).astype(float)
    fp = weights @ (~y & pred).astype(float)
    fn = weights @ (y & ~pred).astype(float)
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / den, np.nan)


def _interval(
    a: float | None, b: float | None, values: list[np.ndarray], level: float
) -> dict[str, Any]:
    """Point values, their difference and the percentile interval of the finite replicates."""
    arr = np.concatenate(values) if values else np.empty(0)
    arr = arr[np.isfinite(arr)]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(arr, [tail, 100 - tail]) if arr.size else (None, None)
    return {
        "a": a,
        "b": b,
        "difference": None if a is None or b is None else a - b,
        "low": None if low is None else float(low),
        "high": None if high is None else float(high),
        "n_finite": int(arr.size),
    }


def paired_bootstrap(
    y: Any,
    prob_a: Any,
    prob_b: Any,
    threshold: float,
    *,
    seed: int,
    resamples: int = PAIRED_RESAMPLES,
    level: float = CI_LEVEL,
    clusters: Any = None,
) -> dict[str, Any]:
    """Percentile intervals of F1(a) - F1(b) and AUC(a) - AUC(b), with shared resamples.

    Both models are evaluated on the same resample each time, so the interval reflects the
    noise in the *difference* (which is much smaller than each model's own noise when the
    models agree on which tracks are hard). Resampling is stratified by label. With
    ``clusters`` (one id per track, e.g. lineage or source), whole clusters are drawn within
    each label stratum instead of tracks, because near-duplicate tracks are not independent
    evidence. Only tracks where both probs are finite take part. A replicate whose metric is
    undefined for either model is dropped; ``n_finite`` says how many remained.

    Keys: n, n_excluded, n_ai, n_real, threshold, seed, resamples, level, method, n_clusters
    (per stratum, None without clusters), f1 and auc, each with a, b, difference, low, high,
    n_finite.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    labels, (pa, pb), keep = finite_rows(y, prob_a, prob_b)
    ids = _cluster_array(clusters, keep.size)
    if ids is not None:
        ids = ids[keep]
    strata = _strata(labels, ids)
    pred_a, pred_b = pa >= threshold, pb >= threshold
    f1_a = rates(**confusion(labels, pred_a))["f1"]
    f1_b = rates(**confusion(labels, pred_b))["f1"]
    both = bool(labels.any() and (~labels).any())
    ones = np.ones((1, labels.size))
    auc_a = float(_weighted_auc(labels, pa, ones)[0]) if both else None
    auc_b = float(_weighted_auc(labels, pb, ones)[0]) if both else None

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(1, labels.size))
    f1_diffs: list[np.ndarray] = []
    auc_diffs: list[np.ndarray] = []
    done = 0
    while done < resamples:
        reps = min(chunk, resamples - done)
        weights = _stratified_weights(rng, labels.size, strata, reps)
        f1_diffs.append(
            _weighted_f1(weights, labels, pred_a) - _weighted_f1(weights, labels, pred_b)
        )
        if both:
            auc_diffs.append(
                _weighted_auc(labels, pa, weights) - _weighted_auc(labels, pb, weights)
            )
        done += reps
    method = "paired percentile bootstrap, resampled within each label"
    return {
        **class_counts(labels, keep),
        "threshold": float(threshold),
        "seed": int(seed),
        "resamples": int(resamples),
        "level": float(level),
        "method": method + (", whole clusters" if clusters is not None else ", tracks"),
        "n_clusters": None if clusters is None else {"ai": strata[0][2], "real": strata[1][2]},
        "f1": _interval(f1_a, f1_b, f1_diffs, level),
        "auc": _interval(auc_a, auc_b, auc_diffs, level),
    }


def cluster_bootstrap_intervals(
    y: Any,
    pred: Any,
    prob: Any,
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    clusters: Any = None,
) -> dict[str, dict[str, float | int | None]]:
    """One model's percentile intervals of F1, precision, recall, FPR and AUC, by whole clusters.

    :func:`artifactbench.analysis.metrics.bootstrap_intervals` with the weights of
    :func:`paired_bootstrap`: resampling is stratified by label, and with ``clusters`` (one id
    per track, e.g. lineage or source) a draw brings every member of its (label, cluster) unit,
    because tracks of one lineage are not independent evidence. F1, precision, recall and FPR
    come from the calls ``pred``; the AUC from the tracks with a finite ``prob``. Without
    clusters (or with one cluster per track) the replicates are those of
    ``metrics.bootstrap_intervals`` with the same seed, so the intervals are identical.

    Keys: f1, precision, recall, fpr, auc, each with low, high, n_finite (the same shape as
    ``metrics.bootstrap_intervals``).
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    labels = as_positive(y)
    calls = np.asarray(pred, dtype=bool)
    p = np.asarray(prob, dtype=float)
    if labels.ndim != 1 or calls.shape != labels.shape or p.shape != labels.shape:
        raise ValueError("labels, calls and probs must be one-dimensional and of one length")
    strata = _strata(labels, _cluster_array(clusters, labels.size))
    return bootstrap_intervals(
        labels, calls, p, seed=seed, resamples=resamples, level=level,
        draw=lambda rng, reps: _stratified_weights(rng, labels.size, strata, reps),
    )  # fmt: skip


# --- DeLong ---------------------------------------------------------------------------------


def _placements(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components from midranks (ties count half).

    V10[i]: fraction of real tracks scored below AI track i. V01[j]: fraction of AI tracks
    scored above real track j. Both average to the AUC. Midranks give them in O(N log N):
    a track's rank among all tracks minus its rank within its own class counts the other
    class's tracks below it (ties half).
    """
    pos, neg = prob[y], prob[~y]
    m, n = pos.size, neg.size
    combined = sps.rankdata(np.r_[pos, neg])
    v10 = (combined[:m] - sps.rankdata(pos)) / n
    v01 = 1.0 - (combined[m:] - sps.rankdata(neg)) / m
    return v10, v01


def delong_test(y: Any, prob_a: Any, prob_b: Any) -> dict[str, Any]:
    """DeLong, DeLong & Clarke-Pearson (1988) test of AUC(a) = AUC(b) on the same tracks.

    The two AUCs are correlated (same tracks), so the variance of their difference is taken
    from the per-track placement values of both models together:
    Var = Var(V10_a - V10_b) / n_ai + Var(V01_a - V01_b) / n_real (sample variances).
    Only tracks where both probs are finite take part. Degenerate cases (a class with fewer
    than two tracks, or constant placement differences, e.g. identical rankings) give
    ``p = None`` with a ``reason`` instead of raising or returning NaN.

    Keys: n, n_excluded, n_ai, n_real, auc_a, auc_b, difference, variance, se, z, p, reason,
    method.
    """
    labels, (pa, pb), keep = finite_rows(y, prob_a, prob_b)
    out: dict[str, Any] = {
        **class_counts(labels, keep),
        "auc_a": None,
        "auc_b": None,
        "difference": None,
        "variance": None,
        "se": None,
        "z": None,
        "p": None,
        "reason": None,
        "method": "DeLong (1988), midrank placement values, two-sided normal p",
    }
    m, n = out["n_ai"], out["n_real"]
    if m == 0 or n == 0:
        out["reason"] = "needs both AI and real tracks"
        return out
    v10_a, v01_a = _placements(labels, pa)
    v10_b, v01_b = _placements(labels, pb)
    out["auc_a"] = float(v10_a.mean())
    out["auc_b"] = float(v10_b.mean())
    difference = float(v10_a.mean() - v10_b.mean())
    out["difference"] = difference
    if m < 2 or n < 2:
        out["reason"] = "needs at least two AI and two real tracks for the variance"
        return out
    d10, d01 = v10_a - v10_b, v01_a - v01_b
    if np.ptp(d10) <= _CONSTANT_TOL and np.ptp(d01) <= _CONSTANT_TOL:
        out["variance"] = 0.0
        out["se"] = 0.0
        out["reason"] = "zero variance: the placement differences are constant across tracks"
        return out
    variance = float(np.var(d10, ddof=1) / m + np.var(d01, ddof=1) / n)
    se = float(np.sqrt(variance))
    z = difference / se
    out.update(variance=variance, se=se, z=float(z), p=float(2 * sps.norm.sf(abs(z))))
    return out


# --- McNemar --------------------------------------------------------------------------------


def _calls(pred: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean calls and a validity mask; a float NaN call (failed track) is invalid."""
    arr = np.asarray(pred)
    if arr.shape != (size,):
        raise ValueError("labels and predictions must have the same length")
    if arr.dtype.kind == "f":
        valid = np.isfinite(arr)
        if not np.isin(arr[valid], (0.0, 1.0)).all():
            raise ValueError("predictions must be 0/1 calls; threshold the probs first")
        return arr == 1.0, valid
    return arr.astype(bool), np.ones(size, dtype=bool)


def mcnemar_test(y: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """McNemar's test of equal accuracy on paired calls (True / 1 = called AI).

    Only the discordant tracks carry information: b = a right and b wrong, c = a wrong and b
    right. Under the null each discordant track is a fair coin, so the exact two-sided p is
    ``min(1, 2 * Binom(b + c, 1/2).cdf(min(b, c)))``; b + c == 0 gives p = 1.0. The
    continuity-corrected chi-square, ``max(0, |b - c| - 1)^2 / (b + c)`` with one degree of
    freedom, is reported as a secondary figure (None when b + c == 0). Float calls may hold
    NaN for failed tracks; those tracks are excluded.

    Keys: n, n_excluded, b, c, both_right, both_wrong, accuracy_a, accuracy_b, p, chi2, p_chi2,
    method.
    """
    labels = as_positive(y)
    call_a, ok_a = _calls(pred_a, labels.size)
    call_b, ok_b = _calls(pred_b, labels.size)
    keep = ok_a & ok_b
    labels, call_a, call_b = labels[keep], call_a[keep], call_b[keep]
    right_a, right_b = call_a == labels, call_b == labels
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    discordant = b + c
    if discordant:
        p = min(1.0, float(2 * sps.binom.cdf(min(b, c), discordant, 0.5)))
        chi2: float | None = max(0, abs(b - c) - 1) ** 2 / discordant
        p_chi2: float | None = float(sps.chi2.sf(chi2, 1))
    else:
        p, chi2, p_chi2 = 1.0, None, None
    n = int(labels.size)
    return {
        "n": n,
        "n_excluded": int((~keep).sum()),
        "b": b,
        "c": c,
        "both_right": int(np.sum(right_a & right_b)),
        "both_wrong": int(np.sum(~right_a & ~right_b)),
        "accuracy_a": float(right_a.mean()) if n else None,
        "accuracy_b": float(right_b.mean()) if n else None,
        "p": p,
        "chi2": None if chi2 is None else float(chi2),
        "p_chi2": p_chi2,
        "method": "McNemar, exact binomial p; chi-square with continuity correction secondary",
    }
