"""Transform chains and codec round trips as variants of a run: decoded once, each chain scored
under its own protocol hash, failures recorded per variant, reruns free, reports side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifactbench.audio import transforms
from artifactbench.audio.encode import EncodeError
from artifactbench.audio.transforms import Codec, parse_transforms
from artifactbench.benches.base import Bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import ORIGINAL, read_predictions
from artifactbench.reports import build_results
from artifactbench.runner import RunOptions, run
from tests.conftest import RATE, music
from tests.test_cli import cli, folder_bench


def _options(tmp_path: Path, chains: list, **kw: object) -> RunOptions:
    base = {"out": tmp_path / "runs", "workers": 0, "batch_size": 3, "split": "all"}
    return RunOptions(**{**base, "chains": chains, **kw})  # type: ignore[arg-type]


def _log_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_each_variant_is_scored_on_the_transformed_audio_and_reruns_are_free(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gain:-6 halves the RMS the counting detector scores, so its P(AI) is exactly
    1 - exp(-8 rms / 2) of the original's rms; a rerun reads every variant from the store."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("COUNTING_LOG", str(log))
    chains = [[], parse_transforms("gain:-6")]
    first = run(file_bench, resolve_models("counting"), _options(tmp_path, chains))
    preds, meta = read_predictions(first.run_dir / "predictions.parquet")
    assert meta["variants"] == [ORIGINAL, "gain:-6"]
    assert len(preds) == 2 * len(file_bench.tracks)
    wide = preds[preds.status == "scored"].pivot(index="track_id", columns="variant", values="prob")
    both = wide.dropna()
    assert len(both) >= 2
    rms = -np.log(1.0 - both[ORIGINAL].to_numpy()) / 8.0
    expected = 1.0 - np.exp(-8.0 * rms * 10 ** (-6 / 20))
    np.testing.assert_allclose(both["gain:-6"].to_numpy(), expected, rtol=1e-4)
    # Decode failures fail every variant at the decode stage; resolve failures likewise.
    by = preds.set_index(["variant", "track_id"])
    for variant in (ORIGINAL, "gain:-6"):
        assert by.loc[(variant, "garbage.mp3"), "stage"] == "decode"
        assert by.loc[(variant, "missing.flac"), "stage"] == "resolve"
    run_json = json.loads((first.run_dir / "run.json").read_text())
    hashes = run_json["detectors"]["counting"]["variant_protocol_hashes"]
    assert hashes[ORIGINAL] == run_json["detectors"]["counting"]["protocol_hash"]
    assert hashes["gain:-6"] != hashes[ORIGINAL]
    assert [v["name"] for v in run_json["variants"]] == [ORIGINAL, "gain:-6"]
    report = (first.run_dir / "report.md").read_text()
    assert "## Variants (differences against `original`" in report
    robustness = json.loads((first.run_dir / "robustness.json").read_text())
    assert set(robustness["variants"]["counting"]) == {ORIGINAL, "gain:-6"}

    calls = len(_log_lines(log))
    second = run(file_bench, resolve_models("counting"), _options(tmp_path, chains))
    assert len(_log_lines(log)) == calls and second.detector_calls == 0
    again, _ = read_predictions(second.run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(again, preds)
    # The untransformed variant alone is the plain run: same store rows, no new calls.
    plain = run(file_bench, resolve_models("counting"), _options(tmp_path, [[]]))
    assert plain.detector_calls == 0


def test_a_failing_encoder_costs_its_variant_only(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = transforms.encode_audio

    def refuse_opus(audio, rate, fmt, bitrate=None):  # noqa: ANN001, ANN202 - a stand-in
        if fmt == "opus":
            raise EncodeError("libopus refused the stream")
        return real_encode(audio, rate, fmt, bitrate)

    monkeypatch.setattr(transforms, "encode_audio", refuse_opus)
    chains = [[Codec("wav")], [Codec("opus-128")]]
    result = run(file_bench, resolve_models("counting"), _options(tmp_path, chains))
    preds, _ = read_predictions(result.run_dir / "predictions.parquet")
    decoded = preds[~preds.stage.isin(["resolve", "decode"])]
    opus = decoded[decoded.variant == "codec:opus-128"]
    assert len(opus) > 0 and (opus.stage == "encode").all()
    assert opus.error.str.contains("encode opus-128: libopus refused").all()
    wav = decoded[decoded.variant == "codec:wav"]
    assert (wav.stage != "encode").all() and (wav.status == "scored").any()
    table = json.loads((result.run_dir / "robustness.json").read_text())["table_x"]
    row = next(r for r in table if r["codec"] == "opus-128")
    assert row["n_failed"] == len(preds[preds.variant == "codec:opus-128"])


@pytest.mark.parametrize("name", list(transforms.CODECS))
def test_codec_round_trip_keeps_length_and_is_deterministic(name: str) -> None:
    x = (0.5 * music(3, seconds=1.5)).astype(np.float32)
    codec = Codec(name)
    once = codec.apply(x, RATE, seed=0, key="k")
    assert once.shape == x.shape and once.dtype == np.float32
    assert np.array_equal(once, codec.apply(x, RATE, seed=0, key="k"))
    if name == "wav":  # 16-bit PCM: quantisation only
        assert np.max(np.abs(once - x)) <= 1.0 / 32768 + 1e-7
    else:
        assert np.max(np.abs(once - x)) > 1e-4


def test_codec_and_transform_commands(tmp_path: Path) -> None:
    bench = folder_bench(tmp_path / "bench", n=2, broken=False)
    done = cli("codec", "--bench", f"folder:{bench}", "--models", "counting", "--codecs",
               "wav,mp3-128", "--split", "all", "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Table X layout" in done.stdout and "P(AI) spread across codecs" in done.stdout
    # One style in the terminal: titled rich tables, no raw Markdown pipe tables.
    assert "Metrics on scored tracks, variant codec:wav (threshold 0.5)" in done.stdout
    assert "| counting |" not in done.stdout and "| ---" not in done.stdout
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    assert (run_dir / "codec_probs.png").stat().st_size > 0
    spread = json.loads((run_dir / "robustness.json").read_text())["prob_spread"]["counting"]
    assert spread["n_tracks"] == 4 and spread["pass"] in (True, False)
    # `sanity` and `report` describe the primary variant: each subset's 2 tracks, once.
    preds, meta = read_predictions(run_dir / "predictions.parquet")
    assert len(preds) == 2 * 4
    _, sanity = build_results(preds, meta)
    assert [s["n"] for s in sanity["models"]["counting"]["subsets"].values()] == [2, 2]
    done = cli("codec", "--bench", f"folder:{bench}", "--models", "counting", "--codecs", "wav",
               "--transform", "gain:-6", "--split", "all", "--workers", "0",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    preds, meta = read_predictions(run_dir / "predictions.parquet")
    assert meta["variants"] == ["gain:-6,codec:wav"] and set(preds.variant) == set(meta["variants"])
    done = cli("run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
               "--transform", "resample:16000", "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Metrics on scored tracks, variant original (threshold 0.5)" in done.stdout
    assert "Variants (differences against original on the same tracks)" in done.stdout
    assert "failed / n" in done.stdout and "| counting |" not in done.stdout
    assert any("counting" in line and "resample:16000" in line and "0 / 4" in line
               for line in done.stdout.splitlines())  # fmt: skip
    for args, needle in (
        (["codec", "--codecs", "mp3-96"], "choose from: wav, mp3-128"),
        (["run", "--transform", "lopass:3000"], "choose from: resample:RATE"),
        (["bandwidth", "--residual", "nope"], "choose from: hpss, artifactnet-open, demucs"),
    ):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and needle in done.stderr, done.stderr


def test_prob_spread_and_table_x_by_hand() -> None:
    """Two tracks, three codecs: spreads 0.3 and 0.1 (mean 0.2 > 0.15: FAIL); TPR change
    against WAV in percentage points; a track failed under one codec leaves the spread."""
    from artifactbench.reports.robustness import codec_table, prob_spread, variant_metrics

    probs = {
        "a1": {"codec:wav": 0.9, "codec:mp3-128": 0.6, "codec:opus-128": 0.8},
        "r1": {"codec:wav": 0.2, "codec:mp3-128": 0.3, "codec:opus-128": 0.25},
        "a2": {"codec:wav": 0.7, "codec:mp3-128": None, "codec:opus-128": 0.4},
    }
    labels = {"a1": "ai", "r1": "real", "a2": "ai"}
    rows = [
        {"model": "m", "bench": "b", "track_id": t, "subset": f"s_{labels[t]}",
         "label": labels[t], "variant": v, "prob": p,
         "status": "scored" if p is not None else "failed",
         "stage": None if p is not None else "encode"}
        for t, by in probs.items() for v, p in by.items()
    ]  # fmt: skip
    preds = pd.DataFrame(rows)
    order = ["codec:wav", "codec:mp3-128", "codec:opus-128"]
    spread = prob_spread(preds, order)["m"]
    assert spread["n_tracks"] == 2
    assert spread["mean"] == pytest.approx(0.2) and spread["max"] == pytest.approx(0.3)
    assert spread["median"] == pytest.approx(0.2) and spread["pass"] is False
    assert spread["subsets"]["s_real"]["mean"] == pytest.approx(0.1)
    table = {r["codec"]: r for r in codec_table(variant_metrics(preds, 0.5, order), "codec:wav")}
    assert table["wav"]["ai_tpr"] == 1.0 and table["wav"]["delta_tpr_pp"] == 0.0
    assert table["mp3-128"]["ai_tpr"] == 1.0 and table["mp3-128"]["n_failed"] == 1
    assert table["opus-128"]["ai_tpr"] == 0.5 and table["opus-128"]["delta_tpr_pp"] == -50.0
    assert table["opus-128"]["real_fpr"] == 0.0


def test_bandwidth_command(tmp_path: Path) -> None:
    bench = folder_bench(tmp_path / "bench", n=2, broken=False)
    done = cli("bandwidth", "--bench", f"folder:{bench}", "--split", "all", "--workers", "0",
               "--max-seconds", "2", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    assert (run_dir / "bandwidth.png").stat().st_size > 0
    rows = pd.read_parquet(run_dir / "bandwidth.parquet")
    assert len(rows) == 4 and (rows.status == "measured").all()
    assert "Confounders" in done.stdout


def test_a_missing_encoder_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before the run: the chain's description names the missing encoder (and the CLI exits 2);
    during a run: each track's encode failure names it."""
    import dataclasses

    from artifactbench.audio import encode as codecs

    spec = dataclasses.replace(codecs.CODECS["mp3"], codec="libnotthere")
    monkeypatch.setitem(codecs.CODECS, "mp3", spec)
    codec = Codec("mp3-128")
    with pytest.raises(transforms.TransformUnavailable, match="encoder 'libnotthere'"):
        codec.describe()
    with pytest.raises(transforms.TransformError, match="encode mp3-128: mp3 encode failed"):
        codec.apply(0.1 * np.ones(4410, np.float32), RATE, seed=0, key="k")
    assert Codec("aac-128").describe()["encoder"] == "aac"


def test_seeded_transforms_are_keyed_by_the_seed(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Noise drawn under another seed is other audio: it is scored again (and differs), while
    a deterministic chain is read back from the store whatever the seed."""
    monkeypatch.setenv("COUNTING_LOG", str(tmp_path / "calls.log"))
    models = resolve_models("counting")
    noisy = [parse_transforms("noise:10")]
    first = run(file_bench, models, _options(tmp_path, noisy, seed=1))
    second = run(file_bench, models, _options(tmp_path, noisy, seed=2))
    assert first.detector_calls > 0 and second.detector_calls > 0
    a, _ = read_predictions(first.run_dir / "predictions.parquet")
    b, _ = read_predictions(second.run_dir / "predictions.parquet")
    scored = (a.status == "scored") & (b.status == "scored")
    assert not np.allclose(a.prob[scored], b.prob[scored])
    gain = [parse_transforms("gain:-3")]
    run(file_bench, models, _options(tmp_path, gain, seed=1))
    assert run(file_bench, models, _options(tmp_path, gain, seed=2)).detector_calls == 0
