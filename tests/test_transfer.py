"""Threshold and calibration chosen on one run and applied to another: the thresholds each
metric chooses, the metrics at a transferred threshold, the logistic calibration, the command
line options and the transfer a run records for its reports."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from artifactbench.analysis.detection_cost import cllr, llr_from_prob
from artifactbench.analysis.metrics import FPR_TARGET
from artifactbench.analysis.transfer import (
    TransferError,
    choose_thresholds,
    fit_calibrations,
    fit_logistic,
    transfer_results,
)
from artifactbench.analysis.transfer_rules import THRESHOLD_RULES
from artifactbench.audio.encode import encode_audio
from artifactbench.benches.base import SubsetInfo
from artifactbench.cli.app import main
from artifactbench.predictions import read_predictions, write_predictions
from artifactbench.reports import write_reports
from artifactbench.reports.transfer import SECTION, parse_threshold_source, resolve_transfer
from tests.conftest import RATE, music, upsampled

# Source of model alpha: 5 AI and 20 real tracks, chosen so that the three metrics pick three
# different thresholds (worked out in test_each_metric_chooses_its_hand_computed_threshold).
SOURCE_AI = [0.95, 0.85, 0.65, 0.45, 0.12]
SOURCE_REAL = [0.75, 0.55, 0.35, *(k / 100 for k in range(1, 18))]
# Target of alpha: 6 AI and 4 real tracks scored, plus one failed track of each label.
TARGET_AI = [0.9, 0.7, 0.6, 0.5, 0.3, 0.2]
TARGET_REAL = [0.66, 0.4, 0.1, 0.05]


def _meta(models: list[str], **extra: object) -> dict[str, object]:
    return {
        "bench": "b", "bench_fingerprint": "f" * 64, "split": "test", "threshold": 0.5,
        "seed": 0, "decode_protocol": "p", "variants": ["original"],
        "variant_protocols": {"original": "p"},
        "subsets": {"gen": SubsetInfo("gen", "ai").rule, "human": SubsetInfo("human", "real").rule},
        "models": {m: {"params": "1", "paper_name": m, "weights_sha256": "w",
                       "protocol_hash": "h"} for m in models},
        "written_utc": "2026-01-01T00:00:00+00:00", **extra,
    }  # fmt: skip


def _rows(
    model: str, ai: list[float | None], real: list[float | None], variant: str = "original"
) -> list[dict[str, object]]:
    """One row per prob; None is a track that failed to decode."""
    rows = []
    for label, probs in (("ai", ai), ("real", real)):
        for i, prob in enumerate(probs):
            rows.append(
                {
                    "model": model, "track_id": f"{label}{i:04d}", "bench": "b",
                    "subset": "gen" if label == "ai" else "human", "label": label,
                    "generator": "g", "bench_origin": "test", "prob": prob,
                    "status": "scored" if prob is not None else "failed",
                    "stage": None if prob is not None else "decode", "error": None,
                    "seconds": 0.1, "note": None, "variant": variant,
                }
            )  # fmt: skip
    return rows


def _write_run(run_dir: Path, rows: list[dict[str, object]], **extra: object) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    models = sorted({str(r["model"]) for r in rows})
    write_predictions(rows, _meta(models, **extra), run_dir / "predictions.parquet")
    return run_dir


def _source(tmp_path: Path) -> Path:
    """alpha as above; beta scored only AI tracks there (its real tracks failed)."""
    rows = _rows("alpha", SOURCE_AI, SOURCE_REAL)
    rows += _rows("beta", SOURCE_AI, [None] * len(SOURCE_REAL))
    # A transformed variant that must not take part in choosing anything.
    rows += _rows("alpha", [0.0] * 5, [1.0] * 20, variant="resample:16000")
    return _write_run(tmp_path / "source", rows)


def _target(tmp_path: Path, models: tuple[str, ...] = ("alpha",)) -> Path:
    rows = []
    for model in models:
        rows += _rows(model, [*TARGET_AI, None], [*TARGET_REAL, None])
    return _write_run(tmp_path / "target", rows)


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> int:
    """Run the command line in this process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["artifactbench", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# --- choosing on the source ----------------------------------------------------------------


def test_each_metric_chooses_its_hand_computed_threshold(tmp_path: Path) -> None:
    # Source, by descending score, with (TP, FP) of "AI when prob >= t" (5 AI, 20 real):
    # .95 (1,0) .85 (2,0) .75 (2,1) .65 (3,1) .55 (3,2) .45 (4,2) .35 (4,3) .17 (4,4) ...
    # .13 (4,8) .12 (5,8).
    # - eer: the first point with FPR >= FNR is .17 (FPR 4/20 = FNR 1/5).
    # - fpr05: FPR <= 5% allows one false positive of 20; the lowest such threshold is .65.
    # - mindcf (ASVspoof 5 costs): DCF / 0.5 = 1.9 * FPR + FNR, lowest at .45 (0.19 + 0.2).
    preds, meta = read_predictions(_source(tmp_path) / "predictions.parquet")
    expected = {"eer": 0.17, "fpr05": 0.65, "mindcf": 0.45}
    assert set(expected) == set(THRESHOLD_RULES)
    assert f"{FPR_TARGET:.0%}" in THRESHOLD_RULES["fpr05"].meaning
    for metric, threshold in expected.items():
        record = choose_thresholds(preds, meta, metric, run_dir="src")
        alpha = record["models"]["alpha"]
        assert alpha["threshold"] == pytest.approx(threshold), metric
        assert (alpha["n_ai"], alpha["n_real"]) == (5, 20)
        assert record["source"]["variant"] == "original"
        assert "only AI tracks" in record["unfit"]["beta"]
    assert "cost" in choose_thresholds(preds, meta, "mindcf")
    with pytest.raises(TransferError, match="choose from: eer, fpr05, mindcf"):
        choose_thresholds(preds, meta, "auc")


def test_metrics_at_a_transferred_threshold_are_the_hand_computed_ones(tmp_path: Path) -> None:
    record = resolve_transfer((_source(tmp_path), "fpr05"), None)
    target = _target(tmp_path)
    write_reports(target / "predictions.parquet", target, transfer=record)
    block = _metrics(target)["transfer"]["threshold"]
    assert block["metric"] == "fpr05"
    assert block["source"]["run_dir"] == str(tmp_path / "source")
    assert set(block["models"]) == {"alpha"}
    alpha = block["models"]["alpha"]
    assert alpha["threshold"] == pytest.approx(0.65)
    # At .65: AI .9, .7 called AI (TP 2, FN 4); real .66 called AI (FP 1, TN 3).
    scored = alpha["at_source_threshold"]["scored"]
    assert [scored[k] for k in ("tp", "fn", "fp", "tn")] == [2, 4, 1, 3]
    assert scored["recall"] == pytest.approx(2 / 6, abs=1e-6)
    assert scored["fpr"] == pytest.approx(1 / 4, abs=1e-6)
    assert scored["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert scored["f1"] == pytest.approx(4 / 9, abs=1e-6)
    assert scored["accuracy"] == pytest.approx(5 / 10, abs=1e-6)
    # Imputed: the failed AI track is a miss and the failed real track a false positive.
    impute = alpha["at_source_threshold"]["impute"]
    assert [impute[k] for k in ("tp", "fn", "fp", "tn")] == [2, 5, 2, 3]
    assert impute["f1"] == pytest.approx(4 / 11, abs=1e-6)
    # At the run's own 0.5: AI .9 .7 .6 .5 (TP 4, FN 2), real .66 (FP 1, TN 3).
    own = alpha["at_run_threshold"]["scored"]
    assert [own[k] for k in ("tp", "fn", "fp", "tn")] == [4, 2, 1, 3]
    assert own["f1"] == pytest.approx(8 / 11, abs=1e-6)
    report = (target / "report.md").read_text()
    assert f"## {SECTION}" in report
    assert "| alpha |" in report and "0.650" in report


# --- calibration ---------------------------------------------------------------------------


def _logistic_run(run_dir: Path, n: int, seed: int, detector: tuple[float, float]) -> Path:
    """Tracks whose true P(AI) is sigmoid(x), x ~ N(0, 1.5), scored by a detector reporting
    sigmoid(c * x + d) for `detector` = (c, d)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.5, n)
    is_ai = rng.random(n) < expit(x)
    c, d = detector
    prob = expit(c * x + d)
    return _write_run(
        run_dir,
        _rows("alpha", list(prob[is_ai]), []) + _rows("alpha", [], list(prob[~is_ai])),
    )


def test_calibration_recovers_the_logistic_model_the_labels_were_drawn_from(
    tmp_path: Path,
) -> None:
    # The detector reports sigmoid(x / 2 + 1/4), so logit(P) = x / 2 + 1/4 and the true
    # P(AI) = sigmoid(2 * logit(P) - 0.5): the fit should give a = 2, b = -0.5.
    run_dir = _logistic_run(tmp_path / "src", 6000, seed=1, detector=(0.5, 0.25))
    preds, meta = read_predictions(run_dir / "predictions.parquet")
    fit = fit_calibrations(preds, meta)["models"]["alpha"]
    assert fit["a"] == pytest.approx(2.0, abs=0.15)
    assert fit["b"] == pytest.approx(-0.5, abs=0.1)
    # And it is the maximum-likelihood point: both score equations vanish there.
    scored = preds[preds["status"] == "scored"]
    x = llr_from_prob(scored["prob"].to_numpy(dtype=float))
    y = (scored["label"] == "ai").to_numpy(dtype=float)
    residual = y - expit(fit["a"] * x + fit["b"])
    assert abs(residual.sum()) < 1e-6 and abs((residual * x).sum()) < 1e-6


def test_calibration_fitted_on_one_run_lowers_the_cllr_of_a_miscalibrated_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Overconfident and biased towards AI: sigmoid(3x + 1.5) against the truth sigmoid(x).
    source = _logistic_run(tmp_path / "source", 3000, seed=2, detector=(3.0, 1.5))
    target = _logistic_run(tmp_path / "target", 3000, seed=3, detector=(3.0, 1.5))
    assert _cli(monkeypatch, "report", target, "--calibrate-on", source) == 0
    alpha = _metrics(target)["transfer"]["calibration"]["models"]["alpha"]
    assert alpha["a"] == pytest.approx(1 / 3, abs=0.05)
    assert alpha["b"] == pytest.approx(-0.5, abs=0.1)
    before, after = alpha["probabilistic_before"], alpha["probabilistic_after"]
    preds, _ = read_predictions(target / "predictions.parquet")
    y = (preds["label"] == "ai").to_numpy()
    assert before["cllr"] == pytest.approx(cllr(y, preds["prob"].to_numpy()), abs=1e-6)
    assert after["cllr"] < before["cllr"] - 0.1
    assert after["act_dcf"] <= before["act_dcf"]
    assert after["brier"] < before["brier"]


def test_fit_refuses_classes_the_scores_separate() -> None:
    with pytest.raises(TransferError, match="overlapping"):
        fit_logistic(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([False, False, True, True]))
    # One tie across the classes is still a (quasi-)separation: no maximum exists.
    with pytest.raises(TransferError):
        fit_logistic(np.array([-2.0, 0.0, 0.0, 2.0]), np.array([False, False, True, True]))


def test_a_model_the_source_cannot_serve_is_a_clear_error(tmp_path: Path) -> None:
    source = _source(tmp_path)
    record = resolve_transfer((source, "eer"), source)
    target = _target(tmp_path, ("alpha", "beta", "gamma"))
    preds, meta = read_predictions(target / "predictions.parquet")
    with pytest.raises(TransferError) as caught:
        transfer_results(preds, {**meta, "transfer": record}, 0.5)
    message = str(caught.value)
    assert "--threshold-from" in message
    assert "beta: it scored only AI tracks of the source" in message
    assert "gamma: not in that run" in message
    assert message.endswith("usable models there: alpha")
    # A source whose scores separate the classes has no calibration for that model.
    separated = _write_run(tmp_path / "separated", _rows("alpha", [0.9, 0.8], [0.2, 0.1]))
    record = resolve_transfer(None, separated)
    with pytest.raises(TransferError, match="--calibrate-on .*separate AI from real"):
        transfer_results(preds, {**meta, "transfer": record}, 0.5)


# --- the command line ----------------------------------------------------------------------


def test_report_threshold_from_another_run_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    source, target = _source(tmp_path), _target(tmp_path)
    assert _cli(monkeypatch, "report", target) == 0
    plain = capsys.readouterr().out
    assert "transfer" not in _metrics(target)
    assert SECTION not in (target / "report.md").read_text()
    assert _cli(monkeypatch, "report", target, "--threshold-from", f"{source}:fpr05") == 0
    shown = capsys.readouterr().out
    assert "Threshold from" in shown and "Threshold from" not in plain
    alpha = _metrics(target)["transfer"]["threshold"]["models"]["alpha"]
    assert alpha["threshold"] == pytest.approx(0.65)
    assert alpha["at_source_threshold"]["scored"]["f1"] == pytest.approx(4 / 9, abs=1e-6)


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--threshold-from", "{source}:fpr5", "choose from: " + ", ".join(THRESHOLD_RULES)),
        ("--threshold-from", "{empty}", "is not a run directory (no predictions.parquet)"),
        ("--calibrate-on", "{empty}", "is not a run directory (no predictions.parquet)"),
        ("--threshold-from", "{source}", "gamma: not in that run"),
    ],
)
def test_wrong_transfer_options_exit_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    option: str,
    value: str,
    needle: str,
) -> None:
    source, target = _source(tmp_path), _target(tmp_path, ("alpha", "gamma"))
    (tmp_path / "empty").mkdir()
    given = value.format(source=source, empty=tmp_path / "empty")
    assert _cli(monkeypatch, "report", target, option, given) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1


def test_run_dir_spec_splits_off_only_a_trailing_metric(tmp_path: Path) -> None:
    colon = tmp_path / "run:2"
    colon.mkdir()
    assert parse_threshold_source(f"{tmp_path}/runs/a:mindcf") == (tmp_path / "runs/a", "mindcf")
    assert parse_threshold_source(str(colon)) == (colon, "eer")
    assert parse_threshold_source(f"{colon}:fpr05") == (colon, "fpr05")
    assert parse_threshold_source("runs/a") == (Path("runs/a"), "eer")
    assert parse_threshold_source("x:/runs/a") == (Path("x:/runs/a"), "eer")
    with pytest.raises(TransferError, match="unknown threshold metric 'EER'"):
        parse_threshold_source("runs/a:EER")


# --- a run that records its transfer -------------------------------------------------------


def _folder_bench(root: Path) -> Path:
    """Real and upsampled tones: 3 of each on a calibration partition (bench_origin train)
    and 3 of each on a test partition, with ArtifactBench v2's protocol_split column."""
    root.mkdir(parents=True)
    rows = []
    for i in range(6):
        origin, protocol = ("train", "calibration") if i < 3 else ("test", "test")
        (root / f"real{i}.flac").write_bytes(encode_audio(music(i), RATE, "flac"))
        ai = upsampled(music(100 + i), seed=i)
        (root / f"ai{i}.flac").write_bytes(encode_audio(ai, RATE, "flac"))
        rows.append([f"real{i}.flac", "real", "real_tones", origin, protocol])
        rows.append([f"ai{i}.flac", "ai", "ai_upsampled", origin, protocol])
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "subset", "bench_origin", "protocol_split"])
        writer.writerows(rows)
    return root


