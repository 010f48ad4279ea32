"""ASVspoof 5's detection cost and calibration metrics (minDCF, actDCF, Cllr, minCllr) with AI as
the attack class and real as bona fide: hand-computed cases, a literal restatement of the
published equations on random scores, the bootstrap, metrics.json and the command line."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifactbench.analysis.detection_cost import (
    COST_METRICS,
    CostModel,
    act_dcf,
    cllr,
    llr_from_prob,
    min_cllr,
    min_dcf,
    weighted_cost_metrics,
)
from artifactbench.analysis.metrics import bootstrap_intervals, compute_metrics
from artifactbench.benches.base import Bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import read_predictions, write_predictions
from artifactbench.reports import build_results, write_reports
from artifactbench.reports.data import canonical
from artifactbench.reports.leaderboard import build_leaderboard, leaderboard_markdown
from artifactbench.runner import RunOptions, run
from tests.test_cli import cli


def _labelled(ai: list[float], real: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(y_ai, prob) with the AI tracks first."""
    y = np.array([True] * len(ai) + [False] * len(real))
    return y, np.array(ai + real, dtype=float)


# --- llr and the cost model -----------------------------------------------------------------------


def test_llr_is_the_logit_of_p_ai_and_stays_finite_at_0_and_1() -> None:
    llr = llr_from_prob([0.5, 0.8, 0.2, 0.0, 1.0])
    assert llr[0] == 0.0
    assert llr[1] == pytest.approx(math.log(4)) and llr[2] == pytest.approx(-math.log(4))
    # Clipped to [1e-12, 1 - 1e-12]: about -27.63 and +27.63, finite.
    assert llr[3] == pytest.approx(math.log(1e-12), rel=1e-9)
    assert llr[4] == pytest.approx(-math.log(1e-12), rel=1e-6)
    assert np.all(np.isfinite(llr))
    assert np.all(np.isfinite(llr_from_prob(np.array([0.0, 1.0], dtype=np.float32))))


def test_cost_model_defaults_and_json() -> None:
    cost = CostModel()
    assert (cost.p_attack, cost.c_miss, cost.c_fa) == (0.05, 1.0, 10.0)
    block = cost.to_json()
    assert block["attack_class"] == "ai" and block["bona_fide_class"] == "real"
    # min(1 * 0.95, 10 * 0.05) = 0.5; beta = 0.95 / 0.5 = 1.9.
    assert block["normaliser"] == pytest.approx(0.5)
    assert block["beta"] == pytest.approx(1.9)
    assert block["act_dcf_prob_threshold"] == pytest.approx(1.9 / 2.9)
    assert "logit(P(AI))" in block["llr"]
    assert CostModel.from_json(block) == cost
    assert CostModel.from_json(None) == cost
    assert CostModel.from_json({"c_fa": 4}) == CostModel(c_fa=4.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"p_attack": 0.0}, "p_attack must lie strictly between 0 and 1"),
        ({"p_attack": 1.0}, "p_attack must lie strictly between 0 and 1"),
        ({"p_attack": -0.2}, "p_attack must lie strictly between 0 and 1"),
        ({"p_attack": float("nan")}, "p_attack must lie strictly between 0 and 1"),
        ({"c_miss": 0.0}, "c_miss must be a finite number > 0"),
        ({"c_fa": -1.0}, "c_fa must be a finite number > 0"),
        ({"c_fa": float("inf")}, "c_fa must be a finite number > 0"),
    ],
)
def test_a_wrong_cost_model_is_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CostModel(**fields)


# --- minDCF ---------------------------------------------------------------------------------------


def test_min_dcf_by_hand() -> None:
    # Default costs: DCF = (0.95 Pmiss + 0.5 Pfa) / 0.5 = 1.9 Pmiss + Pfa. By P(AI), descending:
    # 0.9 ai, 0.7 ai, 0.6 real, 0.3 ai, 0.2 real, 0.1 real. Calling the top k AI, k = 0..6:
    # 1, 2/3, 1/3, 1.9/3 + 1/3, 1.9/3, 3.8/3, 1.9; the best is k = 2: AI when P(AI) >= 0.7.
    y, p = _labelled([0.9, 0.7, 0.3], [0.6, 0.2, 0.1])
    value, threshold = min_dcf(y, p)
    assert value == pytest.approx(1 / 3)
    assert threshold == 0.7


