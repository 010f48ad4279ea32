"""The statistics report sections, checked on small hand-built predictions tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from artifactbench.analysis.diagnostics import operating_points
from artifactbench.analysis.metrics import CI_METRICS, bootstrap_intervals, compute_metrics
from artifactbench.analysis.stats import (
    delong_test,
    mcnemar_test,
    paired_bootstrap,
)
from artifactbench.reports.plots import plot_reliability
from artifactbench.reports.statistics import (
    build_statistics,
    calibration_table,
    cluster_ids,
    model_intervals,
    operating_points_table,
    paired_comparisons,
)
from artifactbench.reports.statistics_markdown import statistics_markdown

THR = 0.5
RESAMPLES = 200


def make_preds(
    y: np.ndarray,
    probs: dict[str, np.ndarray],
    *,
    failed: dict[str, list[int]] | None = None,
    extra: dict[str, list] | None = None,
    track_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per (model, track); `failed` lists the track indexes each model failed on."""
    failed = failed or {}
    ids = track_ids or [f"t{i:03d}" for i in range(y.size)]
    rows = []
    for model, prob in probs.items():
        for i, label in enumerate(y):
            fail = i in failed.get(model, [])
            row = {
                "model": model,
                "track_id": ids[i],
                "bench": "toy",
                "subset": "gen" if label else "human",
                "label": "ai" if label else "real",
                "generator": "g" if label else None,
                "bench_origin": "test",
                "prob": None if fail else float(prob[i]),
                "status": "failed" if fail else "scored",
                "stage": "decode" if fail else None,
                "error": "boom" if fail else None,
                "seconds": 0.1,
                "note": None,
            }
            for name, values in (extra or {}).items():
                row[name] = values[i]
            rows.append(row)
    return pd.DataFrame(rows)


def scores(rng: np.random.Generator, y: np.ndarray, shift: float) -> np.ndarray:
    """Probabilities in [0, 1] that separate the classes by about `shift`."""
    return np.clip(0.35 + shift * y + rng.normal(0, 0.2, y.size), 0, 1)


@pytest.fixture
def two_models() -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    probs = {"alpha": scores(rng, y, 0.3), "beta": scores(rng, y, 0.15)}
    preds = make_preds(y, probs, failed={"beta": [0, 1, 50]})
    return y, preds


# --- cluster ids -----------------------------------------------------------------------------


def test_cluster_ids_prefers_lineage_then_source() -> None:
    y = np.array([True, True, False, False])
    probs = {"m": np.array([0.9, 0.8, 0.2, 0.1]), "n": np.array([0.7, 0.6, 0.4, 0.3])}
    lineage = ["L1", "L1", None, "L2"]
    source = ["s1", "s2", "s3", "s3"]
    both = make_preds(y, probs, extra={"lineage": lineage, "source": source})
    column, ids = cluster_ids(both)
    assert column == "lineage"
    assert ids is not None and ids.shape == (8,)
    assert ids[0] == ids[1] == "L1" and ids[3] == "L2"
    # A track without a lineage is its own cluster, the same one under every model.
    assert ids[2] not in {"L1", "L2"} and ids[2] == ids[6] and ids[2] != ids[3]
    # A lineage column with nothing in it falls through to source.
    empty = make_preds(y, probs, extra={"lineage": [None, "", None, " "], "source": source})
    column, ids = cluster_ids(empty)
    assert column == "source" and list(ids[:4]) == source
    assert cluster_ids(make_preds(y, probs, extra={"lineage_id": lineage}))[0] == "lineage_id"
    assert cluster_ids(make_preds(y, probs)) == (None, None)


# --- intervals -------------------------------------------------------------------------------


