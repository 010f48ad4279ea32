"""Report details: exact EER ties, p-values that keep their digits, the accounting sentence,
one-line errors for unreadable runs, ROC legends of models without scored tracks, and the
titled terminal tables of runs with variants."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import roc_curve

from artifactbench import cli
from artifactbench.analysis.diagnostics import operating_points
from artifactbench.analysis.metrics import binary_metrics
from artifactbench.analysis.stats import delong_test, mcnemar_test
from artifactbench.reports import plots, write_reports
from artifactbench.reports.console import print_run, variant_tables
from artifactbench.reports.data import canonical, json_text
from artifactbench.reports.plots import roc_label
from artifactbench.reports.robustness import variants_markdown
from artifactbench.reports.tables import accountings_differ, report_markdown
from tests.test_reports import make_frame, meta, write_parquet

# --- EER on integer counts -------------------------------------------------------------------


def _eer_by_counts(y: np.ndarray, prob: np.ndarray) -> tuple[Fraction, float]:
    """EER and its threshold from scikit-learn's ROC, deciding FPR >= FNR on exact fractions."""
    fpr, tpr, thresholds = roc_curve(y, prob, drop_intermediate=False)
    pos, neg = int(y.sum()), int((~y).sum())
    fp = [Fraction(round(f * neg), neg) for f in fpr]
    fn = [1 - Fraction(round(t * pos), pos) for t in tpr]
    i = next(k for k in range(len(fp)) if fp[k] >= fn[k])
    d0, d1 = fn[i - 1] - fp[i - 1], fn[i] - fp[i]
    return fp[i - 1] + d0 / (d0 - d1) * (fp[i] - fp[i - 1]), float(thresholds[i])


def test_eer_threshold_on_an_exact_tie_of_fpr_and_fnr() -> None:
    # At 0.6 four of six AI tracks and two of six real tracks score at or above: FPR = FNR =
    # 1/3 exactly, although 1 - 4/6 > 2/6 in floating point.
    ai = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    real = [0.85, 0.75, 0.4, 0.35, 0.1, 0.05]
    y = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    m = binary_metrics(y, np.r_[ai, real], resamples=0)
    assert m["eer_threshold"] == 0.6
    assert m["eer"] == 1 / 3


@pytest.mark.parametrize("decimals", [1, 2, 6])
def test_eer_matches_an_exact_computation(decimals: int) -> None:
    mismatches = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n_ai, n_real = rng.integers(1, 13, size=2)
        y = np.r_[np.ones(n_ai, bool), np.zeros(n_real, bool)]
        prob = np.round(rng.random(y.size), decimals)
        m = binary_metrics(y, prob, resamples=0)
        eer, threshold = _eer_by_counts(y, prob)
        if (m["eer"], m["eer_threshold"]) != (float(eer), threshold):
            mismatches.append((seed, m["eer"], m["eer_threshold"], float(eer), threshold))
    assert mismatches == []


# --- p-values in JSON ------------------------------------------------------------------------


def test_canonical_keeps_significant_digits_of_p_values_only() -> None:
    data = {"p": 1.234567891e-48, "p_chi2": 3.14159e-33, "auc": 1.2e-48, "nested": [{"p": 0.5}]}
    out = json.loads(json_text(data))
    assert out["p"] == 1.23457e-48 and out["p_chi2"] == 3.14159e-33
    assert out["auc"] == 0.0  # other floats keep 6 decimals
    assert out["nested"][0]["p"] == 0.5
    assert canonical({"p": None, "q": float("nan")}) == {"p": None, "q": None}
    assert canonical({"p": 1e-300}, decimals=None)["p"] == 1e-300