def test_min_dcf_reaches_both_trivial_systems() -> None:
    # Scores that rank every real track above every AI track.
    y, p = _labelled([0.1, 0.2], [0.9, 0.8])
    # Default costs: accepting everything (nothing called AI) costs Pfa = 1, every other
    # threshold more, so minDCF is exactly 1 and no track is called AI.
    assert min_dcf(y, p) == (1.0, math.inf)
    # p_attack 0.5, C_fa 10: DCF = Pmiss + 10 Pfa. Rejecting everything (all called AI) costs 1;
    # the best threshold among the scores alone (all but the lowest P(AI) called AI) costs
    # 1 + 10 * 1/2 = 6.
    value, threshold = min_dcf(y, p, CostModel(p_attack=0.5, c_fa=10.0))
    assert value == 1.0 and threshold == 0.1


def test_min_dcf_pools_tied_scores_across_classes() -> None:
    # A real and an AI track tie at 0.5. Blocks by P(AI): {0.9 ai}, {0.5 ai, 0.5 real},
    # {0.2 real}; costs 1, 1/2, 1.9/2, 1.9. Splitting the tie (the AI track called AI, the
    # real one not) would cost 0, but no threshold does that.
    y, p = _labelled([0.9, 0.5], [0.5, 0.2])
    assert min_dcf(y, p) == (pytest.approx(0.5), 0.9)
    y2, p2 = y[::-1].copy(), p[::-1].copy()
    assert min_dcf(y2, p2) == (pytest.approx(0.5), 0.9)


def test_min_dcf_under_another_cost_model() -> None:
    y, p = _labelled([0.9, 0.7, 0.3], [0.6, 0.2, 0.1])
    # p_attack 0.5, C_fa 10: DCF = Pmiss + 10 Pfa; k = 0..6 costs 10, 20/3, 10/3, 11/3, 1/3,
    # 2/3, 1: the best calls the top four AI, P(AI) >= 0.3.
    value, threshold = min_dcf(y, p, CostModel(p_attack=0.5, c_miss=1.0, c_fa=10.0))
    assert value == pytest.approx(1 / 3) and threshold == 0.3
    # Equal costs: DCF = Pmiss + Pfa, 1/3 at k = 2 and k = 4; the first (fewest AI calls) wins,
    # as the package's strict < keeps the first minimum.
    value, threshold = min_dcf(y, p, CostModel(p_attack=0.5, c_miss=1.0, c_fa=1.0))
    assert value == pytest.approx(1 / 3) and threshold == 0.7


# --- actDCF ---------------------------------------------------------------------------------------


def test_act_dcf_by_hand() -> None:
    # Default costs: beta = 1.9, a track is called AI when logit(P(AI)) > ln 1.9, i.e.
    # P(AI) > 1.9 / 2.9 = 0.655. Real 0.7 is a miss (1/3); AI 0.5 is a false alarm (1/3);
    # AI 0.66 sits just above the threshold and is called AI.
    y, p = _labelled([0.9, 0.5, 0.66], [0.1, 0.7, 0.6])
    assert act_dcf(y, p) == pytest.approx(1.9 / 3 + 1 / 3)


def test_act_dcf_accepts_a_score_exactly_at_the_threshold() -> None:
    # p_attack 0.5 and equal costs: beta = 1, threshold -ln 1 = 0 on the bona fide LLR, and
    # P(AI) = 0.5 gives exactly 0. Bona fide at the threshold is accepted (not a miss), an attack
    # at it accepted too (a false alarm): Pmiss 0, Pfa 1/2, DCF = (0.5 * 1/2) / 0.5.
    cost = CostModel(p_attack=0.5, c_miss=1.0, c_fa=1.0)
    y, p = _labelled([0.5, 0.8], [0.5, 0.2])
    assert act_dcf(y, p, cost) == pytest.approx(0.5)


# --- Cllr and minCllr -----------------------------------------------------------------------------