def test_intervals_equal_metrics_bootstrap_without_clusters(two_models) -> None:
    y, preds = two_models
    shuffled = preds.sample(frac=1.0, random_state=3)
    got = model_intervals(shuffled, THR, 7, RESAMPLES)
    metrics = compute_metrics(preds, THR, 7, resamples=RESAMPLES)
    for model, block in got.items():
        # The same intervals as metrics.json's scored block (same rows, same seed), which also
        # has the detection cost metrics'.
        scored_ci = metrics["models"][model]["scored"]["ci"]
        assert block["ci"] == {name: scored_ci[name] for name in CI_METRICS}
        assert block["cluster_column"] is None and block["n_clusters"] is None
        for name in CI_METRICS:
            ci = block["ci"][name]
            assert ci["low"] <= block["point"][name] <= ci["high"]
            assert ci["n_finite"] == RESAMPLES
    beta = got["beta"]
    assert (beta["n"], beta["n_scored"], beta["n_failed"]) == (80, 77, 3)
    assert (beta["n_ai"], beta["n_real"]) == (38, 39)
    # And directly: metrics.bootstrap_intervals on beta's scored tracks in track order.
    rows = preds[(preds["model"] == "beta") & (preds["status"] == "scored")]
    prob = rows["prob"].to_numpy(dtype=float)
    y_b = (rows["label"] == "ai").to_numpy()
    direct = bootstrap_intervals(y_b, prob >= THR, prob, seed=7, resamples=RESAMPLES)
    assert beta["ci"] == direct
    assert beta["point"]["auc"] == pytest.approx(roc_auc_score(y_b, prob))


def test_intervals_resample_whole_lineages() -> None:
    # 20 tracks per class, each present 5 times (one lineage): a track-level bootstrap counts
    # 200 independent tracks, the cluster bootstrap 40.
    rng = np.random.default_rng(4)
    y0 = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    p0 = scores(rng, y0, 0.2)
    y, p = np.repeat(y0, 5), np.repeat(p0, 5)
    ids = [f"t{i:03d}-{k}" for i in range(40) for k in range(5)]
    lineage = [f"L{i:03d}" for i in range(40) for _ in range(5)]
    dup = make_preds(y, {"m": p}, extra={"lineage": lineage}, track_ids=ids)
    whole = model_intervals(dup, THR, 3, RESAMPLES)["m"]
    tracks = model_intervals(dup.drop(columns="lineage"), THR, 3, RESAMPLES)["m"]
    assert whole["cluster_column"] == "lineage"
    assert whole["n_clusters"] == {"ai": 20, "real": 20}
    for name in ("f1", "auc", "recall"):
        w = whole["ci"][name]["high"] - whole["ci"][name]["low"]
        t = tracks["ci"][name]["high"] - tracks["ci"][name]["low"]
        assert w > 1.5 * t, name
    # Drawing whole lineages is drawing the 40 distinct tracks: the same replicates.
    base = model_intervals(make_preds(y0, {"m": p0}), THR, 3, RESAMPLES)["m"]
    for name in CI_METRICS:
        assert whole["ci"][name]["low"] == pytest.approx(base["ci"][name]["low"])
        assert whole["ci"][name]["high"] == pytest.approx(base["ci"][name]["high"])
        assert whole["point"][name] == pytest.approx(base["point"][name])


# --- paired comparisons ----------------------------------------------------------------------


def _common(preds: pd.DataFrame, a: str, b: str):
    """y and both probs on the tracks both models scored, in track order (built by hand)."""
    ok = preds[preds["status"] == "scored"]
    pa = ok[ok["model"] == a].set_index("track_id")
    pb = ok[ok["model"] == b].set_index("track_id")
    common = sorted(set(pa.index) & set(pb.index))
    y = (pa.loc[common, "label"] == "ai").to_numpy()
    return common, y, pa.loc[common, "prob"].to_numpy(float), pb.loc[common, "prob"].to_numpy(float)


def test_pairs_use_only_common_scored_tracks(two_models) -> None:
    y, preds = two_models
    rng = np.random.default_rng(1)
    # gamma has no row at all for the last two tracks and fails track 5.
    gamma = make_preds(y, {"gamma": scores(rng, y, 0.25)}, failed={"gamma": [5]})
    preds = pd.concat([preds, gamma[~gamma["track_id"].isin(["t078", "t079"])]])
    pairs = paired_comparisons(preds, THR, 11, RESAMPLES)
    assert [(p["a"], p["b"]) for p in pairs] == [
        ("alpha", "beta"),
        ("alpha", "gamma"),
        ("beta", "gamma"),
    ]
    by = {(p["a"], p["b"]): p for p in pairs}
    ab = by[("alpha", "beta")]
    assert (ab["n_common"], ab["n_scored_a"], ab["n_scored_b"]) == (77, 80, 77)
    assert (ab["n_only_a"], ab["n_only_b"], ab["n_ai"], ab["n_real"]) == (3, 0, 38, 39)
    bg = by[("beta", "gamma")]
    assert bg["n_common"] == 80 - 3 - 1 - 2
    for (a, b), pair in by.items():
        common, yc, pa, pb = _common(preds, a, b)
        assert pair["n_common"] == len(common)
        assert pair["delong"] == delong_test(yc, pa, pb)
        assert pair["mcnemar"] == mcnemar_test(yc, pa >= THR, pb >= THR)
        assert pair["bootstrap"] == paired_bootstrap(yc, pa, pb, THR, seed=11, resamples=RESAMPLES)
        assert pair["delong"]["n_excluded"] == 0 and pair["mcnemar"]["n"] == len(common)
        assert pair["bootstrap"]["auc"]["low"] <= pair["bootstrap"]["auc"]["difference"]


