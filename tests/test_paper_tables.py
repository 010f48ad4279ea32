"""The paper's table layouts on small hand-checked runs; every expected number is derived here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.benches.base import SubsetInfo
from artifactbench.reports import build_results, write_reports
from artifactbench.reports.paper import build_paper, paper_sections, paper_tables
from artifactbench.reports.paper_layouts import OTHER_GROUP, UNKNOWN_BAND, length_band
from artifactbench.reports.paper_published import load_published, paper_names
from tests.test_reports import make_frame, write_parquet
from tests.test_reports import meta as demo_meta


def row(
    model: str,
    track: str,
    subset: str,
    label: str,
    prob: float | None,
    *,
    bench: str = "artifactbench",
    stage: str | None = None,
    **extra: str | None,
) -> dict:
    """One prediction; `stage` makes it a failure (prob None)."""
    return {
        "model": model,
        "track_id": track,
        "bench": bench,
        "subset": subset,
        "label": label,
        "generator": subset,
        "bench_origin": "test",
        "prob": None if stage else prob,
        "status": "failed" if stage else "scored",
        "stage": stage,
        "error": f"{stage} failed" if stage else None,
        "seconds": 0.0,
        **extra,
    }


def run_meta(bench: str, models: dict, split: str = "test", subsets: dict | None = None) -> dict:
    return {
        "threshold": 0.5,
        "seed": 0,
        "bench": bench,
        "split": split,
        "subsets": subsets,
        "models": models,
    }


def paper_for(rows: list[dict], meta: dict) -> tuple[dict, str]:
    """(paper.json content, markdown) of a hand-made run, through build_results like a report."""
    preds = pd.DataFrame(rows)
    metrics, sanity = build_results(preds, meta)
    return paper_tables(preds, meta, metrics, sanity), paper_sections(preds, meta, metrics, sanity)


def tables_in(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


# --- ArtifactBench: Tables VI-IX ----------------------------------------------------------------


CHIRP = (0.9, 0.8, 0.5, 0.2)
SONICS_REAL = (0.1, 0.6, 0.2, 0.3)


def artifactbench_rows(model: str = "net") -> list[dict]:
    """Per subset, the tracks called AI at 0.5 (failures counted as misclassified):

    sonics_chirp-v3  AI   4 tracks, 3 called AI                 -> TPR 3/4
    sonics_udio-30s  AI   2 tracks, 1 called AI + 1 failed      -> TPR 1/2
    mom_udio         AI   3 tracks, 3 called AI                 -> TPR 3/3
    my_new_gen       AI   1 track, called AI (outside the taxonomy)
    sonics_real      real 4 tracks, 1 called AI                 -> FPR 1/4
    fma_hardneg      real 2 tracks, 1 failed (a false positive) -> FPR 1/2
    youtube_hardneg  real 2 tracks, 0 called AI                 -> FPR 0/2
    """
    r = []
    r += [row(model, f"c{i}", "sonics_chirp-v3", "ai", p) for i, p in enumerate(CHIRP)]
    r += [row(model, "u0", "sonics_udio-30s", "ai", 0.7)]
    r += [row(model, "u1", "sonics_udio-30s", "ai", None, stage="decode")]
    r += [row(model, f"m{i}", "mom_udio", "ai", 0.95) for i in range(3)]
    r += [row(model, "n0", "my_new_gen", "ai", 0.6)]
    r += [row(model, f"s{i}", "sonics_real", "real", p) for i, p in enumerate(SONICS_REAL)]
    r += [row(model, "f0", "fma_hardneg", "real", None, stage="inference")]
    r += [row(model, "f1", "fma_hardneg", "real", 0.1)]
    r += [row(model, f"y{i}", "youtube_hardneg", "real", 0.05) for i in range(2)]
    return r


def test_groups_are_pooled_over_tracks_not_averaged() -> None:
    data, text = paper_for(artifactbench_rows(), run_meta("artifactbench", {"net": {}}))
    viii = data["sections"]["table_viii"]
    sonics = viii["groups"]["SONICS"]
    assert sonics["subsets"] == ["sonics_chirp-v3", "sonics_udio-30s"]
    # (3 + 1) / (4 + 2) = 0.6667, not the mean of 3/4 and 1/2 (0.625).
    assert sonics["models"]["net"] == {"k": 4, "n": 6, "n_failed": 1, "rate": round(4 / 6, 6)}
    assert viii["groups"]["MoM"]["models"]["net"]["rate"] == 1.0
    assert viii["groups"][OTHER_GROUP]["subsets"] == ["my_new_gen"]
    assert viii["absent"] == ["AIME", "latest CDN"]
    ix = data["sections"]["table_ix"]
    assert ix["groups"]["SONICS real"]["models"]["net"]["rate"] == 0.25
    # The failed FMA track is a false positive: (1 + 0) / (2 + 2).
    hard = ix["groups"]["hard negatives"]["models"]["net"]
    assert (hard["k"], hard["n"], hard["n_failed"]) == (1, 4, 1)
    assert ix["absent"] == ["MoM real"]
    assert "|  2 of 5 |      6 | 0.667 (4/6, 1 failed) |" in text
    assert "| hard negatives |  2 of 2 |      4 | 0.250 (1/4, 1 failed) |" in text
    assert "Groups with no subset in this run: AIME, latest CDN." in text
    assert "pooled" in text.lower() and "failed real track a false positive" in text


def test_table_vii_fail_count_and_pass_rate() -> None:
    ai = ("sonics_chirp-v3", "sonics_udio-30s", "mom_udio")
    real = ("sonics_real", "fma_hardneg", "youtube_hardneg")
    subsets = {s: SubsetInfo(s, "ai" if s in ai else "real").rule for s in (*ai, *real)}
    rows = [r for r in artifactbench_rows() if r["subset"] != "my_new_gen"]
    data, text = paper_for(rows, run_meta("artifactbench", {"net": {}}, subsets=subsets))
    # chirp 3/4 < 0.90, udio 1/2 < 0.90, sonics_real 1/4 > 0.05, fma 1/2 > 0.05: 4 of 6 fail.
    assert data["sections"]["table_vii"]["net"] == {
        "n_fail": 4,
        "n_subsets": 6,
        "pass_rate": round(2 / 6, 6),
    }
    assert "| net   |    4 / 6 |     33.3% |" in text


def test_table_vi_layout_and_every_table_is_padded() -> None:
    meta = run_meta("artifactbench", {"net": {"params": "4.0M"}})
    data, text = paper_for(artifactbench_rows(), meta)
    impute = data["sections"]["table_vi"]["impute"]["net"]
    # 10 AI: 8 called AI (3 + 1 + 3 + 1), 2 FN + the failed one = FN 2; 8 real: FP 1 + 1 failed.
    assert (impute["n"], impute["n_imputed"]) == (18, 2)
    assert impute["recall"] == 0.8 and impute["fpr"] == 0.25
    assert impute["precision"] == 0.8 and impute["f1"] == 0.8
    assert "| net   | 4.0M   | 0.8000 |    0.8000 | 0.8000 | 0.2500 |" in text
    for table in tables_in(text):
        assert len({len(line) for line in table}) == 1, table[0]


# --- SONICS: Table IV and IV-A ------------------------------------------------------------------


def sonics_rows() -> list[dict]:
    """Three AI and three real tracks, two models; clam fails on real track r2.

    clam:      ai 0.9 0.8 0.2 | real 0.6 (FP) failed 0.1
    spectttra: ai 0.9 0.3 0.7 | real 0.2 0.1 0.4
    """
    probs = {
        "clam": ([0.9, 0.8, 0.2], [0.6, None, 0.1]),
        "spectttra-alpha-120s": ([0.9, 0.3, 0.7], [0.2, 0.1, 0.4]),
    }
    rows = []
    for model, (ai, real) in probs.items():
        for i, p in enumerate(ai):
            rows.append(row(model, f"ai{i}", "sonics_chirp-v3", "ai", p, bench="sonics"))
        for i, p in enumerate(real):
            stage = "decode" if p is None else None
            rows.append(row(model, f"r{i}", "sonics_real", "real", p, bench="sonics", stage=stage))
    return rows


def test_table_iv_accountings_differ_with_a_failure() -> None:
    data, text = paper_for(sonics_rows(), run_meta("sonics", {}))
    iv = data["sections"]["table_iv"]
    assert iv["accountings_differ"] is True
    clam_i, clam_e = iv["impute"]["clam"], iv["exclude"]["clam"]
    # impute: TP 2, FN 1, FP 1 + the failed real track, TN 1.
    assert (clam_i["n"], clam_i["n_imputed"]) == (6, 1)
    assert clam_i["precision"] == 0.5 and clam_i["fpr"] == round(2 / 3, 6)
    assert clam_i["f1"] == round(4 / 7, 6)
    # exclude: r2 dropped from every model; TP 2, FN 1, FP 1, TN 1.
    assert (clam_e["n"], clam_e["n_dropped"]) == (5, 1)
    assert clam_e["precision"] == round(2 / 3, 6) and clam_e["fpr"] == 0.5
    assert clam_e["f1"] == round(2 / 3, 6)
    spec_i, spec_e = iv["impute"]["spectttra-alpha-120s"], iv["exclude"]["spectttra-alpha-120s"]
    assert spec_i["f1"] == spec_e["f1"] == 0.8
    assert (spec_i["n"], spec_e["n"], spec_e["n_dropped"]) == (6, 5, 1)
    assert "`impute` accounting** (the paper's Table IV)" in text
    assert "`exclude` accounting** (as the paper's Table IV-A): only the 5 track(s)" in text
    assert "| clam                 | n/a    | 0.5714 |    0.5000 | 0.6667 | 0.6667 |" in text
    assert "| clam                 | n/a    | 0.6667 |    0.6667 | 0.6667 | 0.5000 |" in text


def test_table_iv_reuses_the_metrics_accounting_blocks() -> None:
    preds = pd.DataFrame(sonics_rows())
    meta = run_meta("sonics", {})
    metrics, sanity = build_results(preds, meta)
    data = paper_tables(preds, meta, metrics, sanity)["sections"]["table_iv"]
    for model, block in metrics["models"].items():
        for accounting in ("impute", "exclude"):
            mine = data[accounting][model]
            for name in ("f1", "precision", "recall", "fpr", "auc", "n"):
                assert mine[name] == block["accounting"][accounting][name], (model, name)


def test_table_iv_without_failures_shows_one_accounting() -> None:
    rows = [r for r in sonics_rows() if r["model"] != "clam"]
    data, text = paper_for(rows, run_meta("sonics", {}))
    assert data["sections"]["table_iv"]["accountings_differ"] is False
    assert "`exclude` accounting is identical" in text
    assert "`exclude` accounting**" not in text
    assert "failures" not in data


# --- SONICS breakdowns --------------------------------------------------------------------------


def sonics_row(track: str, label: str, prob: float | None, stage: str | None, **extra: str) -> dict:
    """A track of model `m` on a SONICS-like bench with one AI and one real subset."""
    subset = "sonics_x" if label == "ai" else "sonics_real"
    return row("m", track, subset, label, prob, bench="sonics", stage=stage, **extra)


def test_length_bands_edges() -> None:
    durations = pd.Series(["30", "60", "60.5", "120", "121", "abc", None, "240.0"])
    assert length_band(durations).tolist() == [
        "<= 60 s",
        "<= 60 s",
        "60-120 s",
        "60-120 s",
        "> 120 s",
        UNKNOWN_BAND,
        UNKNOWN_BAND,
        "> 120 s",
    ]


def test_f1_per_length_band_by_hand() -> None:
    """<= 60 s: TP + FP -> 2/3; 60-120 s: failed AI (FN) + TN -> 0; > 120 s: FN + TP -> 2/3."""
    spec = [
        ("a0", "ai", 0.9, "30", None),
        ("r0", "real", 0.7, "60", None),
        ("a1", "ai", None, "60.5", "decode"),
        ("r1", "real", 0.1, "120", None),
        ("a2", "ai", 0.2, "121", None),
        ("a3", "ai", 0.8, "200", None),
    ]
    rows = [sonics_row(t, lab, p, st, duration=d) for t, lab, p, d, st in spec]
    data, text = paper_for(rows, run_meta("sonics", {}))
    bands = {b["band"]: b for b in data["sections"]["sonics_f1_by_length"]["bands"]}
    assert list(bands) == ["<= 60 s", "60-120 s", "> 120 s"]
    assert bands["<= 60 s"]["models"]["m"]["f1"] == round(2 / 3, 6)
    assert bands["60-120 s"]["models"]["m"]["f1"] == 0.0
    assert bands["60-120 s"]["models"]["m"]["n_failed"] == 1
    assert bands["> 120 s"]["models"]["m"]["f1"] == round(2 / 3, 6)
    assert (bands["> 120 s"]["n_ai"], bands["> 120 s"]["n_real"]) == (2, 0)
    assert "| 60-120 s |      2 |   1 |    1 | 0.000 (1 failed) |" in text


def test_seen_unseen_and_fake_type() -> None:
    """Real: seen 1 of 2 called AI, unseen 0 of 1 plus a failure (FP). Fakes: seen 2/2,
    unseen 1/2; by fake type: full fake 2/3, half fake 1/1."""
    spec = [
        ("r0", "real", 0.7, "seen", "real", None),
        ("r1", "real", 0.2, "seen", "real", None),
        ("r2", "real", 0.1, "unseen", "real", None),
        ("r3", "real", None, "unseen", "real", "inference"),
        ("a0", "ai", 0.9, "seen", "full fake", None),
        ("a1", "ai", 0.6, "seen", "half fake", None),
        ("a2", "ai", 0.4, "unseen", "full fake", None),
        ("a3", "ai", 0.8, "unseen", "full fake", None),
    ]
    rows = [
        sonics_row(t, lab, p, st, artist_overlap=seen, fake_type=ft)
        for t, lab, p, seen, ft, st in spec
    ]
    data, text = paper_for(rows, run_meta("sonics", {}))
    overlap = {
        (r["label"], r["value"]): r["models"]["m"]
        for r in data["sections"]["sonics_by_artist_overlap"]["rows"]
    }
    assert overlap[("real", "seen")] == {"k": 1, "n": 2, "n_failed": 0, "rate": 0.5}
    assert overlap[("real", "unseen")] == {"k": 1, "n": 2, "n_failed": 1, "rate": 0.5}
    assert overlap[("ai", "seen")]["rate"] == 1.0
    assert overlap[("ai", "unseen")]["rate"] == 0.5
    by_type = {r["value"]: r for r in data["sections"]["sonics_by_fake_type"]["rows"]}
    assert by_type["full fake"]["models"]["m"]["rate"] == round(2 / 3, 6)
    assert by_type["half fake"]["metric"] == "tpr" and by_type["real"]["metric"] == "fpr"
    assert by_type["real"]["models"]["m"]["rate"] == 0.5
    assert "| unseen         | real  | FPR    |      2 | 0.500 (1/2, 1 failed) |" in text
    assert "### SONICS: TPR per algorithm" in text
    # No duration column: no length table.
    assert "sonics_f1_by_length" not in data["sections"]


# --- Paper versus this run ----------------------------------------------------------------------


def matched_rows() -> list[dict]:
    """Two SONICS AI tracks and two SONICS real tracks. `mine` (paper_name ArtifactNet v9.4) is
    right on all four; `clam` calls everything AI; `other` matches no published row."""
    rows = []
    for model, probs in {
        "mine": (0.9, 0.8, 0.1, 0.2),
        "clam": (0.9, 0.8, 0.7, 0.6),
        "other": (0.9, 0.8, 0.1, 0.2),
        "fakeprint": (0.9, 0.8, 0.1, 0.2),
    }.items():
        rows += [row(model, "a0", "sonics_chirp-v3", "ai", probs[0])]
        rows += [row(model, "a1", "sonics_chirp-v3", "ai", probs[1])]
        rows += [row(model, "r0", "sonics_real", "real", probs[2])]
        rows += [row(model, "r1", "sonics_real", "real", probs[3])]
    return rows


MATCHED_MODELS = {
    "mine": {"params": "4.0M", "paper_name": "ArtifactNet v9.4"},
    "clam": {"params": "194M", "paper_name": None},
    "other": {"params": None},
    "fakeprint": {},
}


def _comparison(data: dict) -> dict[tuple[str, str, str], dict]:
    return {
        (r["model"], r["table"], r["metric"]): r for r in data["sections"]["paper_vs_run"]["rows"]
    }


def test_paper_versus_run_signs_and_matching() -> None:
    data, text = paper_for(matched_rows(), run_meta("artifactbench", MATCHED_MODELS))
    section = data["sections"]["paper_vs_run"]
    assert section["applies"] is True and section["unmatched"] == ["other"]
    rows = _comparison(data)
    # `mine` is perfect: F1 1.0 vs 0.9829 -> +0.0171; FPR 0 vs 0.0149 -> -0.0149.
    f1 = rows[("mine", "VI", "f1")]
    assert f1["paper_name"] == "ArtifactNet v9.4"
    assert (f1["published"], f1["measured"]) == (0.9829, 1.0)
    assert f1["difference"] == pytest.approx(0.0171)
    assert f1["runner"] == 0.952 and f1["runner_difference"] == pytest.approx(0.048)
    assert rows[("mine", "VI", "fpr")]["difference"] == pytest.approx(-0.0149)
    # Sanity with default rules: both subsets pass, FAIL 0 vs the paper's 4 and the runner's 8.
    fails = rows[("mine", "VII", "fail_count")]
    assert (fails["measured"], fails["difference"], fails["runner_difference"]) == (0, -4, -8)
    assert rows[("mine", "VIII", "tpr_group_sonics")]["difference"] == 0.0
    # Groups absent from the run have no measured value.
    assert rows[("mine", "VIII", "tpr_group_mom")]["measured"] is None
    # clam by alias: precision 2/4 vs 0.6674 -> -0.1674, FPR 1 vs 0.6926 -> +0.3074.
    assert rows[("clam", "VI", "precision")]["difference"] == pytest.approx(-0.1674)
    assert rows[("clam", "VI", "fpr")]["difference"] == pytest.approx(0.3074)
    assert rows[("clam", "VI", "fpr")]["runner_difference"] == pytest.approx(0.303)
    # fakeprint has only reference-runner figures.
    fp = rows[("fakeprint", "runner", "f1")]
    assert fp["published"] is None and fp["runner"] == 0.754
    assert fp["runner_difference"] == pytest.approx(0.246)
    assert not any(k[2] == "params_m" for k in rows)
    assert "| mine      | ArtifactNet v9.4 | VI     | F1                 |    0.9829 |" in text
    assert "|              -0.1674 |" in text and "|              +0.3074 |" in text
    assert "No published figure for: other" in text
    # The paper-vs-runner gap is stated from the published file.
    assert "ArtifactNet v9.4: F1 0.952 vs 0.9829 (-0.031), FPR 0.138 vs 0.0149 (+0.123)" in text
    assert "FAIL 8 vs 4 (+4)" in text
    assert "- Table VI: ArtifactBench bench_origin=test, n = 2,263" in text


def test_no_comparison_outside_the_test_split() -> None:
    meta = run_meta("artifactbench", MATCHED_MODELS, split="train")
    data, text = paper_for(matched_rows(), meta)
    section = data["sections"]["paper_vs_run"]
    assert section["applies"] is False and section["rows"] == []
    assert "this run is split `train`, so no figure is compared" in text
    # The layouts themselves still apply.
    assert "table_vi" in data["sections"]


def test_sonics_matches_the_version_its_table_names() -> None:
    rows = [dict(r, bench="sonics") for r in matched_rows() if r["model"] in ("mine", "clam")]
    rows += [dict(r, model="artifactnet") for r in rows if r["model"] == "mine"]
    data, text = paper_for(rows, run_meta("sonics", MATCHED_MODELS))
    compared = _comparison(data)
    # The alias reaches Table IV's v9.5; an explicit paper_name of v9.4 matches nothing there.
    assert compared[("artifactnet", "IV", "f1")]["paper_name"] == "ArtifactNet v9.5"
    assert compared[("artifactnet", "IV-A", "f1")]["published"] == 0.9993
    assert data["sections"]["paper_vs_run"]["unmatched"] == ["mine"]
    # IV-A compares against the exclude block, IV against impute (equal here: no failures).
    assert compared[("clam", "IV", "f1")]["published"] == 0.7652
    assert compared[("clam", "IV-A", "f1")]["published"] == 0.7661
    # The reference runner ran on ArtifactBench only: no runner column on SONICS.
    assert "measured - runner" not in text and "reference runner" not in text


def test_paper_names_prefer_the_declared_name() -> None:
    meta = {"models": {"artifactnet": {"paper_name": "ArtifactNet v9.4"}, "clam": {}}}
    assert paper_names("artifactnet", meta) == ("ArtifactNet v9.4",)
    assert paper_names("clam", meta) == ("CLAM",)
    assert paper_names("spectttra-alpha-120s", {}) == ("SpecTTTra alpha-120s",)
    assert paper_names("unknown", meta) == ()


def test_published_figures_ship_with_the_package() -> None:
    published = load_published()
    tables = {r.table for r in published}
    assert tables == {
        "IV", "IV-A", "IV-H", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "IV-I", "runner"
    }  # fmt: skip
    by_key = {(r.table, r.model, r.metric): r.value for r in published}
    assert by_key[("IV", "CLAM", "f1")] == 0.7652
    assert by_key[("IV-A", "CLAM", "fpr")] == 0.6703
    assert by_key[("VII", "SpecTTTra alpha-120s", "fail_count")] == 23
    assert isinstance(by_key[("runner", "fakeprint", "fail_count")], int)
    assert by_key[("X", "ArtifactNet v9.4", "tpr_opus_128")] == 1.0


# --- Wiring into the report -------------------------------------------------------------------


def test_demo_runs_get_no_paper_sections(tmp_path: Path) -> None:
    preds = make_frame()
    meta = demo_meta()
    metrics, sanity = build_results(preds, meta)
    assert build_paper(preds, meta, metrics, sanity) is None
    assert paper_sections(preds, meta, metrics, sanity) == ""
    assert paper_tables(preds, meta, metrics, sanity) == {}
    paths = write_reports(write_parquet(preds, tmp_path / "p.parquet", meta), tmp_path / "out")
    assert "paper.json" not in paths and not (tmp_path / "out" / "paper.json").exists()
    assert "## Paper tables" not in paths["report.md"].read_text()


def sonics_run(shuffle: bool = False) -> pd.DataFrame:
    rows = []
    for r in sonics_rows():
        extra = {
            "fake_type": "real" if r["label"] == "real" else "full fake",
            "duration": "75.5",
            "artist_overlap": "seen",
        }
        rows.append({**r, **extra})
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True) if shuffle else frame


@pytest.mark.parametrize("bench", ["sonics", "artifactbench"])
def test_rebuild_is_byte_identical_with_paper_json(tmp_path: Path, bench: str) -> None:
    if bench == "sonics":
        frame, shuffled, meta = sonics_run(), sonics_run(shuffle=True), run_meta("sonics", {})
    else:
        frame = pd.DataFrame(artifactbench_rows("net") + artifactbench_rows("clam"))
        shuffled = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
        meta = run_meta("artifactbench", {"net": {"paper_name": "ArtifactNet v9.4"}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_parquet(frame, tmp_path / "a" / "predictions.parquet", meta)
    other = write_parquet(shuffled, tmp_path / "b" / "predictions.parquet", meta)
    one = write_reports(first, tmp_path / "one")
    two = write_reports(first, tmp_path / "two")
    three = write_reports(other, tmp_path / "three")
    for name in ("report.md", "paper.json"):
        assert one[name].read_bytes() == two[name].read_bytes() == three[name].read_bytes(), name
    report = one["report.md"].read_text()
    assert report.count("\n## Paper tables (") == 1 and report.endswith("\n")
    assert not report.endswith("\n\n")
    paper = json.loads(one["paper.json"].read_text())
    assert paper["bench"] == bench and paper["split"] == "test"
    for table in tables_in(report):
        assert len({len(line) for line in table}) == 1, table[0]