def test_cllr_of_llr_zero_is_exactly_one_bit() -> None:
    y, p = _labelled([0.5, 0.5], [0.5, 0.5, 0.5])
    assert cllr(y, p) == 1.0
    # Uninformative scores are already calibrated in rank: minCllr is 1 too.
    assert min_cllr(y, p) == pytest.approx(1.0)


def test_cllr_by_hand() -> None:
    # P(AI) 0.2 for the real track: bona fide LLR ln 4, cost log2(1 + 1/4); P(AI) 0.8 for the
    # AI track: bona fide LLR -ln 4, cost log2(1 + 1/4).
    y, p = _labelled([0.8], [0.2])
    assert cllr(y, p) == pytest.approx(math.log2(1.25))
    # Confidently wrong costs more than a bit: real at 0.9 costs log2(10), AI at 0.5 one bit.
    y, p = _labelled([0.5], [0.9])
    assert cllr(y, p) == pytest.approx(0.5 * (math.log2(10) + 1))


def test_perfect_calibrated_scores_cost_nothing() -> None:
    y, p = _labelled([1.0, 1.0], [0.0, 0.0])
    assert cllr(y, p) == pytest.approx(0.0, abs=1e-10)
    y, p = _labelled([0.7, 0.9], [0.1, 0.2])
    assert min_cllr(y, p) == 0.0


def test_min_cllr_by_hand_with_a_pav_merge() -> None:
    # Ascending bona fide LLR (descending P(AI)): ai 0.9, real 0.8, ai 0.7, real 0.6, real 0.1.
    # Bona fide shares 0, 1, 0, 1, 1: PAV pools (1, 0) into 1/2. Prior log-odds ln(3/2), so the
    # pooled block's LLR is -ln 1.5: real 0.8 costs log2(1 + 1.5), ai 0.7 log2(1 + 1/1.5); the
    # blocks at posterior 0 and 1 cost nothing.
    y, p = _labelled([0.9, 0.7], [0.8, 0.6, 0.1])
    expected = 0.5 * (math.log2(2.5) / 3 + math.log2(5 / 3) / 2)
    assert min_cllr(y, p) == pytest.approx(expected)
    assert expected == pytest.approx(0.404563, abs=1e-6)
    assert min_cllr(y, p) <= cllr(y, p)


def test_min_cllr_pools_tied_scores_whatever_their_order() -> None:
    # A real and an AI track tie at 0.5 between a clear AI (0.9) and a clear real (0.1) track.
    # Pooled, the tie block has posterior 1/2, LLR 0: one bit for each of its two tracks, so
    # minCllr = 0.5 * (1/2 + 1/2). Sorting the tie without pooling could give 0.
    for y, p in (
        (np.array([True, True, False, False]), np.array([0.9, 0.5, 0.5, 0.1])),
        (np.array([True, False, True, False]), np.array([0.9, 0.5, 0.5, 0.1])),
        (np.array([False, True, False, True]), np.array([0.1, 0.5, 0.5, 0.9])),
    ):
        assert min_cllr(y, p) == pytest.approx(0.5)


def test_min_cllr_ignores_monotone_transforms_and_cllr_does_not() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.4
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.001, 0.999)
    assert min_cllr(y, p) == pytest.approx(min_cllr(y, p**3))
    assert cllr(y, p) != pytest.approx(cllr(y, p**3))
    assert min_cllr(y, p) <= cllr(y, p)


@pytest.mark.parametrize(
    ("y", "p"),
    [
        (np.array([True, True]), np.array([0.2, 0.9])),
        (np.array([False]), np.array([0.3])),
        (np.array([], dtype=bool), np.array([])),
    ],
)
def test_one_class_or_none_is_undefined(y: np.ndarray, p: np.ndarray) -> None:
    assert min_dcf(y, p) == (None, None)
    assert act_dcf(y, p) is None and cllr(y, p) is None and min_cllr(y, p) is None


def test_a_failed_track_is_refused_by_the_point_functions() -> None:
    with pytest.raises(ValueError, match="finite"):
        cllr(np.array([True, False]), np.array([0.4, np.nan]))


# --- the published equations, restated literally --------------------------------------------------


