"""Detection cost and calibration metrics as the ASVspoof 5 evaluation package defines them
(Track 1: minDCF primary; Cllr, EER and actDCF secondary).

The package speaks of a bona fide class and an attack (spoof) class, with scores where higher
means more bona fide. Here AI is the attack class and real the bona fide one. Scores are P(AI);
the log-likelihood ratio of AI against real is ``logit(P(AI))`` (P clipped to
``[LLR_EPS, 1 - LLR_EPS]`` so a saturated float32 score of exactly 0 or 1 stays finite; reading
a posterior as an LLR assumes the detector's training prior was even), and the bona fide LLR the
package scores with is its negative. Everything below is computed in the package's convention so
that its tie rules hold exactly: a bona fide score below the threshold is a miss (a real track
called AI) and an attack score at or above it a false alarm (an AI track called real).

- minDCF: the normalised detection cost at the best threshold of the DET sweep. Tied scores
  form one operating point, and the sweep runs from accepting every track (nothing called AI)
  to rejecting every track (everything called AI), so both trivial systems are reachable and
  minDCF <= 1.
- actDCF: the same cost at the Bayes threshold ``-ln(beta)`` of the bona fide LLR, i.e. with
  the scores taken at face value as calibrated LLRs.
- Cllr: the log-likelihood-ratio cost in bits; 1.0 is the cost of the uninformative LLR 0.
- minCllr: Cllr after the best monotone recalibration (pool adjacent violators on the sorted
  scores, tied scores pooled first), i.e. the discrimination part of Cllr; the package reports
  Cllr only, minCllr is Brummer and du Preez's (Computer Speech and Language, 2006), and
  Cllr - minCllr the calibration loss.

Each metric is None when a class is missing, as the other threshold-free metrics are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LLR_EPS",
    "SOURCE",
    "COST_METRICS",
    "DEFAULT_COST",
    "CostModel",
    "act_dcf",
    "act_dcf_with_failures",
    "cllr",
    "llr_from_prob",
    "min_cllr",
    "min_dcf",
    "cost_replicates",
    "weighted_cost_metrics",
]

SOURCE = "ASVspoof 5 evaluation package, Track 1 (calculate_modules.py)"
# P(AI) is clipped to [LLR_EPS, 1 - LLR_EPS] before the logit: |LLR| <= about 27.6.
LLR_EPS = 1e-12
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class CostModel:
    """The detection cost model; the defaults are ASVspoof 5's (P_spoof 0.05, C_miss 1,
    C_fa 10).

    A miss rejects a bona fide (real) track, i.e. calls a real track AI; a false alarm accepts
    an attack (AI) track, i.e. calls an AI track real.
    """

    p_attack: float = 0.05  # prior of the attack class (AI)
    c_miss: float = 1.0  # cost of rejecting a bona fide (real) track: calling real AI
    c_fa: float = 10.0  # cost of accepting an attack (AI) track: calling AI real

    def __post_init__(self) -> None:
        p = float(self.p_attack)
        if not (math.isfinite(p) and 0.0 < p < 1.0):
            raise ValueError(f"p_attack must lie strictly between 0 and 1, got {self.p_attack}")
        for name in ("c_miss", "c_fa"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")

    @property
    def miss_weight(self) -> float:
        """C_miss * (1 - P_spoof): the weight of the miss rate."""
        return float(self.c_miss) * (1.0 - float(self.p_attack))

    @property
    def fa_weight(self) -> float:
        """C_fa * P_spoof: the weight of the false alarm rate."""
        return float(self.c_fa) * float(self.p_attack)

    @property
    def normaliser(self) -> float:
        """The cost of the better trivial system, so a DCF of 1 is no better than it."""
        return min(self.miss_weight, self.fa_weight)

    @property
    def beta(self) -> float:
        return self.miss_weight / self.fa_weight

    @property
    def llr_threshold(self) -> float:
        """actDCF's threshold on the bona fide LLR: ``-ln(beta)``."""
        return -math.log(self.beta)

    def to_json(self) -> dict[str, Any]:
        """The values, the class mapping and the definitions a reader needs to reuse them."""
        beta = self.beta
        return {
            "source": SOURCE,
            "p_attack": float(self.p_attack),
            "c_miss": float(self.c_miss),
            "c_fa": float(self.c_fa),
            "attack_class": "ai",
            "bona_fide_class": "real",
            "miss": "a real (bona fide) track called AI",
            "false_alarm": "an AI (attack) track called real",
            "llr": "logit(P(AI)) with P(AI) clipped to [1e-12, 1 - 1e-12]; the bona fide LLR "
            "is its negative",
            "normalisation": "divided by min(c_miss * (1 - p_attack), c_fa * p_attack)",
            "normaliser": self.normaliser,
            "beta": beta,
            "act_dcf_rule": "AI when logit(P(AI)) > ln(beta), beta = c_miss * (1 - p_attack) / "
            "(c_fa * p_attack); a bona fide LLR equal to -ln(beta) is accepted as real",
            "act_dcf_prob_threshold": beta / (1.0 + beta),
            "min_dcf_threshold_rule": "AI when prob >= min_dcf_threshold (null: no track called "
            "AI)",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CostModel:
        """The cost model of a ``to_json`` block (or of predictions metadata); the defaults
        for a block that is absent, as in runs written before it was recorded."""
        if not data:
            return cls()
        return cls(
            p_attack=float(data.get("p_attack", cls.p_attack)),
            c_miss=float(data.get("c_miss", cls.c_miss)),
            c_fa=float(data.get("c_fa", cls.c_fa)),
        )


# ASVspoof 5's cost model, the default of every function here.
DEFAULT_COST = CostModel()


def llr_from_prob(prob: Any) -> np.ndarray:
    """``logit(P(AI))``, the LLR of AI against real, P clipped to ``[LLR_EPS, 1 - LLR_EPS]``."""
    p = np.clip(np.asarray(prob, dtype=float), LLR_EPS, 1.0 - LLR_EPS)
    return np.log(p) - np.log1p(-p)


def _inputs(y_ai: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (True = AI) and finite P(AI) of one length."""
    y = np.asarray(y_ai, dtype=bool).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError("y_ai and prob must have the same length")
    if not np.all(np.isfinite(p)):
        raise ValueError("prob must be finite; leave failed tracks out")
    return y, p


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any() and (~y).any())


# --- shared by the point estimates and the bootstrap (weights = resample counts) ------------------


def _bona_scores(prob: np.ndarray) -> np.ndarray:
    """The bona fide LLR of each track: higher means more real."""
    return -llr_from_prob(prob)


def _tie_blocks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending order of `scores` and the start of each run of equal scores in that order."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    return order, starts


def _block_weights(
    weights: np.ndarray, y: np.ndarray, order: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `weights`, the bona fide and attack weight of each tie block (ascending)."""
    w = weights[:, order]
    attack = y[order]
    bona = np.add.reduceat(np.where(attack, 0.0, w), starts, axis=1)
    spoof = np.add.reduceat(np.where(attack, w, 0.0), starts, axis=1)
    return bona, spoof


def _dcf_sweep(bona: np.ndarray, spoof: np.ndarray, cost: CostModel) -> np.ndarray:
    """Normalised DCF per row at each threshold of the sweep: index j rejects the j lowest
    tie blocks (bona fide LLR below the j-th distinct score), from none to all. NaN where a
    row has no weight in a class."""
    reps = bona.shape[0]
    cum_bona = np.zeros((reps, bona.shape[1] + 1))
    cum_spoof = np.zeros((reps, spoof.shape[1] + 1))
    np.cumsum(bona, axis=1, out=cum_bona[:, 1:])
    np.cumsum(spoof, axis=1, out=cum_spoof[:, 1:])
    n_bona, n_spoof = cum_bona[:, -1:], cum_spoof[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_miss = cum_bona / n_bona
        p_fa = (n_spoof - cum_spoof) / n_spoof
        return (cost.miss_weight * p_miss + cost.fa_weight * p_fa) / cost.normaliser


def _cllr_terms(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Each track's Cllr term in bits: log2(1 + exp(-llr)) for bona fide, log2(1 + exp(llr))
    for an attack, llr the bona fide LLR."""
    scores = _bona_scores(prob)
    return np.logaddexp(0.0, np.where(y, scores, -scores)) / _LN2


def _pav_pools(share: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Start index of each pool of the weighted isotonic (non-decreasing) fit of `share`, and
    the end: pools are runs of equal fitted value (merging two adjacent pools of equal value
    changes no cost below)."""
    pav = _scipy_pav()
    if pav is None:
        from sklearn.isotonic import isotonic_regression

        fit = isotonic_regression(share, sample_weight=size, increasing=True)
        return np.r_[0, np.flatnonzero(fit[1:] != fit[:-1]) + 1, fit.size]
    return np.asarray(pav(share, weights=size, increasing=True).blocks)


def _scipy_pav() -> Callable[..., Any] | None:
    """SciPy's PAV (1.12 and later), which returns the pools themselves; None before."""
    try:
        from scipy.optimize import isotonic_regression
    except ImportError:
        return None
    return isotonic_regression


def _pav_cllr(bona: np.ndarray, spoof: np.ndarray) -> float:
    """minCllr of one set of block weights in ascending bona fide LLR (NaN without weight in a
    class).

    The bona fide posterior of each block is the isotonic (non-decreasing) fit of its bona fide
    share, weighted by its size, which is constant over each pool of the fit: a pool holding
    bona fide weight B and attack weight K has posterior B / (B + K), so its calibrated LLR
    (posterior log-odds less the prior log-odds ln(N_bona / N_spoof)) gives
    ``exp(-llr) = (K / B) (N_bona / N_spoof)``. A pool of one class has an infinite LLR and
    costs nothing.
    """
    size = bona + spoof
    keep = size > 0
    b, s = bona[keep], spoof[keep]
    n_bona, n_spoof = float(b.sum()), float(s.sum())
    if n_bona <= 0 or n_spoof <= 0:
        return math.nan
    bounds = _pav_pools(b / size[keep], size[keep])
    pool_b = np.add.reduceat(b, bounds[:-1])
    pool_s = np.add.reduceat(s, bounds[:-1])
    both = (pool_b > 0) & (pool_s > 0)
    pool_b, pool_s = pool_b[both], pool_s[both]
    odds = (pool_s * n_bona) / (pool_b * n_spoof)  # exp(-llr) of each mixed pool
    bona_bits = np.sum(pool_b * np.log1p(odds)) / n_bona
    spoof_bits = np.sum(pool_s * np.log1p(1.0 / odds)) / n_spoof
    return float(0.5 * (bona_bits + spoof_bits) / _LN2)


# --- point estimates ------------------------------------------------------------------------------


def min_dcf(
    y_ai: np.ndarray, prob: np.ndarray, cost: CostModel = DEFAULT_COST
) -> tuple[float | None, float | None]:
    """(normalised minDCF, the P(AI) threshold reaching it); (None, None) without both classes.

    The threshold is in the project's convention: the sweep's operating point calls AI exactly
    the tracks with ``prob >= threshold``; it is ``inf`` when the best system calls nothing AI
    (written as null in JSON). Of equal costs the lowest bona fide threshold wins, as in the
    package (the fewest tracks called AI).
    """
    y, p = _inputs(y_ai, prob)
    if not _both_classes(y):
        return None, None
    order, starts = _tie_blocks(_bona_scores(p))
    bona, spoof = _block_weights(np.ones((1, y.size)), y, order, starts)
    costs = _dcf_sweep(bona, spoof, cost)[0]
    j = int(np.argmin(costs))
    # Index j rejects the tie blocks before block j: the tracks ordered before starts[j].
    rejected = order[: starts[j]] if j < starts.size else order
    threshold = float(p[rejected].min()) if rejected.size else math.inf
    return float(costs[j]), threshold


def _act_errors(y: np.ndarray, prob: np.ndarray, cost: CostModel) -> np.ndarray:
    """Which tracks actDCF counts as errors: a bona fide LLR below ``-ln(beta)`` for a real
    track (a miss), at or above it for an AI track (a false alarm); a non-finite ``prob`` (a
    failed track) is an error of its class either way."""
    finite = np.isfinite(prob)
    scores = _bona_scores(np.where(finite, prob, 0.5))
    rejected = scores < cost.llr_threshold
    return np.where(finite, np.where(y, ~rejected, rejected), True)


def _act_dcf_of_errors(y: np.ndarray, errors: np.ndarray, cost: CostModel) -> float | None:
    if not _both_classes(y):
        return None
    p_miss = float(np.mean(errors[~y]))
    p_fa = float(np.mean(errors[y]))
    return (cost.miss_weight * p_miss + cost.fa_weight * p_fa) / cost.normaliser


def act_dcf(y_ai: np.ndarray, prob: np.ndarray, cost: CostModel = DEFAULT_COST) -> float | None:
    """Normalised actual DCF: the cost of calling AI when ``logit(P(AI)) > ln(beta)``, i.e. of
    trusting the scores as calibrated LLRs; None without both classes."""
    y, p = _inputs(y_ai, prob)
    return _act_dcf_of_errors(y, _act_errors(y, p, cost), cost)


def act_dcf_with_failures(
    y_ai: np.ndarray, prob: np.ndarray, cost: CostModel = DEFAULT_COST
) -> float | None:
    """:func:`act_dcf` with failed tracks (non-finite ``prob``) counted as errors: a failed AI
    track is accepted as real (a false alarm), a failed real track rejected (a miss)."""
    y = np.asarray(y_ai, dtype=bool).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError("y_ai and prob must have the same length")
    return _act_dcf_of_errors(y, _act_errors(y, p, cost), cost)


def cllr(y_ai: np.ndarray, prob: np.ndarray) -> float | None:
    """Cllr in bits of the scores read as LLRs (0: perfect and calibrated; 1: LLR 0 for every
    track); None without both classes."""
    y, p = _inputs(y_ai, prob)
    if not _both_classes(y):
        return None
    terms = _cllr_terms(y, p)
    return float(0.5 * (terms[~y].mean() + terms[y].mean()))


def min_cllr(y_ai: np.ndarray, prob: np.ndarray) -> float | None:
    """Cllr after the optimal monotone calibration of the scores (PAV, tied scores pooled);
    0 for perfectly separated classes; None without both classes."""
    y, p = _inputs(y_ai, prob)
    if not _both_classes(y):
        return None
    order, starts = _tie_blocks(_bona_scores(p))
    bona, spoof = _block_weights(np.ones((1, y.size)), y, order, starts)
    return _pav_cllr(bona[0], spoof[0])


# --- bootstrap ------------------------------------------------------------------------------------


COST_METRICS: tuple[str, ...] = ("min_dcf", "act_dcf", "cllr", "min_cllr")


def weighted_cost_metrics(
    y: np.ndarray, prob: np.ndarray, weights: np.ndarray, cost: CostModel
) -> dict[str, np.ndarray]:
    """minDCF, actDCF, Cllr and minCllr for each row of per-track `weights` (resample counts);
    NaN where a row has no weight in a class. See :func:`cost_replicates`."""
    return cost_replicates(y, prob, cost)(weights)


def cost_replicates(
    y: np.ndarray, prob: np.ndarray, cost: CostModel
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function of per-track weights ([reps, n], e.g. resample counts) giving minDCF, actDCF,
    Cllr and minCllr for each row (NaN where a row has no weight in a class), with everything
    that does not depend on the weights (the sort of the scores, the per-track terms) done
    once, here.

    minDCF, Cllr and minCllr use the tracks with a finite `prob`; actDCF every track, a failed
    one (non-finite `prob`) counted as an error of its class. Per row, actDCF and Cllr are
    weighted means (one matrix product for all of them), the weights are summed per run of
    tie blocks (:func:`_class_runs`), minDCF is the minimum of weighted cumulative sums over
    the runs and minCllr a weighted PAV over them (SciPy's, in C++).
    """
    y = np.asarray(y, dtype=bool)
    prob = np.asarray(prob, dtype=float)
    ranked = np.isfinite(prob)
    rank_both = _both_classes(y[ranked])
    errors = _act_errors(y, prob, cost)
    terms = np.zeros(y.size)
    if rank_both:
        terms[ranked] = _cllr_terms(y[ranked], prob[ranked])
    real, ai = ~y, y
    columns = np.stack(
        [errors & real, real, errors & ai, ai, real & ranked, ai & ranked], axis=1
    ).astype(float)
    columns = np.c_[columns, terms * columns[:, 4], terms * columns[:, 5]]
    n_runs = 0
    slot = np.zeros(y.size, dtype=np.int64)
    if rank_both:
        runs, n_runs = _class_runs(y[ranked], prob[ranked])
        # Slot 2 * run + class of each ranked track; the unranked share the last slot.
        slot[:] = 2 * n_runs
        slot[ranked] = 2 * runs + y[ranked]

    def replicates(weights: np.ndarray) -> dict[str, np.ndarray]:
        reps = weights.shape[0]
        out = {name: np.full(reps, np.nan) for name in COST_METRICS}
        sums = weights @ columns
        with np.errstate(invalid="ignore", divide="ignore"):
            p_miss, p_fa = sums[:, 0] / sums[:, 1], sums[:, 2] / sums[:, 3]
            bona_bits, spoof_bits = sums[:, 6] / sums[:, 4], sums[:, 7] / sums[:, 5]
        out["act_dcf"] = (cost.miss_weight * p_miss + cost.fa_weight * p_fa) / cost.normaliser
        if not rank_both:
            return out
        out["cllr"] = 0.5 * (bona_bits + spoof_bits)
        width = 2 * n_runs + 1
        flat = (np.arange(reps)[:, None] * width + slot).ravel()
        per_run = np.bincount(flat, np.ravel(weights), reps * width).reshape(reps, width)
        bona, spoof = per_run[:, 0:-1:2], per_run[:, 1:-1:2]
        # A row without weight in a class is NaN throughout, and its minimum NaN.
        out["min_dcf"] = _dcf_sweep(bona, spoof, cost).min(axis=1)
        out["min_cllr"] = np.array([_pav_cllr(bona[i], spoof[i]) for i in range(reps)])
        return out

    return replicates


def _class_runs(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, int]:
    """Each track's run and the number of runs, in ascending bona fide LLR: a run is a tie
    block holding both classes, or a maximal stretch of consecutive tie blocks holding one class.

    Any weighting leaves minDCF and minCllr unchanged when the blocks of one run are merged:
    within a run of one class the DCF only rises (bona fide) or only falls (attack), so its
    minimum lies on a run boundary, and PAV gives equal shares (all 0 or all 1) the same value
    whether pooled or not. Well-separated scores make few runs, which keeps the per-replicate
    work small.
    """
    order, starts = _tie_blocks(_bona_scores(prob))
    ordered = y[order]
    attack = np.add.reduceat(ordered.astype(np.int64), starts)
    sizes = np.diff(np.r_[starts, y.size])
    kind = np.where(attack == 0, 0, np.where(attack == sizes, 1, 2))  # bona, attack, both
    new_run = np.r_[True, (kind[1:] != kind[:-1]) | (kind[1:] == 2)]
    run_of_block = np.cumsum(new_run) - 1
    block_of_position = np.repeat(np.arange(starts.size), sizes)
    runs = np.empty(y.size, dtype=np.int64)
    runs[order] = run_of_block[block_of_position]
    return runs, int(run_of_block[-1]) + 1