def test_pairs_resample_clusters_when_present(two_models) -> None:
    y, preds = two_models
    lineage = {f"t{i:03d}": f"L{i // 4}" for i in range(y.size)}
    preds = preds.assign(lineage=preds["track_id"].map(lineage))
    (pair,) = paired_comparisons(preds, THR, 2, RESAMPLES)
    common, yc, pa, pb = _common(preds, "alpha", "beta")
    clusters = [lineage[t] for t in common]
    expected = paired_bootstrap(
        yc, pa, pb, THR, seed=2, resamples=RESAMPLES, clusters=np.array(clusters, dtype=object)
    )
    assert pair["cluster_column"] == "lineage"
    assert pair["bootstrap"] == expected
    assert pair["bootstrap"]["n_clusters"] == {"ai": 10, "real": 10}


# --- operating points and calibration --------------------------------------------------------


def test_operating_points_per_model(two_models) -> None:
    _, preds = two_models
    table = operating_points_table(preds, THR)
    assert sorted(table) == ["alpha", "beta"]
    for model, ops in table.items():
        rows = preds[preds["model"] == model].sort_values("track_id")
        prob = pd.to_numeric(rows["prob"]).to_numpy(float)
        assert ops == operating_points((rows["label"] == "ai").to_numpy(), prob, THR)
        assert ops["best_f1"]["chosen_on_evaluated_data"] is True
        assert ops["at_threshold"]["chosen_on_evaluated_data"] is False
    assert table["beta"]["n_excluded"] == 3 and table["beta"]["n"] == 77


def test_calibration_brier_matches_sklearn(two_models) -> None:
    _, preds = two_models
    table = calibration_table(preds, bins=5)
    for model, block in table.items():
        ok = preds[(preds["model"] == model) & (preds["status"] == "scored")]
        y, p = (ok["label"] == "ai").to_numpy(), ok["prob"].to_numpy(float)
        assert block["brier"] == pytest.approx(brier_score_loss(y, p))
        assert sum(b["count"] for b in block["bins"]) == len(ok) and len(block["bins"]) == 5
        assert block["reason"] is None
    # A score outside [0, 1] is not a probability: reported, not raised.
    bad = preds.copy()
    bad.loc[(bad["model"] == "alpha") & (bad["track_id"] == "t003"), "prob"] = 1.5
    odd = calibration_table(bad)["alpha"]
    assert odd["brier"] is None and odd["bins"] == [] and "[0, 1]" in odd["reason"]


# --- the whole section -----------------------------------------------------------------------


def _check_json(result: dict) -> None:
    text = json.dumps(result, allow_nan=False, sort_keys=True)
    assert json.loads(text) == result


def test_build_statistics_markdown_and_plot(two_models, tmp_path: Path) -> None:
    y, preds = two_models
    # Four consecutive tracks per lineage, so no lineage holds both labels.
    preds = preds.assign(lineage=preds["track_id"].map(lambda t: f"L{int(t[1:]) // 4}"))
    result = build_statistics(preds, THR, 5, RESAMPLES)
    _check_json(result)
    assert result["models"] == ["alpha", "beta"] and result["n_tracks"] == 80
    assert result["n_failed"] == 3
    assert result["clusters"] == {"column": "lineage", "n_ai": 10, "n_real": 10}
    assert result["intervals"] == model_intervals(preds, THR, 5, RESAMPLES)
    assert len(result["pairs"]) == 1
    # Row order does not matter.
    assert build_statistics(preds.iloc[::-1], THR, 5, RESAMPLES) == result
    text = statistics_markdown(result, figure="reliability.png")
    assert (
        "## Intervals (95% bootstrap, 200 resamples, stratified by label, clusters: lineage)"
        in (text)
    )
    for heading in ("## Paired comparisons", "## Operating points", "## Calibration"):
        assert heading in text
    assert "chosen on the evaluated data" in text
    assert "![Reliability diagram](reliability.png)" in text
    assert "| alpha | beta  |" in text or "| alpha | beta |" in text
    assert "nan" not in text.lower()
    assert statistics_markdown(result, level=3).startswith("### Intervals")
    png = plot_reliability(result["calibration"], tmp_path / "reliability.png")
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_clusters_the_heading_has_no_cluster_part(two_models) -> None:
    _, preds = two_models
    result = build_statistics(preds, THR, 5, 50)
    assert result["clusters"] == {"column": None, "n_ai": None, "n_real": None}
    text = statistics_markdown(result)
    assert "## Intervals (95% bootstrap, 50 resamples, stratified by label)" in text