def _bona_llr(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -np.log(q / (1 - q))


def _literal_min_dcf(y: np.ndarray, p: np.ndarray, cost: CostModel) -> tuple[float, float]:
    """Every threshold: one below all scores, each score, one above all; first minimum kept."""
    scores = _bona_llr(p)
    bona, spoof = scores[~y], scores[y]
    a = cost.c_miss * (1 - cost.p_attack)
    b = cost.c_fa * cost.p_attack
    best, best_t = math.inf, math.nan
    for t in [scores.min() - 1.0, *sorted(scores), math.inf]:
        p_miss = np.sum(bona < t) / bona.size
        p_fa = np.sum(spoof >= t) / spoof.size
        c = (a * p_miss + b * p_fa) / min(a, b)
        if c < best:
            best, best_t = c, t
    return best, best_t


def _literal_act_dcf(y: np.ndarray, p: np.ndarray, cost: CostModel) -> float:
    scores = _bona_llr(p)
    beta = cost.c_miss * (1 - cost.p_attack) / (cost.c_fa * cost.p_attack)
    threshold = -np.log(beta)
    rate_miss = np.sum(scores[~y] < threshold) / np.sum(~y)
    rate_fa = np.sum(scores[y] >= threshold) / np.sum(y)
    dcf = cost.c_miss * (1 - cost.p_attack) * rate_miss + cost.c_fa * cost.p_attack * rate_fa
    return dcf / min(cost.c_fa * cost.p_attack, cost.c_miss * (1 - cost.p_attack))


def _literal_cllr(y: np.ndarray, p: np.ndarray) -> float:
    scores = _bona_llr(p)
    return (
        0.5
        * (np.mean(np.log1p(np.exp(-scores[~y]))) + np.mean(np.log1p(np.exp(scores[y]))))
        / np.log(2)
    )


def _literal_min_cllr(y: np.ndarray, p: np.ndarray) -> float:
    """Pool equal scores, pool adjacent violators with a stack (exact fractions), then the
    cost of each pooled block from its counts."""
    scores = _bona_llr(p)
    stack: list[list[int]] = []
    for value in sorted(set(scores.tolist())):
        at = scores == value
        stack.append([int(np.sum(at & ~y)), int(np.sum(at & y))])
        while len(stack) > 1:
            (b0, k0), (b1, k1) = stack[-2], stack[-1]
            if Fraction(b0, b0 + k0) <= Fraction(b1, b1 + k1):
                break
            stack.pop()
            stack[-1] = [b0 + b1, k0 + k1]
    n_bona, n_spoof = int(np.sum(~y)), int(np.sum(y))
    bona_bits = spoof_bits = 0.0
    for b, k in stack:
        # exp(-llr) = (k / b) * (n_bona / n_spoof) for the block's calibrated LLR.
        if b:
            bona_bits += b * math.log2(1 + (k * n_bona) / (b * n_spoof))
        if k:
            spoof_bits += k * math.log2(1 + (b * n_spoof) / (k * n_bona))
    return 0.5 * (bona_bits / n_bona + spoof_bits / n_spoof)


@pytest.mark.parametrize(
    "cost",
    [CostModel(), CostModel(p_attack=0.5, c_miss=1.0, c_fa=1.0), CostModel(0.3, 2.0, 3.0)],
)
def test_metrics_agree_with_a_literal_restatement_on_random_scores(cost: CostModel) -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        n = int(rng.integers(2, 80))
        y = rng.random(n) < rng.uniform(0.1, 0.9)
        y[:2] = [True, False]
        p = np.clip(rng.normal(0.4 + 0.2 * y, 0.3), 0.0, 1.0)
        p = np.round(p, int(rng.integers(1, 4)))  # ties, and exact 0 and 1
        value, threshold = min_dcf(y, p, cost)
        expected, t = _literal_min_dcf(y, p, cost)
        assert value == pytest.approx(expected, abs=1e-12)
        # The P(AI) threshold makes exactly the calls of the bona fide threshold t.
        assert np.array_equal(p >= threshold, _bona_llr(p) < t)
        assert act_dcf(y, p, cost) == pytest.approx(_literal_act_dcf(y, p, cost), abs=1e-12)
        assert cllr(y, p) == pytest.approx(_literal_cllr(y, p), rel=1e-9)
        assert min_cllr(y, p) == pytest.approx(_literal_min_cllr(y, p), rel=1e-9, abs=1e-12)


# --- bootstrap ------------------------------------------------------------------------------------


def test_weighted_metrics_equal_the_metrics_of_the_repeated_tracks() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(40) < 0.5
    y[:2] = [True, False]
    p = np.round(rng.random(40), 1)
    weights = rng.integers(0, 4, size=(6, 40)).astype(float)
    weights[:, :2] = 1.0  # both classes in every row
    cost = CostModel(p_attack=0.2, c_miss=1.0, c_fa=3.0)
    got = weighted_cost_metrics(y, p, weights, cost)
    for i, row in enumerate(weights):
        idx = np.repeat(np.arange(40), row.astype(int))
        assert got["min_dcf"][i] == pytest.approx(min_dcf(y[idx], p[idx], cost)[0])
        assert got["act_dcf"][i] == pytest.approx(act_dcf(y[idx], p[idx], cost))
        assert got["cllr"][i] == pytest.approx(cllr(y[idx], p[idx]))
        assert got["min_cllr"][i] == pytest.approx(min_cllr(y[idx], p[idx]))


def test_bootstrap_intervals_contain_the_point_and_leave_the_others_alone() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.4
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    pred = p >= 0.5
    plain = bootstrap_intervals(y, pred, p, seed=7, resamples=300)
    with_cost = bootstrap_intervals(y, pred, p, seed=7, resamples=300, cost=CostModel())
    assert set(with_cost) == set(plain) | set(COST_METRICS)
    assert {k: with_cost[k] for k in plain} == plain
    points = {
        "min_dcf": min_dcf(y, p)[0],
        "act_dcf": act_dcf(y, p),
        "cllr": cllr(y, p),
        "min_cllr": min_cllr(y, p),
    }
    for name, point in points.items():
        ci = with_cost[name]
        assert ci["n_finite"] == 300
        assert ci["low"] < point < ci["high"], name


def test_bootstrap_counts_failures_in_act_dcf_only() -> None:
    # Both real tracks failed (prob NaN): actDCF's miss rate is 1 in every replicate, while
    # minDCF, Cllr and minCllr have no real track to rank.
    y = np.array([True, True, True, False, False])
    prob = np.array([0.9, 0.1, 0.7, np.nan, np.nan])
    ci = bootstrap_intervals(y, y.copy(), prob, seed=0, resamples=100, cost=CostModel())
    assert ci["act_dcf"]["n_finite"] == 100 and ci["act_dcf"]["low"] >= 1.9
    for name in ("min_dcf", "cllr", "min_cllr"):
        assert ci[name] == {"low": None, "high": None, "n_finite": 0}


# --- metrics.json, reports and the command line ---------------------------------------------------


def _row(track: str, label: str, prob: float | None, stage: str = "decode") -> dict:
    failed = prob is None
    return {
        "model": "A", "track_id": track, "bench": "demo", "subset": f"s_{label}",
        "label": label, "generator": "g", "bench_origin": "test", "prob": prob,
        "status": "failed" if failed else "scored", "stage": stage if failed else None,
        "error": "boom" if failed else None, "seconds": 0.01, "note": None, "variant": "original",
    }  # fmt: skip


def _rows(model: str = "A") -> list[dict]:
    """Scored: AI 0.9, 0.8, 0.3 and real 0.6, 0.2, 0.1, 0.4; one AI and one real track failed."""
    rows = [_row(f"ai{i}", "ai", p) for i, p in enumerate([None, 0.9, 0.8, 0.3])]
    rows += [_row(f"r{i}", "real", p) for i, p in enumerate([0.6, 0.2, 0.1, 0.4])]
    rows.append(_row("r9", "real", None, "inference"))
    return [{**row, "model": model} for row in rows]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(_rows())


def test_compute_metrics_carries_the_cost_model_and_imputes_failures_in_act_dcf() -> None:
    out = compute_metrics(_frame(), 0.5, 0, resamples=50)
    assert out["cost_model"] == CostModel().to_json()
    block = out["models"]["A"]
    scored, impute = block["scored"], block["accounting"]["impute"]
    for part in (scored, block["accounting"]["exclude"], impute):
        for key in (*COST_METRICS, "min_dcf_threshold"):
            assert key in part
        assert set(COST_METRICS) <= set(part["ci"])
    # Scored, by P(AI): 0.9 ai, 0.8 ai, 0.6 r, 0.4 r, 0.3 ai, 0.2 r, 0.1 r; 1.9 Pmiss + Pfa is
    # 1/3 at best, calling 0.9 and 0.8 AI.
    assert scored["min_dcf"] == pytest.approx(1 / 3) and scored["min_dcf_threshold"] == 0.8
    # actDCF calls AI above 0.655: no real track is, AI 0.3 is accepted: Pfa 1/3.
    assert scored["act_dcf"] == pytest.approx(1 / 3)
    # Imputed: the failed AI track is a false alarm (Pfa 2/4), the failed real one a miss
    # (Pmiss 1/5): 1.9 / 5 + 1 / 2.
    assert impute["act_dcf"] == pytest.approx(0.88)
    for key in ("min_dcf", "min_dcf_threshold", "cllr", "min_cllr"):
        assert impute[key] == scored[key]
    assert impute["ci"]["act_dcf"] != scored["ci"]["act_dcf"]

    other = compute_metrics(_frame(), 0.5, 0, resamples=50, cost=CostModel(0.5, 1.0, 10.0))
    assert other["cost_model"]["p_attack"] == 0.5
    # beta = 0.5 / 5: AI when P(AI) > 1 / 11, which every real track's score is, so with the
    # failed one Pmiss = 5/5; only the failed AI track is accepted, Pfa = 1/4. DCF = Pmiss +
    # 10 Pfa = 3.5.
    assert other["models"]["A"]["accounting"]["impute"]["act_dcf"] == pytest.approx(3.5)


def test_a_model_whose_every_track_failed_has_only_the_imputed_act_dcf() -> None:
    """Nothing scored: every threshold-free cost is undefined; imputed, each AI track is a false
    alarm and each real track a miss, so actDCF is (0.95 + 0.5) / 0.5 = 2.9."""
    rows = [{**_row(f"ai{i}", "ai", None), "model": "B"} for i in range(3)]
    rows += [{**_row(f"r{i}", "real", None), "model": "B"} for i in range(2)]
    block = compute_metrics(pd.DataFrame(rows), 0.5, 0, resamples=20)["models"]["B"]
    for key in (*COST_METRICS, "min_dcf_threshold"):
        assert block["scored"][key] is None, key
    impute = block["accounting"]["impute"]
    assert impute["act_dcf"] == pytest.approx(2.9)
    assert impute["min_dcf"] is None and impute["cllr"] is None and impute["min_cllr"] is None


def _meta(cost: dict | None, model: str = "A") -> dict:
    meta = {
        "bench": "demo", "bench_fingerprint": "f" * 64, "split": "test", "threshold": 0.5,
        "seed": 0, "decode_protocol": "p", "variants": ["original"],
        "variant_protocols": {"original": "p"}, "subsets": {},
        "models": {model: {"params": "1", "paper_name": model, "weights_sha256": "w",
                           "protocol_hash": "h"}},
        "written_utc": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    if cost is not None:
        meta["cost_model"] = cost
    return meta


def test_reports_read_the_recorded_cost_model_and_options_replace_fields(tmp_path: Path) -> None:
    path = tmp_path / "predictions.parquet"
    write_predictions(_rows(), _meta(CostModel(0.2, 1.0, 4.0).to_json()), path)
    metrics, _ = build_results(*read_predictions(path))
    assert (metrics["cost_model"]["p_attack"], metrics["cost_model"]["c_fa"]) == (0.2, 4.0)

    write_reports(path, tmp_path / "recorded")
    write_reports(path, tmp_path / "changed", cost={"c_fa": 8.0})
    recorded = json.loads((tmp_path / "recorded" / "metrics.json").read_text())
    changed = json.loads((tmp_path / "changed" / "metrics.json").read_text())
    assert recorded == metrics
    assert changed["cost_model"]["p_attack"] == 0.2 and changed["cost_model"]["c_fa"] == 8.0
    assert changed["models"]["A"]["scored"]["cllr"] == recorded["models"]["A"]["scored"]["cllr"]
    report = (tmp_path / "recorded" / "report.md").read_text()
    assert "minDCF" in report and "Cllr (min)" in report and "P_attack 0.2" in report

    # A run written before the cost model was recorded gets ASVspoof 5's.
    old = tmp_path / "old.parquet"
    write_predictions(_rows(), _meta(None), old)
    assert build_results(*read_predictions(old))[0]["cost_model"] == canonical(
        CostModel().to_json()
    )


def test_a_run_records_its_cost_model_and_report_rebuilds_it(
    file_bench: Bench, tmp_path: Path
) -> None:
    cost = CostModel(p_attack=0.3, c_miss=2.0, c_fa=5.0)
    options = RunOptions(out=tmp_path / "runs", workers=0, split="all", cost=cost)
    result = run(file_bench, resolve_models("counting"), options)
    _, meta = read_predictions(result.run_dir / "predictions.parquet")
    assert CostModel.from_json(meta["cost_model"]) == cost
    written = (result.run_dir / "metrics.json").read_text()
    assert json.loads(written)["cost_model"] == canonical(cost.to_json())
    write_reports(result.run_dir / "predictions.parquet", tmp_path / "again")
    assert (tmp_path / "again" / "metrics.json").read_text() == written


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "somewhere", "--dcf-p-attack", "1"], "strictly between 0 and 1"),
        (["run", "--dcf-c-fa", "0"], "c_fa must be a finite number > 0"),
        (["leaderboard", "a", "b", "--dcf-c-miss=-1"], "c_miss must be a finite number > 0"),
    ],
)
def test_a_wrong_cost_option_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], done.stderr