def test_a_run_records_its_transfer_and_a_plain_report_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bench = f"folder:{_folder_bench(tmp_path / 'audio')}"
    runs = tmp_path / "runs"
    common = ["--bench", bench, "--models", "counting", "--workers", "0", "--out", runs]
    assert _cli(monkeypatch, "run", *common, "--split", "train") == 0
    (calibration,) = runs.glob("*-train-*")
    transfer = ["--threshold-from", calibration]
    assert _cli(monkeypatch, "run", *common, "--split", "test", *transfer) == 0
    assert "Threshold from" in capsys.readouterr().out
    (test_run,) = runs.glob("*-test-*")
    _, meta = read_predictions(test_run / "predictions.parquet")
    recorded = meta["transfer"]["threshold"]
    assert recorded["metric"] == "eer"
    assert recorded["source"]["protocol_split"] == "calibration"
    assert set(recorded["models"]) == {"counting"}
    written = (test_run / "metrics.json").read_bytes()
    block = json.loads(written)["transfer"]["threshold"]
    assert block["models"]["counting"]["threshold"] == pytest.approx(
        recorded["models"]["counting"]["threshold"], abs=1e-6
    )
    # The source run may change or go; a plain report rebuilds the same metrics from the record.
    (calibration / "predictions.parquet").unlink()
    assert _cli(monkeypatch, "report", test_run) == 0
    assert (test_run / "metrics.json").read_bytes() == written
