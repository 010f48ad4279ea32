"""Paired comparisons and diagnostics: hand-made cases, reference implementations, simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import brier_score_loss, roc_auc_score

from artifactbench.analysis.diagnostics import calibration, operating_points
from artifactbench.analysis.metrics import bootstrap_intervals
from artifactbench.analysis.stats import (
    _strata,
    _stratified_weights,
    cluster_bootstrap_intervals,
    delong_test,
    mcnemar_test,
    paired_bootstrap,
)


def _binormal(rng: np.random.Generator, n: int, mu_a: float, mu_b: float, rho: float):
    """n AI and n real tracks; the two models' scores are correlated (rho) within a track.

    Real tracks score N(0, 1) under both models, AI tracks N(mu, 1), so the population AUC of a
    model is Phi(mu / sqrt(2)) whatever rho is.
    """
    cov = [[1.0, rho], [rho, 1.0]]
    real = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    ai = rng.multivariate_normal([mu_a, mu_b], cov, size=n)
    scores = np.vstack([ai, real])
    y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return y, scores[:, 0], scores[:, 1]


# --- DeLong ---------------------------------------------------------------------------------

# Three AI and three real tracks, a tie (0.6) between classes under model A.
Y6 = np.array([True, True, True, False, False, False])
A6 = np.array([0.9, 0.6, 0.4, 0.6, 0.3, 0.1])
B6 = np.array([0.8, 0.5, 0.2, 0.7, 0.4, 0.1])


def test_delong_hand_computed() -> None:
    # Placement values, ties half. V10 = share of real tracks below each AI track,
    # V01 = share of AI tracks above each real track.
    #   A: V10 = [3/3, 2.5/3, 2/3] = [1, 5/6, 2/3]      (0.6 vs 0.6 counts 0.5)
    #      V01 = [1.5/3, 3/3, 3/3] = [1/2, 1, 1]          AUC_A = 5/6
    #   B: V10 = [3/3, 2/3, 1/3]                          (0.8 > all; 0.5 > 0.4, 0.1; 0.2 > 0.1)
    #      V01 = [1/3, 2/3, 3/3]                          AUC_B = 2/3
    # Differences: d10 = [0, 1/6, 1/3], d01 = [1/6, 1/3, 0], each with mean 1/6 and sample
    # variance ((1/6)^2 + 0 + (1/6)^2) / 2 = 1/36.
    # Var(AUC_A - AUC_B) = (1/36) / 3 + (1/36) / 3 = 1/54; z = (1/6) * sqrt(54) = sqrt(3/2).
    r = delong_test(Y6, A6, B6)
    assert r["reason"] is None
    assert r["auc_a"] == pytest.approx(5 / 6)
    assert r["auc_b"] == pytest.approx(2 / 3)
    assert r["difference"] == pytest.approx(1 / 6)
    assert r["variance"] == pytest.approx(1 / 54)
    assert r["se"] == pytest.approx(1 / math.sqrt(54))
    assert r["z"] == pytest.approx(math.sqrt(1.5))
    # 2 * (1 - Phi(1.2247...)) = 0.22067...
    assert r["p"] == pytest.approx(0.2206713619, abs=1e-9)
    assert (r["n"], r["n_ai"], r["n_real"], r["n_excluded"]) == (6, 3, 3, 0)


def test_delong_symmetry_and_nan_exclusion() -> None:
    forward = delong_test(Y6, A6, B6)
    backward = delong_test(Y6, B6, A6)
    assert backward["z"] == pytest.approx(-forward["z"])
    assert backward["p"] == pytest.approx(forward["p"])
    assert backward["difference"] == pytest.approx(-forward["difference"])
    # A failed track under either model drops the track from both.
    y = np.r_[Y6, True, False]
    a = np.r_[A6, np.nan, 0.5]
    b = np.r_[B6, 0.99, np.nan]
    r = delong_test(y, a, b)
    assert r["n_excluded"] == 2 and r["n"] == 6
    assert r["z"] == pytest.approx(forward["z"])


def _brute_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """O(m n) placement values straight from the definition: (difference, variance)."""

    def psi(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])

    parts = []
    for p in (a, b):
        kernel = psi(p[y], p[~y])
        parts.append((kernel.mean(axis=1), kernel.mean(axis=0)))
    d10 = parts[0][0] - parts[1][0]
    d01 = parts[0][1] - parts[1][1]
    var = np.var(d10, ddof=1) / d10.size + np.var(d01, ddof=1) / d01.size
    return float(d10.mean()), float(var)


def test_delong_matches_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.4
    # Rounded scores make many ties, within and across classes.
    a = np.round(rng.random(300) * 0.6 + 0.4 * y, 1)
    b = np.round(0.5 * a + 0.5 * rng.random(300), 2)
    r = delong_test(y, a, b)
    diff, var = _brute_delong(y, a, b)
    assert r["difference"] == pytest.approx(diff)
    assert r["variance"] == pytest.approx(var)
    assert r["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert r["auc_b"] == pytest.approx(roc_auc_score(y, b))


def test_delong_degenerate_cases() -> None:
    same = delong_test(Y6, A6, A6)
    assert same["difference"] == 0.0
    assert same["p"] is None and same["z"] is None and "zero variance" in same["reason"]
    # A strictly increasing transform ranks identically: same AUC, no test.
    mono = delong_test(Y6, A6, A6**2)
    assert mono["difference"] == 0.0 and mono["p"] is None
    one_class = delong_test(np.ones(4, bool), [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
    assert one_class["p"] is None and one_class["auc_a"] is None and one_class["reason"]
    singleton = delong_test([True, False, False], [0.9, 0.2, 0.1], [0.1, 0.2, 0.9])
    assert singleton["p"] is None and singleton["difference"] == pytest.approx(1.0)
    assert "two" in singleton["reason"]
    all_failed = delong_test(Y6, np.full(6, np.nan), B6)
    assert all_failed["n"] == 0 and all_failed["p"] is None


def test_delong_null_rejection_rate() -> None:
    # Two equally good, correlated models: the 5% test should reject about 5% of the time.
    rng = np.random.default_rng(11)
    rejections = 0
    runs = 400
    for _ in range(runs):
        y, a, b = _binormal(rng, 40, 1.0, 1.0, 0.5)
        rejections += delong_test(y, a, b)["p"] < 0.05
    assert 0.02 <= rejections / runs <= 0.09


# --- McNemar --------------------------------------------------------------------------------


def _pairs(b: int, c: int, both_right: int = 3, both_wrong: int = 2):
    """Labels and calls with exactly b (a right, b wrong) and c (a wrong, b right) tracks."""
    y = np.ones(b + c + both_right + both_wrong, bool)
    right_a = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)]
    right_b = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)]
    return y, right_a.astype(bool), right_b.astype(bool)


@pytest.mark.parametrize("b, c", [(1, 0), (5, 5), (10, 2), (2, 10), (0, 7), (30, 17), (3, 4)])
def test_mcnemar_exact_p_matches_binomtest(b: int, c: int) -> None:
    y, pred_a, pred_b = _pairs(b, c)
    r = mcnemar_test(y, pred_a, pred_b)
    assert (r["b"], r["c"]) == (b, c)
    assert r["p"] == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue)
    assert r["chi2"] == pytest.approx(max(0, abs(b - c) - 1) ** 2 / (b + c))
    assert r["p_chi2"] == pytest.approx(sps.chi2.sf(r["chi2"], 1))


def test_mcnemar_hand_counts() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    a = np.array([1, 1, 0, 0, 0, 0, 1, 1], bool)
    b = np.array([1, 0, 1, 0, 1, 0, 0, 1], bool)
    # Track by track (a right?, b right?): (Y,Y) (Y,N) (N,Y) (N,N) (Y,N) (Y,Y) (N,Y) (N,N)
    r = mcnemar_test(y, a, b)
    assert (r["b"], r["c"], r["both_right"], r["both_wrong"]) == (2, 2, 2, 2)
    assert r["p"] == 1.0
    assert r["accuracy_a"] == pytest.approx(0.5) and r["accuracy_b"] == pytest.approx(0.5)
    # Flip model b's two wrong-where-a-is-right tracks: now a never beats b.
    b2 = b.copy()
    b2[[1, 4]] = [True, False]
    r2 = mcnemar_test(y, a, b2)
    assert (r2["b"], r2["c"]) == (0, 2)
    assert r2["p"] == pytest.approx(0.5)  # 2 * P(X <= 0), X ~ Binom(2, 1/2)


def test_mcnemar_no_discordant_pairs_and_nan_calls() -> None:
    y = np.array([1, 0, 1, 0], bool)
    same = mcnemar_test(y, [1, 0, 0, 0], [1, 0, 0, 0])
    assert same["p"] == 1.0 and same["chi2"] is None and same["b"] + same["c"] == 0
    # Float calls with NaN (failed tracks) are excluded, not counted as wrong.
    r = mcnemar_test(y, [1.0, 0.0, np.nan, 1.0], [0.0, 0.0, 1.0, np.nan])
    assert r["n"] == 2 and r["n_excluded"] == 2 and (r["b"], r["c"]) == (1, 0)
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_test(y, [0.3, 0.9, 0.1, 0.2], [1, 0, 0, 0])


# --- paired bootstrap -----------------------------------------------------------------------


def test_paired_bootstrap_auc_interval_covers_true_difference() -> None:
    mu_a, mu_b = 1.2, 0.8
    true = sps.norm.cdf(mu_a / math.sqrt(2)) - sps.norm.cdf(mu_b / math.sqrt(2))
    rng = np.random.default_rng(2024)
    covered = 0
    runs = 200
    for i in range(runs):
        y, a, b = _binormal(rng, 60, mu_a, mu_b, 0.6)
        r = paired_bootstrap(y, a, b, 0.5, seed=i, resamples=300)
        covered += r["auc"]["low"] <= true <= r["auc"]["high"]
    assert 0.88 <= covered / runs <= 0.99


def test_paired_bootstrap_matches_single_model_bootstrap() -> None:
    # Against a constant model b, AUC(b) = 1/2 and F1(b) are the same in every replicate, so the
    # paired interval is model a's own interval shifted (same seed, same draws).
    rng = np.random.default_rng(5)
    y = rng.random(120) < 0.5
    a = np.clip(0.3 * y + rng.random(120) * 0.7, 0, 1)
    b = np.full(120, 0.5)
    r = paired_bootstrap(y, a, b, 0.5, seed=9, resamples=400)
    ci = bootstrap_intervals(y, a >= 0.5, a, seed=9, resamples=400)
    f1_b = 2 * y.sum() / (2 * y.sum() + (~y).sum())
    assert r["auc"]["b"] == pytest.approx(0.5) and r["f1"]["b"] == pytest.approx(f1_b)
    assert r["auc"]["low"] == pytest.approx(ci["auc"]["low"] - 0.5)
    assert r["auc"]["high"] == pytest.approx(ci["auc"]["high"] - 0.5)
    assert r["f1"]["low"] == pytest.approx(ci["f1"]["low"] - f1_b)
    assert r["f1"]["high"] == pytest.approx(ci["f1"]["high"] - f1_b)
    assert r["auc"]["n_finite"] == r["f1"]["n_finite"] == 400


def test_paired_bootstrap_is_paired() -> None:
    # b is a with a little noise: the difference's interval is far narrower than a's own.
    rng = np.random.default_rng(8)
    y, a, _ = _binormal(rng, 80, 1.0, 1.0, 0.0)
    b = a + rng.normal(0, 0.05, a.size)
    r = paired_bootstrap(y, a, b, 0.5, seed=1, resamples=300)
    own = bootstrap_intervals(y, a >= 0.5, a, seed=1, resamples=300)["auc"]
    assert r["auc"]["high"] - r["auc"]["low"] < 0.25 * (own["high"] - own["low"])
    assert r["auc"]["low"] <= r["auc"]["difference"] <= r["auc"]["high"]


def test_paired_bootstrap_seeded_and_excludes_nan() -> None:
    rng = np.random.default_rng(1)
    y, a, b = _binormal(rng, 50, 1.0, 0.7, 0.3)
    first = paired_bootstrap(y, a, b, 0.5, seed=42, resamples=200)
    assert first == paired_bootstrap(y, a, b, 0.5, seed=42, resamples=200)
    other = paired_bootstrap(y, a, b, 0.5, seed=43, resamples=200)
    assert other["auc"]["low"] != first["auc"]["low"]
    assert (first["seed"], first["resamples"], first["n"]) == (42, 200, 100)
    # NaN rows (in either model) are dropped before resampling: same answer as without them.
    y2 = np.r_[y, True, False, True]
    a2 = np.r_[a, np.nan, 0.3, 0.1]
    b2 = np.r_[b, 0.9, np.nan, np.nan]
    with_nan = paired_bootstrap(y2, a2, b2, 0.5, seed=42, resamples=200)
    assert with_nan["n_excluded"] == 3 and with_nan["n"] == 100
    assert with_nan["auc"] == first["auc"] and with_nan["f1"] == first["f1"]


def test_paired_bootstrap_undefined_auc_with_one_class() -> None:
    y = np.ones(10, bool)
    r = paired_bootstrap(y, np.linspace(0, 1, 10), np.full(10, 0.6), 0.5, seed=0, resamples=50)
    assert r["auc"]["difference"] is None and r["auc"]["low"] is None
    assert r["auc"]["n_finite"] == 0
    assert r["f1"]["n_finite"] == 50


def test_cluster_weights_keep_members_together() -> None:
    y = np.array([True] * 6 + [False] * 5)
    # Cluster "x" spans both labels: within each stratum its members form one unit.
    clusters = np.array(["x", "x", "y", "y", "y", "z", "x", "w", "w", "v", "v"], dtype=object)
    strata = _strata(y, clusters)
    assert [s[2] for s in strata] == [3, 3]
    weights = _stratified_weights(np.random.default_rng(0), y.size, strata, 500)
    for label in (True, False):
        for cid in set(clusters[y == label]):
            members = np.flatnonzero((clusters == cid) & (y == label))
            assert (weights[:, members] == weights[:, members[:1]]).all()
    # Each stratum draws as many clusters as it holds: AI units have sizes 2, 3, 1.
    ai_units = weights[:, 0] + weights[:, 2] + weights[:, 5]
    assert (ai_units == 3).all()
    ai_tracks = 2 * weights[:, 0] + 3 * weights[:, 2] + weights[:, 5]
    assert (weights[:, y].sum(axis=1) == ai_tracks).all()
    assert not (weights[:, 0] == weights[:, 5]).all()


def test_cluster_bootstrap_widens_interval_for_duplicates() -> None:
    # 30 independent tracks per class, each duplicated 5 times (same lineage): a track-level
    # bootstrap thinks it has 150 independent tracks per class; whole-cluster resampling does not.
    rng = np.random.default_rng(4)
    y0, a0, b0 = _binormal(rng, 30, 1.0, 0.5, 0.3)
    y, a, b = (np.repeat(v, 5) for v in (y0, a0, b0))
    clusters = np.repeat(np.arange(60), 5)
    tracks = paired_bootstrap(y, a, b, 0.5, seed=3, resamples=400)
    whole = paired_bootstrap(y, a, b, 0.5, seed=3, resamples=400, clusters=clusters)
    assert whole["n_clusters"] == {"ai": 30, "real": 30}
    assert tracks["n_clusters"] is None
    width = {k: r["auc"]["high"] - r["auc"]["low"] for k, r in (("t", tracks), ("c", whole))}
    assert width["c"] > 1.5 * width["t"]
    # Resampling the clusters equals resampling the 60 distinct tracks themselves.
    base = paired_bootstrap(y0, a0, b0, 0.5, seed=3, resamples=400)
    assert whole["auc"]["low"] == pytest.approx(base["auc"]["low"])
    assert whole["auc"]["high"] == pytest.approx(base["auc"]["high"])


def test_singleton_clusters_equal_track_resampling() -> None:
    rng = np.random.default_rng(6)
    y, a, b = _binormal(rng, 25, 1.0, 0.5, 0.3)
    plain = paired_bootstrap(y, a, b, 0.5, seed=7, resamples=100)
    single = paired_bootstrap(y, a, b, 0.5, seed=7, resamples=100, clusters=np.arange(y.size))
    assert plain["auc"] == single["auc"] and plain["f1"] == single["f1"]
    with pytest.raises(ValueError, match="cluster id"):
        paired_bootstrap(y, a, b, 0.5, seed=7, clusters=[None] * y.size)


# --- operating points -----------------------------------------------------------------------


def test_operating_points_hand_case_with_ties() -> None:
    y = np.array([True, True, True, True, False, False, False, False])
    p = np.array([0.9, 0.7, 0.7, 0.4, 0.7, 0.3, 0.2, 0.1])
    r = operating_points(y, p, 0.7)
    at = r["at_threshold"]
    # All three tracks tied at 0.7 are called AI, the real one included.
    assert (at["tp"], at["fp"], at["tn"], at["fn"]) == (3, 1, 3, 1)
    assert at["tpr"] == 0.75 and at["fpr"] == 0.25 and at["precision"] == 0.75
    assert at["f1"] == pytest.approx(0.75) and at["chosen_on_evaluated_data"] is False
    # F1 by candidate: 0.9 -> 2/5, 0.7 -> 6/8, 0.4 -> 8/9, 0.3 -> 8/10, 0.2 -> 8/11, ...
    best = r["best_f1"]
    assert best["threshold"] == 0.4 and best["f1"] == pytest.approx(8 / 9)
    assert best["chosen_on_evaluated_data"] is True
    # With 4 real tracks only FPR 0 is <= 5%; the tie at 0.7 cannot be split, so the lowest
    # qualifying threshold is 0.9.
    fpr05 = r["at_fpr05"]
    assert fpr05["threshold"] == 0.9 and fpr05["fpr"] == 0.0 and fpr05["tpr"] == 0.25


def test_operating_points_fpr05_picks_lowest_qualifying_threshold() -> None:
    # 20 real tracks: one false positive is exactly 5%, which qualifies.
    y = np.r_[np.ones(3, bool), np.zeros(20, bool)]
    p = np.r_[[0.85, 0.6, 0.55], [0.8], np.full(18, 0.1), [0.5]]
    r = operating_points(y, p, 0.5)
    fpr05 = r["at_fpr05"]
    assert fpr05["threshold"] == 0.55 and fpr05["fp"] == 1 and fpr05["tpr"] == 1.0
    assert fpr05["fpr"] == pytest.approx(0.05)
    # Brute force over the candidates on random data with ties.
    rng = np.random.default_rng(2)
    y = rng.random(200) < 0.3
    p = np.round(rng.random(200) * 0.8 + 0.2 * y, 2)
    r = operating_points(y, p, 0.5)
    best_t = None
    for t in np.r_[np.unique(p), np.inf]:
        calls = p >= t
        if calls.any() and np.sum(calls & ~y) <= 0.05 * np.sum(~y) + 1e-12:
            best_t = t if best_t is None else min(best_t, t)
    assert r["at_fpr05"]["threshold"] == best_t
    f1s = [
        2 * np.sum((p >= t) & y) / (np.sum(p >= t) + np.sum(y)) for t in np.r_[np.unique(p), 2.0]
    ]
    assert r["best_f1"]["f1"] == pytest.approx(max(f1s))


def test_operating_points_impossible_and_nan() -> None:
    # Every real track scores 1.0: any threshold that calls a track AI calls all the real ones.
    y = np.array([True, True, True, False, False])
    p = np.array([0.3, 0.6, 0.9, 1.0, 1.0])
    r = operating_points(y, p, 0.5)
    assert r["at_fpr05"]["impossible"] is True and r["at_fpr05"]["reason"]
    assert r["best_f1"]["f1"] == pytest.approx(6 / 8)  # threshold 0.3 calls everything
    only_ai = operating_points([True, True], [0.2, 0.8], 0.5)
    assert only_ai["at_fpr05"]["impossible"] is True
    assert only_ai["best_f1"]["threshold"] == 0.2
    only_real = operating_points([False, False], [0.2, 0.8], 0.5)
    assert only_real["best_f1"]["impossible"] is True
    with_nan = operating_points(np.r_[y, True], np.r_[p, np.nan], 0.5)
    assert with_nan["n_excluded"] == 1 and with_nan["n"] == 5
    assert with_nan["at_threshold"] == r["at_threshold"]


# --- calibration ----------------------------------------------------------------------------


def test_calibration_brier_and_bins() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = rng.random(500) < p
    p_nan = p.copy()
    p_nan[:7] = np.nan
    r = calibration(y, p_nan, bins=10)
    assert r["n"] == 493 and r["n_excluded"] == 7
    assert r["brier"] == pytest.approx(brier_score_loss(y[7:], p[7:]))
    assert sum(b["count"] for b in r["bins"]) == 493
    assert [b["lower"] for b in r["bins"]] == pytest.approx(np.arange(10) / 10)


def test_calibration_edges_empty_bins_and_ece() -> None:
    y = np.array([True, False, True, False, True])
    p = np.array([1.0, 0.0, 0.5, 0.5, 0.25])
    r = calibration(y, p, bins=4)
    counts = [b["count"] for b in r["bins"]]
    # 0.25 and 0.5 sit on inner edges and go up; 1.0 lands in the last (closed) bin.
    assert counts == [1, 1, 2, 1]
    assert r["bins"][2]["mean_prob"] == 0.5 and r["bins"][2]["fraction_ai"] == 0.5
    # ECE = (1/5)|0 - 0| + (1/5)|0.25 - 1| + (2/5)|0.5 - 0.5| + (1/5)|1 - 1| = 0.15
    assert r["ece"] == pytest.approx(0.15)
    sparse = calibration([True, False], [0.95, 0.05], bins=10)
    assert sparse["bins"][5]["count"] == 0
    assert sparse["bins"][5]["mean_prob"] is None and sparse["bins"][5]["fraction_ai"] is None
    assert sparse["ece"] == pytest.approx(0.05)
    empty = calibration([True], [np.nan])
    assert empty["brier"] is None and empty["ece"] is None and empty["n_excluded"] == 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration([True, False], [1.5, 0.2])


def test_calibration_ece_separates_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = rng.random(20000) < p
    assert calibration(y, p)["ece"] < 0.02
    # Pushing the same probabilities toward 0 and 1 keeps the ranking but breaks calibration.
    sharp = np.clip((p - 0.5) * 3 + 0.5, 0, 1)
    assert calibration(y, sharp)["ece"] > 0.1


# --- single-model cluster bootstrap ---------------------------------------------------------


def test_cluster_bootstrap_intervals_equal_track_bootstrap_without_clusters() -> None:
    rng = np.random.default_rng(12)
    y = rng.random(90) < 0.4
    p = np.clip(0.3 * y + rng.random(90) * 0.7, 0, 1)
    p[[3, 40]] = np.nan  # failed tracks: in the counts through the calls, not in the AUC
    calls = np.where(np.isfinite(p), p >= 0.5, ~y)
    expected = bootstrap_intervals(y, calls, p, seed=4, resamples=300)
    assert cluster_bootstrap_intervals(y, calls, p, seed=4, resamples=300) == expected
    singletons = np.arange(y.size)
    got = cluster_bootstrap_intervals(y, calls, p, seed=4, resamples=300, clusters=singletons)
    assert got == expected
    labels = np.where(y, "ai", "real")
    assert cluster_bootstrap_intervals(labels, calls, p, seed=4, resamples=300) == expected
    with pytest.raises(ValueError, match="cluster id"):
        cluster_bootstrap_intervals(y, calls, p, seed=4, clusters=[None] * y.size)
    with pytest.raises(ValueError, match="one id per track"):
        cluster_bootstrap_intervals(y, calls, p, seed=4, clusters=[1, 2])


def test_cluster_bootstrap_intervals_draw_whole_clusters() -> None:
    # 25 tracks per class, each repeated 4 times in one cluster: the same replicates as
    # resampling the 50 distinct tracks, and much wider than resampling the 200 rows.
    rng = np.random.default_rng(13)
    y0, a0, _ = _binormal(rng, 25, 1.0, 1.0, 0.0)
    p0 = sps.norm.cdf(a0 - 0.5)
    y, p = np.repeat(y0, 4), np.repeat(p0, 4)
    clusters = np.repeat(np.arange(50), 4)
    whole = cluster_bootstrap_intervals(y, p >= 0.5, p, seed=5, resamples=300, clusters=clusters)
    base = bootstrap_intervals(y0, p0 >= 0.5, p0, seed=5, resamples=300)
    rows = bootstrap_intervals(y, p >= 0.5, p, seed=5, resamples=300)
    for name in ("f1", "precision", "recall", "fpr", "auc"):
        assert whole[name]["low"] == pytest.approx(base[name]["low"])
        assert whole[name]["high"] == pytest.approx(base[name]["high"])
        assert whole[name]["n_finite"] == base[name]["n_finite"]
        width = whole[name]["high"] - whole[name]["low"]
        assert width > 1.5 * (rows[name]["high"] - rows[name]["low"])
    one_class = cluster_bootstrap_intervals(
        np.ones(6, bool), np.ones(6, bool), np.linspace(0, 1, 6), seed=0, resamples=20
    )
    assert one_class["auc"] == {"low": None, "high": None, "n_finite": 0}
    assert one_class["fpr"]["n_finite"] == 0 and one_class["recall"]["n_finite"] == 20


def _covered(ci: dict, name: str, truth: float) -> bool:
    low, high = ci[name]["low"], ci[name]["high"]
    return low is not None and low <= truth <= high


def test_single_model_intervals_cover_the_population_values() -> None:
    """AI scores ~ N(1, 1), real ~ N(0, 1): population AUC is Phi(1 / sqrt 2) and recall at 0.5
    is Phi(0.5). Over 150 simulated benches the 95% intervals cover both at about the nominal
    rate; when tracks come in clusters of 5 sharing a random offset, track resampling
    under-covers the AUC while resampling whole clusters stays near nominal."""
    auc_true = sps.norm.cdf(1 / math.sqrt(2))
    recall_true = sps.norm.cdf(0.5)
    rng = np.random.default_rng(11)
    hits = {"auc": 0, "recall": 0}
    for _ in range(150):
        y = np.repeat([True, False], 100)
        prob = rng.normal(y.astype(float), 1.0)
        ci = bootstrap_intervals(y, prob >= 0.5, prob, seed=int(rng.integers(1 << 30)),
                                 resamples=300)  # fmt: skip
        hits["auc"] += _covered(ci, "auc", auc_true)
        hits["recall"] += _covered(ci, "recall", recall_true)
    assert 0.88 <= hits["auc"] / 150 <= 0.99 and 0.88 <= hits["recall"] / 150 <= 0.99

    # Shared offsets: variance sqrt(0.5) per cluster + sqrt(0.5) per track keeps N(mu, 1) margins.
    clustered = {"track": 0, "cluster": 0}
    for _ in range(150):
        y = np.repeat([True, False], 100)
        clusters = np.arange(200) // 5
        offset = rng.normal(0.0, math.sqrt(0.5), 40)[clusters]
        prob = y.astype(float) + offset + rng.normal(0.0, math.sqrt(0.5), 200)
        seed = int(rng.integers(1 << 30))
        track = bootstrap_intervals(y, prob >= 0.5, prob, seed=seed, resamples=300)
        whole = cluster_bootstrap_intervals(y, prob >= 0.5, prob, seed=seed, resamples=300,
                                            clusters=clusters)  # fmt: skip
        clustered["track"] += _covered(track, "auc", auc_true)
        clustered["cluster"] += _covered(whole, "auc", auc_true)
    assert clustered["track"] / 150 < 0.88
    assert 0.85 <= clustered["cluster"] / 150 <= 0.99