def test_leaderboard_shows_min_dcf_and_agrees_on_one_cost_model(tmp_path: Path) -> None:
    dirs = []
    for model, cost in (("A", CostModel(0.2, 1.0, 4.0)), ("B", CostModel())):
        run_dir = tmp_path / model
        run_dir.mkdir()
        meta = _meta(cost.to_json(), model)
        write_predictions(_rows(model), meta, run_dir / "predictions.parquet")
        dirs.append(run_dir)
    with pytest.raises(ValueError, match="cost model differs"):
        build_leaderboard(dirs, resamples=20)
    chosen = {"p_attack": 0.5, "c_miss": 1.0, "c_fa": 10.0}
    board = build_leaderboard(dirs, resamples=20, cost=chosen)
    assert CostModel.from_json(board["cost_model"]) == CostModel(0.5, 1.0, 10.0)
    own = compute_metrics(_frame(), 0.5, 0, resamples=20, cost=CostModel(0.5, 1.0, 10.0))
    for entry in board["ranking"]:
        assert entry["min_dcf"] == pytest.approx(own["models"]["A"]["scored"]["min_dcf"])
        assert entry["cllr"] == pytest.approx(own["models"]["A"]["scored"]["cllr"], abs=1e-6)
        assert entry["cost_ci"]["min_dcf"]["n_finite"] == 20
    text = leaderboard_markdown(board)
    assert "minDCF [95% CI]" in text and "P_attack 0.5" in text
    # Agreeing runs need no option.
    assert build_leaderboard(dirs[1:], resamples=20)["cost_model"] == canonical(
        CostModel().to_json()
    )


def test_min_cllr_is_the_same_with_scikit_learns_pav(monkeypatch: pytest.MonkeyPatch) -> None:
    """SciPy before 1.12 has no isotonic_regression; scikit-learn's gives the same pools."""
    from artifactbench.analysis import detection_cost

    rng = np.random.default_rng(8)
    y = rng.random(300) < 0.5
    p = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1), 2)
    with_scipy = min_cllr(y, p)
    monkeypatch.setattr(detection_cost, "_scipy_pav", lambda: None)
    assert min_cllr(y, p) == pytest.approx(with_scipy, rel=1e-12)
    assert with_scipy == pytest.approx(_literal_min_cllr(y, p), rel=1e-9)
