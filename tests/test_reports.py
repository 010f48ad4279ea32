"""Reports rebuilt from predictions.parquet alone: byte-stable text, valid PNGs, console view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from artifactbench.analysis.metrics import compute_metrics
from artifactbench.benches.base import SubsetInfo
from artifactbench.predictions import read_predictions
from artifactbench.reports import build_results, print_summary, write_reports
from artifactbench.reports.data import canonical

TEXT_FILES = ("metrics.json", "sanity.json", "sanity.md", "report.md", "statistics.json")
PNG_FILES = ("roc.png", "f1_threshold.png", "reliability.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUBSETS = {
    "gen_a": SubsetInfo("gen_a", "ai"),
    "gen_hard": SubsetInfo("gen_hard", "ai", hard=True),
    "gen_dead": SubsetInfo("gen_dead", "ai"),
    "real_x": SubsetInfo("real_x", "real"),
    "gen_absent": SubsetInfo("gen_absent", "ai"),
}
SIZES = {"gen_a": 10, "gen_hard": 5, "gen_dead": 3, "real_x": 20}


def make_frame(failures: bool = True) -> pd.DataFrame:
    """Two models on four subsets; `beta` fails every gen_dead track, `alpha` one real track."""
    rng = np.random.default_rng(0)
    rows = []
    for model in ("beta", "alpha"):
        for subset, n in SIZES.items():
            label = SUBSETS[subset].label
            for i in range(n):
                prob = float(rng.random() * 0.5 + (0.45 if label == "ai" else 0.0))
                stage = None
                if failures and model == "beta" and subset == "gen_dead":
                    stage = "decode"
                if failures and model == "alpha" and subset == "real_x" and i == 0:
                    stage = "inference"
                rows.append(
                    {
                        "model": model,
                        "track_id": f"{subset}-{i:02d}",
                        "bench": "demo",
                        "subset": subset,
                        "label": label,
                        "generator": subset,
                        "bench_origin": "test",
                        "prob": None if stage else prob,
                        "status": "failed" if stage else "scored",
                        "stage": stage,
                        "error": f"{stage} error | line one\nline two" if stage else None,
                        "seconds": 0.25,
                    }
                )
    return pd.DataFrame(rows)


def meta(**overrides: object) -> dict:
    out = {
        "threshold": 0.5,
        "seed": 0,
        "bench": "demo",
        "split": "test",
        "subsets": {name: info.rule for name, info in SUBSETS.items()},
        "models": {"alpha": {"params": "4.0M"}, "beta": {"params": None}},
    }
    out.update(overrides)
    return out


def write_parquet(frame: pd.DataFrame, path: Path, metadata: dict | None) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        extra = {b"artifactbench": json.dumps(metadata).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    pq.write_table(table, path)
    return path


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    return write_parquet(make_frame(), tmp_path / "predictions.parquet", meta())


def test_rebuild_is_byte_identical(predictions: Path, tmp_path: Path) -> None:
    first = write_reports(predictions, tmp_path / "one")
    second = write_reports(predictions, tmp_path / "two")
    assert set(first) == set(TEXT_FILES) | set(PNG_FILES)
    for name in TEXT_FILES:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_row_order_does_not_change_the_reports(predictions: Path, tmp_path: Path) -> None:
    shuffled = make_frame().sample(frac=1.0, random_state=1).reset_index(drop=True)
    other = tmp_path / "shuffled"
    other.mkdir()
    a = write_reports(predictions, tmp_path / "a")
    b = write_reports(
        write_parquet(shuffled, other / "predictions.parquet", meta()), tmp_path / "b"
    )
    for name in TEXT_FILES:
        assert a[name].read_bytes() == b[name].read_bytes(), name


def test_plots_are_valid_png(predictions: Path, tmp_path: Path) -> None:
    import matplotlib.image

    paths = write_reports(predictions, tmp_path / "out")
    for name in PNG_FILES:
        data = paths[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        image = matplotlib.image.imread(paths[name])
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_metrics_json_content(predictions: Path, tmp_path: Path) -> None:
    paths = write_reports(predictions, tmp_path / "out")
    text = paths["metrics.json"].read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert (metrics["bench"], metrics["split"], metrics["threshold"]) == ("demo", "test", 0.5)
    alpha, beta = metrics["models"]["alpha"], metrics["models"]["beta"]
    assert alpha["params"] == "4.0M" and beta["params"] is None
    assert (beta["n"], beta["n_scored"], beta["n_failed"]) == (38, 35, 3)
    assert beta["failures"]["decode"] == 3 and alpha["failures"]["inference"] == 1
    # gen_dead (3) and alpha's failed real track leave both models under exclude.
    assert metrics["n_common_scored"] == 34
    assert alpha["accounting"]["exclude"]["n"] == beta["accounting"]["exclude"]["n"] == 34
    assert beta["accounting"]["impute"]["fn"] == beta["scored"]["fn"] + 3
    # The file carries the computed values, rounded to 6 decimals.
    raw = compute_metrics(make_frame(), 0.5, 0)["models"]["beta"]["scored"]
    assert beta["scored"]["f1"] == round(raw["f1"], 6)
    assert beta["scored"]["ci"]["auc"]["high"] == round(raw["ci"]["auc"]["high"], 6)
    for number in _floats(metrics):
        assert number == round(number, 6)


def _floats(obj: object) -> list[float]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _floats(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _floats(v)]
    return [obj] if isinstance(obj, float) else []


def test_sanity_outputs(predictions: Path, tmp_path: Path) -> None:
    paths = write_reports(predictions, tmp_path / "out")
    sanity = json.loads(paths["sanity.json"].read_text())
    dead = sanity["models"]["beta"]["subsets"]["gen_dead"]
    assert dead["n_failed"] == 3 and dead["rate"] == 0.0 and dead["pass"] is False
    assert sanity["absent_subsets"] == ["gen_absent"]
    assert sanity["subsets"]["gen_hard"]["rule"] == "TPR >= 0.60"
    md = paths["sanity.md"].read_text()
    assert md.startswith("# Sanity protocol: bench `demo`, split `test`, threshold 0.5\n")
    assert "| gen_dead " in md and "0.000 **FAIL** (3 failed)" in md
    beta = sanity["models"]["beta"]["summary"]
    assert f"beta **{beta}**" in md
    assert "failed real track a false positive" in md


def test_report_sections(predictions: Path, tmp_path: Path) -> None:
    report = write_reports(predictions, tmp_path / "out")["report.md"].read_text()
    assert report.startswith("# ArtifactBench report: bench `demo`, split `test`, threshold 0.5")
    for heading in (
        "## Metrics on scored tracks",
        "## Intervals (95% bootstrap, 2000 resamples, stratified by label)",
        "## Failures",
        "### Both accountings of failures",
        "## Sanity protocol",
        "## Paired comparisons",
        "## Operating points",
        "## Calibration",
    ):
        assert f"\n{heading}\n" in report, heading
    assert "| alpha | exclude " in report and "| beta  | impute " in report
    # Error messages are flattened and their pipes escaped so the table survives.
    assert "decode error \\| line one line two" in report
    # Every markdown table is padded: all its lines have the same length.
    tables = _split_tables(report)
    assert len(tables) == 9
    for table in tables:
        assert len({len(line) for line in table}) == 1, table[0]


def _split_tables(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_report_without_failures_has_no_accounting_table(tmp_path: Path) -> None:
    path = write_parquet(make_frame(failures=False), tmp_path / "p.parquet", meta())
    report = write_reports(path, tmp_path / "out")["report.md"].read_text()
    assert "### Both accountings" not in report
    assert "No track failed" in report


def test_seed_comes_from_metadata_unless_given(predictions: Path, tmp_path: Path) -> None:
    default = json.loads(write_reports(predictions, tmp_path / "a")["metrics.json"].read_text())
    again = json.loads(
        write_reports(predictions, tmp_path / "b", seed=0)["metrics.json"].read_text()
    )
    other = json.loads(
        write_reports(predictions, tmp_path / "c", seed=5)["metrics.json"].read_text()
    )
    assert default == again
    assert other["seed"] == 5
    assert other["models"]["beta"]["scored"]["ci"] != default["models"]["beta"]["scored"]["ci"]


def test_threshold_comes_from_metadata(tmp_path: Path) -> None:
    path = write_parquet(make_frame(), tmp_path / "p.parquet", meta(threshold=0.7))
    metrics = json.loads(write_reports(path, tmp_path / "out")["metrics.json"].read_text())
    assert metrics["threshold"] == 0.7
    expected = compute_metrics(make_frame(), 0.7, 0)["models"]["alpha"]["scored"]
    assert metrics["models"]["alpha"]["scored"] == canonical(expected)


def test_file_without_metadata_uses_defaults(tmp_path: Path) -> None:
    path = write_parquet(make_frame(), tmp_path / "p.parquet", None)
    frame, found = read_predictions(path)
    assert found == {}
    paths = write_reports(path, tmp_path / "out")
    sanity = json.loads(paths["sanity.json"].read_text())
    assert sanity["threshold"] == 0.5
    assert all(info["default_rule"] for info in sanity["subsets"].values())
    # Without metadata the hard subset falls back to the ordinary 0.90 rule.
    assert sanity["subsets"]["gen_hard"]["rule"] == "TPR >= 0.90"


def test_read_predictions_round_trip(predictions: Path) -> None:
    frame, found = read_predictions(predictions)
    assert found == meta()
    assert len(frame) == 2 * sum(SIZES.values())
    assert frame["prob"].isna().sum() == 4


def test_categorical_columns_are_read_as_strings(tmp_path: Path) -> None:
    frame = make_frame()
    frame["model"] = pd.Categorical(frame["model"], categories=["alpha", "beta", "unused"])
    path = write_parquet(frame, tmp_path / "p.parquet", meta())
    read, _ = read_predictions(path)
    assert read["model"].dtype == object
    metrics, _ = build_results(read, meta())
    assert sorted(metrics["models"]) == ["alpha", "beta"]


def test_broken_file_names_the_path(tmp_path: Path) -> None:
    frame = make_frame().assign(label="fake")
    path = write_parquet(frame, tmp_path / "bad.parquet", meta())
    with pytest.raises(ValueError, match="bad.parquet"):
        read_predictions(path)


def test_print_summary(predictions: Path, tmp_path: Path) -> None:
    paths = write_reports(predictions, tmp_path / "out")
    metrics = json.loads(paths["metrics.json"].read_text())
    sanity = json.loads(paths["sanity.json"].read_text())
    console = Console(record=True, width=200, color_system=None)
    print_summary(console, metrics, sanity)
    text = console.export_text()
    assert "alpha" in text and "beta" in text
    assert "FAIL / N" in text
    assert sanity["models"]["beta"]["summary"] in text
    assert "gen_dead" in text and "FAIL" in text and "PASS" in text