def test_one_model_no_scored_tracks_and_one_class(tmp_path: Path) -> None:
    # One AI-only bench: AUC, FPR and the FPR <= 5% point are undefined.
    y = np.ones(6, bool)
    probs = {"solo": np.array([0.9, 0.8, 0.4, 0.7, 0.6, 0.2])}
    single = build_statistics(make_preds(y, probs, failed={"solo": [5]}), THR, 0, 50)
    _check_json(single)
    assert single["pairs"] == []
    block = single["intervals"]["solo"]
    assert block["n_failed"] == 1 and block["n_real"] == 0
    assert block["point"]["auc"] is None and block["ci"]["auc"]["low"] is None
    assert block["point"]["fpr"] is None and block["ci"]["fpr"]["n_finite"] == 0
    assert block["ci"]["recall"]["n_finite"] == 50
    assert single["operating_points"]["solo"]["at_fpr05"]["impossible"] is True
    text = statistics_markdown(single)
    assert "1 model(s) in this run: no pair to compare." in text
    assert "impossible" in text and "nan" not in text.lower()

    # A second model that failed on every track, on a two-class bench.
    y = np.r_[np.ones(5, bool), np.zeros(5, bool)]
    rng = np.random.default_rng(2)
    probs = {"ok": scores(rng, y, 0.3), "dead": np.zeros(10)}
    preds = make_preds(y, probs, failed={"dead": list(range(10))})
    result = build_statistics(preds, THR, 0, 50)
    _check_json(result)
    dead = result["intervals"]["dead"]
    assert (dead["n_scored"], dead["n_failed"]) == (0, 10)
    assert all(dead["ci"][m]["low"] is None for m in CI_METRICS)
    assert all(dead["point"][m] is None for m in CI_METRICS)
    (pair,) = result["pairs"]
    assert (pair["a"], pair["b"], pair["n_common"]) == ("dead", "ok", 0)
    assert pair["reason"] and pair["bootstrap"] is None and pair["delong"] is None
    assert result["operating_points"]["dead"]["best_f1"]["impossible"] is True
    assert result["calibration"]["dead"]["brier"] is None
    assert result["intervals"]["ok"]["ci"]["auc"]["n_finite"] == 50
    text = statistics_markdown(result)
    assert "no track scored by both models" in text
    png = plot_reliability(result["calibration"], tmp_path / "r.png")
    assert png.stat().st_size > 1000


def test_single_class_pair_has_no_delong(tmp_path: Path) -> None:
    y = np.zeros(8, bool)
    rng = np.random.default_rng(3)
    preds = make_preds(y, {"a": rng.random(8), "b": rng.random(8)})
    result = build_statistics(preds, THR, 1, 40)
    _check_json(result)
    (pair,) = result["pairs"]
    assert pair["delong"]["p"] is None and pair["delong"]["reason"]
    assert pair["bootstrap"]["auc"]["low"] is None
    assert pair["mcnemar"]["p"] is not None
    assert "needs both AI and real tracks" in statistics_markdown(result)
    plot_reliability(result["calibration"], tmp_path / "r.png")


def test_several_variants_are_rejected(two_models) -> None:
    _, preds = two_models
    both = pd.concat([preds.assign(variant="wav"), preds.assign(variant="codec:mp3")])
    with pytest.raises(ValueError, match="variant"):
        model_intervals(both, THR, 0, 10)
    one = preds.assign(variant="wav")
    assert model_intervals(one, THR, 0, 10) == model_intervals(preds, THR, 0, 10)