@pytest.fixture
def separated_run(tmp_path: Path) -> Path:
    """Two models on 300 + 300 tracks: one separates the classes, the other is a coin."""
    rng = np.random.default_rng(4)
    rows = []
    for i in range(600):
        label = "ai" if i < 300 else "real"
        good = (0.7 if label == "ai" else 0.0) + 0.3 * rng.random()
        for model, prob in (("good", good), ("coin", rng.random())):
            rows.append({
                "model": model, "track_id": f"t{i:03d}", "bench": "demo", "subset": label,
                "label": label, "prob": prob, "status": "scored", "stage": None,
                "error": None, "seconds": 0.1,
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    path = write_parquet(frame, tmp_path / "predictions.parquet", meta(subsets={}))
    return path


def test_statistics_json_never_writes_a_p_value_as_zero(
    separated_run: Path, tmp_path: Path
) -> None:
    frame = pd.read_parquet(separated_run)
    wide = frame.pivot(index="track_id", columns="model", values="prob")
    y = (frame.drop_duplicates("track_id").set_index("track_id")["label"] == "ai")[wide.index]
    delong = delong_test(y.to_numpy(), wide["coin"].to_numpy(), wide["good"].to_numpy())
    calls = wide >= 0.5
    mcnemar = mcnemar_test(y.to_numpy(), calls["coin"].to_numpy(), calls["good"].to_numpy())
    assert 0 < delong["p"] < 5e-7 and 0 < mcnemar["p"] < 5e-7

    first = write_reports(separated_run, tmp_path / "one")
    (pair,) = json.loads(first["statistics.json"].read_text())["pairs"]
    assert pair["delong"]["p"] == pytest.approx(delong["p"], rel=1e-5)
    assert pair["mcnemar"]["p"] == pytest.approx(mcnemar["p"], rel=1e-5)
    assert pair["delong"]["p"] > 0 and pair["mcnemar"]["p"] > 0
    second = write_reports(separated_run, tmp_path / "two")
    assert first["statistics.json"].read_bytes() == second["statistics.json"].read_bytes()
    assert "<0.001" in first["report.md"].read_text()


# --- the accounting sentence -----------------------------------------------------------------


def test_missing_rows_make_the_accountings_differ(tmp_path: Path) -> None:
    frame = make_frame(failures=False)
    lacking = (frame["model"] == "beta") & frame["track_id"].isin(["gen_a-00", "real_x-03"])
    path = write_parquet(frame[~lacking], tmp_path / "p.parquet", meta())
    paths = write_reports(path, tmp_path / "out")
    metrics = json.loads(paths["metrics.json"].read_text())
    assert all(m["n_failed"] == 0 for m in metrics["models"].values())
    report = paths["report.md"].read_text()
    assert "No track failed" not in report
    # alpha loses the two tracks beta lacks under `exclude`; beta's blocks equal its own.
    assert "The accountings differ from the scored-track metrics for alpha; for beta" in report
    assert "### Both accountings of failures" in report and "| alpha | exclude " in report
    assert accountings_differ(metrics) == ["alpha"]


def test_equal_accountings_are_said_to_be_equal(tmp_path: Path) -> None:
    path = write_parquet(make_frame(failures=False), tmp_path / "p.parquet", meta())
    paths = write_reports(path, tmp_path / "out")
    metrics = json.loads(paths["metrics.json"].read_text())
    sanity = json.loads(paths["sanity.json"].read_text())
    assert accountings_differ(metrics) == []
    assert "both accountings equal the scored-track metrics" in paths["report.md"].read_text()
    # The sentence follows the blocks: an exclude block that differs is reported.
    changed = json.loads(json.dumps(metrics))
    changed["models"]["beta"]["accounting"]["exclude"]["n"] -= 1
    text = report_markdown(changed, sanity, [])
    assert "equal the scored-track metrics." not in text
    assert "differ from the scored-track metrics for beta; for alpha they equal them." in text


# --- one-line errors from `report` and `sanity` ----------------------------------------------


def _broken_frames() -> dict[str, pd.DataFrame]:
    nan_prob = make_frame()
    nan_prob.loc[nan_prob.index[nan_prob["status"] == "scored"][0], "prob"] = float("nan")
    unknown = make_frame()
    unknown.loc[unknown.index[0], "status"] = "skipped"
    no_model = make_frame()
    no_model["model"] = None
    return {"nan_prob": nan_prob, "unknown_status": unknown, "no_model": no_model}


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["artifactbench", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0)


@pytest.mark.parametrize("command", ["report", "sanity"])
@pytest.mark.parametrize("case", ["nan_prob", "unknown_status", "no_model"])
def test_a_malformed_table_is_one_line_and_exit_2(
    command: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_parquet(_broken_frames()[case], run_dir / "predictions.parquet", meta())
    assert _main(monkeypatch, command, str(run_dir)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "predictions.parquet" in lines[0]


@pytest.mark.parametrize("command", ["report", "sanity"])
@pytest.mark.parametrize("with_variant", [True, False])
def test_a_run_without_rows_has_nothing_to_report(
    command: str, with_variant: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame = make_frame().iloc[0:0]
    if with_variant:
        frame = frame.assign(variant=pd.Series(dtype=object))
    write_parquet(frame, run_dir / "predictions.parquet", meta())
    assert _main(monkeypatch, command, str(run_dir)) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run_dir} has no scored model: nothing to report\n"


# --- a model without scored tracks -----------------------------------------------------------


def _failed(frame: pd.DataFrame, rows: pd.Series) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, ["prob", "status", "stage"]] = [None, "failed", "decode"]
    return frame


def test_roc_legend_says_no_scored_tracks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_frame(failures=False)
    frame = _failed(frame, frame["model"] == "beta")
    legends: list[list[str]] = []

    def keep(fig, path: Path) -> Path:
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_roc(frame, {"alpha": 0.8, "beta": None}, tmp_path / "roc.png")
    (labels,) = legends
    assert "beta (AUC n/a: no scored tracks)" in labels
    assert "alpha (AUC 0.800)" in labels
    assert not any("one class" in text for text in labels)


def test_roc_label_keeps_one_class_for_scored_tracks_of_one_label() -> None:
    assert roc_label("m", np.array([], dtype=bool), None) == "m (AUC n/a: no scored tracks)"
    assert roc_label("m", np.ones(3, bool), None) == "m (AUC n/a: one class)"
    assert roc_label("m", np.zeros(3, bool), None) == "m (AUC n/a: one class)"
    assert roc_label("m", np.array([True, False]), 0.25) == "m (AUC 0.250)"


def test_operating_points_of_a_model_without_scored_tracks(tmp_path: Path) -> None:
    y = np.r_[np.ones(3, bool), np.zeros(3, bool)]
    nothing = operating_points(y, np.full(6, np.nan), 0.5)
    assert nothing["best_f1"] == {"impossible": True, "reason": "no scored tracks"}
    assert nothing["at_fpr05"] == {"impossible": True, "reason": "no scored tracks"}
    only_real = operating_points(y, np.r_[np.full(3, np.nan), 0.1, 0.2, 0.3], 0.5)
    assert only_real["best_f1"]["reason"].startswith("no AI tracks")

    frame = make_frame(failures=False)
    frame = _failed(frame, frame["model"] == "beta")
    path = write_parquet(frame, tmp_path / "p.parquet", meta())
    report = write_reports(path, tmp_path / "out")["report.md"].read_text()
    assert "- beta, F1-max: impossible (no scored tracks)." in report
    assert "no AI tracks" not in report


# --- variants: the table's failure column and the terminal tables ----------------------------


def _variant_run(tmp_path: Path, variants: list[str]) -> Path:
    frame = make_frame()
    parts = []
    for k, variant in enumerate(variants):
        part = frame.assign(variant=variant)
        part["prob"] = part["prob"] * (1 - 0.1 * k)
        parts.append(part)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_parquet(
        pd.concat(parts, ignore_index=True), run_dir / "predictions.parquet",
        meta(variants=variants),
    )  # fmt: skip
    write_reports(run_dir / "predictions.parquet", run_dir)
    return run_dir


def test_variants_table_counts_failed_tracks_under_its_own_name(tmp_path: Path) -> None:
    run_dir = _variant_run(tmp_path, ["original", "gain:-6"])
    report = (run_dir / "report.md").read_text()
    section = report[report.index("## Variants") :]
    assert "failed / n" in section and "FAIL / N" not in section
    assert "| beta  | gain:-6  |" in section and "3 / 38 |" in section
    robustness = json.loads((run_dir / "robustness.json").read_text())
    text = variants_markdown(robustness["variants"], "original")
    assert "failed / n" in text and "FAIL / N" not in text


def _printed(run_dir: Path) -> str:
    console = Console(record=True, width=240, color_system=None, soft_wrap=True)
    print_run(console, run_dir)
    return console.export_text()


def test_terminal_tables_of_a_variant_run_are_titled_rich_tables(tmp_path: Path) -> None:
    # Declared order puts `original` first although it sorts last.
    run_dir = _variant_run(tmp_path, ["original", "gain:-6", "gain:-12"])
    text = _printed(run_dir)
    assert "Metrics on scored tracks, variant original (threshold 0.5)" in text
    assert "Sanity protocol, variant original" in text
    assert "Variants (differences against original on the same tracks)" in text
    assert "| alpha" not in text and "## " not in text
    names = ("original", "gain:-6", "gain:-12")
    rows = [line for line in text.splitlines() if line.startswith("│ beta ") and "/ 38" in line]
    assert [next(v for v in names if f" {v} " in row) for row in rows] == list(names)
    header = next(line for line in text.splitlines() if "ΔAUC" in line)
    assert "failed / n" in header and "FAIL / N" not in header


def test_terminal_tables_of_a_codec_run(tmp_path: Path) -> None:
    run_dir = _variant_run(tmp_path, ["codec:wav", "codec:mp3-128"])
    robustness = json.loads((run_dir / "robustness.json").read_text())
    titles = [str(table.title) for table in variant_tables(robustness)]
    assert titles[0] == "Table X layout: codecs (ΔTPR in percentage points against codec:wav)"
    assert titles[1].startswith("P(AI) spread across codecs (max - min per track")
    text = _printed(run_dir)
    assert "Metrics on scored tracks, variant codec:wav (threshold 0.5)" in text
    assert all(title in text for title in titles)
    assert "| alpha" not in text and "## " not in text


def test_report_command_prints_rich_tables_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _variant_run(tmp_path, ["original", "gain:-6"])
    assert _main(monkeypatch, "report", str(run_dir)) == 0
    out = capsys.readouterr().out
    assert "Metrics on scored tracks, variant original (threshold 0.5)" in out
    assert "Variants (differences against original on the same tracks)" in out
    assert "## Variants" not in out and "| alpha" not in out
