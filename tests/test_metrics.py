"""Metrics: hand-made cases, agreement with scikit-learn, edge cases, both accountings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from artifactbench.analysis.metrics import (
    _resample_counts,
    _weighted_auc,
    binary_metrics,
    bootstrap_intervals,
    compute_metrics,
    f1_curve,
    roc_points,
)
from artifactbench.predictions import validate_predictions


def test_hand_made_counts_and_rates() -> None:
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.5, 0.4, 0.7, 0.6, 0.1, 0.2, 0.3, 0.0]
    m = binary_metrics(y, p, 0.5, resamples=50)
    # 0.5 sits on the threshold and counts as AI.
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 4)
    assert m["n"] == 9 and m["n_ai"] == 4 and m["n_real"] == 5
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["fpr"] == pytest.approx(1 / 5)
    assert m["f1"] == pytest.approx(6 / 8)
    assert m["accuracy"] == pytest.approx(7 / 9)
    # 4 x 5 pairs; the positives 0.5 and 0.4 lose to 0.6, the rest win: 18 / 20.
    assert m["auc"] == pytest.approx(18 / 20)


def test_string_labels_are_accepted() -> None:
    m = binary_metrics(["ai", "real", "ai"], [0.8, 0.3, 0.2], 0.5, resamples=10)
    assert (m["tp"], m["fn"], m["tn"]) == (1, 1, 1)
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(["ai", "fake"], [0.8, 0.3])


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.random(n) < rng.uniform(0.2, 0.8)
    # Rounded scores create many ties, the case where implementations differ.
    p = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1), 1)
    thr = float(rng.choice([0.3, 0.5, 0.7]))
    m = binary_metrics(y, p, thr, resamples=20)
    pred = p >= thr
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    fpr, tpr, thr_sk = roc_curve(y, p, drop_intermediate=False)
    ours = roc_points(y, p)
    np.testing.assert_allclose(ours[0], fpr)
    np.testing.assert_allclose(ours[1], tpr)
    np.testing.assert_allclose(ours[2][1:], thr_sk[1:])
    # Corners only: the same curve (scikit-learn's drop_intermediate), with fewer points.
    fpr, tpr, thr_sk = roc_curve(y, p, drop_intermediate=True)
    corners = roc_points(y, p, corners_only=True)
    np.testing.assert_allclose(corners[0], fpr)
    np.testing.assert_allclose(corners[1], tpr)
    np.testing.assert_allclose(corners[2][1:], thr_sk[1:])


def test_eer_interpolates_between_roc_points() -> None:
    # ROC points: (0,0) (0,.5) at 0.9, (1,.5) at 0.5, (1,1) at 0.2; FNR crosses FPR halfway
    # between the second and third point.
    m = binary_metrics([1, 1, 0], [0.9, 0.2, 0.5], resamples=10)
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == pytest.approx(0.5)
    perfect = binary_metrics([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], resamples=10)
    assert perfect["eer"] == 0.0 and perfect["eer_threshold"] == pytest.approx(0.8)


def test_threshold_at_fpr05_takes_exactly_five_percent() -> None:
    neg = np.linspace(0.0, 0.5, 20)  # 20 real tracks; the top one scores 0.5.
    pos = np.array([0.9, 0.6, 0.45, 0.3])
    y = np.r_[np.ones(4, bool), np.zeros(20, bool)]
    m = binary_metrics(y, np.r_[pos, neg], resamples=10)
    # Threshold 0.5 lets 1 of 20 real tracks through: FPR exactly 0.05 qualifies.
    assert m["threshold_at_fpr05"] == pytest.approx(0.5)
    assert m["fpr_at_fpr05"] == pytest.approx(0.05)
    assert m["tpr_at_fpr05"] == pytest.approx(0.5)


def test_threshold_at_fpr05_respects_ties() -> None:
    neg = np.r_[np.linspace(0.0, 0.3, 18), 0.5, 0.5]  # two real tracks tied at 0.5
    pos = np.array([0.9, 0.5])
    y = np.r_[np.ones(2, bool), np.zeros(20, bool)]
    m = binary_metrics(y, np.r_[pos, neg], resamples=10)
    # At 0.5 the tie lets 2 of 20 through (10%), so the answer is the next score up.
    assert m["threshold_at_fpr05"] == pytest.approx(0.9)
    assert m["tpr_at_fpr05"] == pytest.approx(0.5)
    assert m["fpr_at_fpr05"] == 0.0


def test_threshold_at_fpr05_none_when_top_score_is_real() -> None:
    m = binary_metrics([0, 1, 0, 0], [0.99, 0.8, 0.1, 0.2], resamples=10)
    assert m["threshold_at_fpr05"] is None
    assert m["tpr_at_fpr05"] == 0.0 and m["fpr_at_fpr05"] == 0.0


def test_one_class_missing() -> None:
    only_ai = binary_metrics([1, 1, 1], [0.9, 0.2, 0.6], resamples=20)
    assert only_ai["fpr"] is None and only_ai["auc"] is None and only_ai["eer"] is None
    assert only_ai["threshold_at_fpr05"] is None and only_ai["tpr_at_fpr05"] is None
    assert only_ai["average_precision"] == pytest.approx(1.0)
    assert only_ai["recall"] == pytest.approx(2 / 3)
    assert only_ai["ci"]["auc"] == {"low": None, "high": None, "n_finite": 0}
    assert only_ai["ci"]["fpr"]["n_finite"] == 0

    only_real = binary_metrics([0, 0], [0.1, 0.2], resamples=20)
    # No AI tracks and nothing called AI: precision, recall and F1 are all undefined.
    assert only_real["precision"] is None and only_real["recall"] is None
    assert only_real["f1"] is None and only_real["average_precision"] is None
    assert only_real["fpr"] == 0.0 and only_real["accuracy"] == 1.0


def test_empty_input_is_all_undefined() -> None:
    m = binary_metrics([], [], resamples=10)
    assert m["n"] == 0
    for key in ("precision", "recall", "fpr", "f1", "accuracy", "auc", "eer"):
        assert m[key] is None, key
    assert all(v["n_finite"] == 0 and v["low"] is None for v in m["ci"].values())
    json.dumps(m, allow_nan=False)


def test_non_finite_probability_is_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        binary_metrics([1, 0], [0.5, float("nan")])


def test_weighted_auc_equals_auc_of_resampled_data() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(60) < 0.5
    p = np.round(rng.random(60), 1)
    weights = rng.integers(0, 4, size=(5, 60)).astype(float)
    got = _weighted_auc(y, p, weights)
    for row, value in zip(weights.astype(int), got, strict=True):
        yy, pp = np.repeat(y, row), np.repeat(p, row)
        assert value == pytest.approx(roc_auc_score(yy, pp))


def test_resampling_keeps_class_sizes() -> None:
    counts = _resample_counts(np.random.default_rng(0), 13, 200)
    assert counts.shape == (200, 13)
    assert np.all(counts.sum(axis=1) == 13)
    assert _resample_counts(np.random.default_rng(0), 0, 5).shape == (5, 0)


def test_bootstrap_is_seeded_and_sensible() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.4
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    pred = p >= 0.5
    a = bootstrap_intervals(y, pred, p, seed=7, resamples=300)
    b = bootstrap_intervals(y, pred, p, seed=7, resamples=300)
    c = bootstrap_intervals(y, pred, p, seed=8, resamples=300)
    assert a == b and a != c
    point = binary_metrics(y, p, 0.5, resamples=10)
    for name in ("f1", "precision", "recall", "fpr", "auc"):
        assert a[name]["n_finite"] == 300
        assert a[name]["low"] < point[name] < a[name]["high"]


def test_bootstrap_is_fast_on_a_sonics_sized_set() -> None:
    import time

    rng = np.random.default_rng(0)
    y = rng.random(24_000) < 0.5
    p = rng.random(24_000)
    start = time.perf_counter()
    out = bootstrap_intervals(y, p >= 0.5, p, seed=0, resamples=1000)
    assert time.perf_counter() - start < 10
    assert out["auc"]["n_finite"] == 1000


def test_f1_curve_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.random(80) < 0.5
    p = np.round(rng.random(80), 2)
    grid = np.array([0.0, 0.25, 0.5, 0.75, 0.99, 1.0])
    got = f1_curve(y, p, grid)
    for t, value in zip(grid, got, strict=True):
        assert value == pytest.approx(f1_score(y, p >= t, zero_division=0))
    assert np.isnan(f1_curve([0, 0], [0.1, 0.2], np.array([0.5])))[0]


def _row(model: str, track: str, label: str, prob: float | None, stage: str | None = None) -> dict:
    return {
        "model": model,
        "track_id": track,
        "bench": "demo",
        "subset": f"s_{label}",
        "label": label,
        "generator": "g",
        "bench_origin": "test",
        "prob": prob,
        "status": "scored" if prob is not None else "failed",
        "stage": None if prob is not None else stage,
        "error": None if prob is not None else "boom",
        "seconds": 0.01,
    }


@pytest.fixture
def dual_frame() -> pd.DataFrame:
    """A fails ai1 (decode), B fails r1 (resolve); everything else is scored."""
    a = {
        "ai1": None,
        "ai2": 0.9,
        "ai3": 0.8,
        "ai4": 0.3,
        "r1": 0.6,
        "r2": 0.2,
        "r3": 0.1,
        "r4": 0.4,
    }
    b = {
        "ai1": 0.7,
        "ai2": 0.6,
        "ai3": 0.2,
        "ai4": 0.9,
        "r1": None,
        "r2": 0.1,
        "r3": 0.55,
        "r4": 0.3,
    }
    rows = []
    for model, probs, stage in (("A", a, "decode"), ("B", b, "resolve")):
        for track, prob in probs.items():
            rows.append(_row(model, track, "ai" if track.startswith("ai") else "real", prob, stage))
    return pd.DataFrame(rows)


def _counts(block: dict) -> tuple[int, int, int, int]:
    return block["tp"], block["fn"], block["fp"], block["tn"]


def test_dual_accounting_by_hand(dual_frame: pd.DataFrame) -> None:
    out = compute_metrics(dual_frame, 0.5, 0, resamples=100)
    a, b = out["models"]["A"], out["models"]["B"]
    assert (a["n"], a["n_scored"], a["n_failed"]) == (8, 7, 1)
    assert a["failures"] == {
        "resolve": 0,
        "decode": 1,
        "transform": 0,
        "encode": 0,
        "inference": 0,
        "unknown": 0,
    }
    assert b["failures"]["resolve"] == 1
    assert out["n_tracks"] == 8 and out["n_common_scored"] == 6

    assert _counts(a["scored"]) == (2, 1, 1, 3)
    assert _counts(b["scored"]) == (3, 1, 1, 2)

    # exclude: ai1 and r1 leave both models.
    ex_a, ex_b = a["accounting"]["exclude"], b["accounting"]["exclude"]
    assert ex_a["n"] == ex_b["n"] == 6 and ex_a["n_dropped"] == ex_b["n_dropped"] == 2
    assert _counts(ex_a) == (2, 1, 0, 3)
    assert _counts(ex_b) == (2, 1, 1, 2)
    assert ex_b["fpr"] == pytest.approx(1 / 3)

    # impute: A's failed AI track is a miss, B's failed real track a false positive.
    im_a, im_b = a["accounting"]["impute"], b["accounting"]["impute"]
    assert im_a["n"] == im_b["n"] == 8 and im_a["n_imputed"] == 1
    assert _counts(im_a) == (2, 2, 1, 3)
    assert im_a["f1"] == pytest.approx(4 / 7)
    assert im_a["recall"] == pytest.approx(0.5) and im_a["fpr"] == pytest.approx(0.25)
    assert _counts(im_b) == (3, 1, 2, 2)
    assert im_b["precision"] == pytest.approx(3 / 5)
    # Threshold-free metrics stay on scored tracks under impute.
    assert im_b["threshold_free_on"] == "scored"
    assert im_b["auc"] == b["scored"]["auc"]
    assert im_a["average_precision"] == a["scored"]["average_precision"]


def test_bootstrap_counts_imputed_tracks_but_ranks_only_scored_ones() -> None:
    # Both real tracks failed and are imputed as false positives (prob NaN, call AI).
    y = np.array([True, True, True, False, False])
    pred = np.array([True, False, True, True, True])
    prob = np.array([0.9, 0.1, 0.7, np.nan, np.nan])
    ci = bootstrap_intervals(y, pred, prob, seed=0, resamples=200)
    assert ci["fpr"] == {"low": 1.0, "high": 1.0, "n_finite": 200}
    assert ci["auc"]["n_finite"] == 0
    assert ci["recall"]["low"] < ci["recall"]["high"]


def test_result_does_not_depend_on_row_order(dual_frame: pd.DataFrame) -> None:
    shuffled = dual_frame.sample(frac=1.0, random_state=4).reset_index(drop=True)
    assert compute_metrics(dual_frame, 0.5, 3, resamples=50) == compute_metrics(
        shuffled, 0.5, 3, resamples=50
    )


def test_no_failures_makes_accountings_equal_scored(dual_frame: pd.DataFrame) -> None:
    clean = dual_frame[dual_frame["status"] == "scored"]
    clean = clean[~clean["track_id"].isin(["ai1", "r1"])]
    out = compute_metrics(clean, 0.5, 0, resamples=50)
    for m in out["models"].values():
        scored = m["scored"]
        assert {k: v for k, v in m["accounting"]["exclude"].items() if k != "n_dropped"} == scored
        impute = m["accounting"]["impute"]
        assert {k: v for k, v in impute.items() if k not in {"n_imputed", "threshold_free_on"}} == (
            scored
        )


def test_failed_row_without_stage_is_counted_as_unknown(dual_frame: pd.DataFrame) -> None:
    frame = dual_frame.copy()
    frame.loc[frame["status"] == "failed", "stage"] = None
    out = compute_metrics(frame, 0.5, 0, resamples=10)
    assert out["models"]["A"]["failures"]["unknown"] == 1


def test_json_safe(dual_frame: pd.DataFrame) -> None:
    only_ai = dual_frame[dual_frame["label"] == "ai"]
    json.dumps(compute_metrics(only_ai, 0.5, 0, resamples=10), allow_nan=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(label="fake"), "labels"),
        (lambda f: f.assign(status="ok"), "status"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate"),
        (lambda f: f.drop(columns=["prob"]), "lack columns"),
        (lambda f: f.assign(prob=np.where(f["status"] == "scored", np.nan, f["prob"])), "prob"),
        (lambda f: f.assign(stage=np.where(f["status"] == "failed", "unzip", None)), "stages"),
    ],
)
def test_contract_violations_are_rejected(dual_frame: pd.DataFrame, change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_predictions(change(dual_frame))
