"""Training of the open ArtifactNet on a tiny demo bench: losses fall, test tracks are refused,
checkpoints resume to the same weights, and the saved file scores audio."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from artifactbench.benches.base import Bench
from artifactbench.benches.demo import load_demo_bench
from artifactbench.detectors.artifactnet_open.detector import read_weights
from artifactbench.experiments.artifactnet_open.ablate import (
    BOUNDED,
    UNBOUNDED,
    compare_mask_bound,
)
from artifactbench.experiments.artifactnet_open.train import Schedule, train
from artifactbench.experiments.artifactnet_open.twin import train_twin

TINY = Schedule(
    segments_per_track=1,
    batch=6,
    distill=3,
    classifier=6,
    steer=1,
    codec=1,
    distill_segments=2,
    steer_segments=2,
    codec_segments=1,
)


def _losses(out: Path, stage: str) -> list[float]:
    rows = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["stage"] == stage]


class BarRecorder:
    """A progress hook that remembers every bar's total and how far it was advanced."""

    def __init__(self) -> None:
        self.bars: dict[str, list[int]] = {}

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        self.bars[label] = [total, 0]
        return lambda n: self.bars[label].__setitem__(1, self.bars[label][1] + n)


BARS = BarRecorder()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bench, list, Path, Path]:
    root = tmp_path_factory.mktemp("train")
    bench = load_demo_bench(root=root / "demo", tracks_per_subset=2, seconds=(4.5, 5.0))
    pool = bench.select("train")
    tracks = [t for t in pool if t.label == "ai"][:3] + [t for t in pool if t.label == "real"][:3]
    out = root / "run"
    weights = train(bench, out, small=True, seed=0, schedule=TINY, workers=0, tracks=tracks,
                    bars=BARS, teacher="hpss")  # fmt: skip
    return bench, tracks, out, weights


def test_every_stage_has_a_progress_bar_that_completes(trained: tuple) -> None:
    """One bar per stage, each advanced exactly to its announced total (steps per epoch x
    epochs, from the schedule; batches for the teacher and feature passes)."""
    n = len(trained[1])
    expected = {
        "decode train tracks": n,
        "phase 1 teacher residuals": -(-TINY.distill_segments // TINY.batch),
        "phase 1 distill": TINY.distill * 1,
        "phase 2 features of the train segments": -(-n * TINY.segments_per_track // TINY.batch),
        "phase 2 classifier": TINY.classifier * 1,
        "phase 2 steer": TINY.steer * 1,
        "phase 3 encode x3 codecs": TINY.codec_segments,
        "phase 3 codec": TINY.codec * 1,
        "evaluate on train segments": 1,
    }
    assert {label: total for label, (total, _) in BARS.bars.items()} == expected
    assert all(done == total for total, done in BARS.bars.values())


def test_losses_fall_at_a_fixed_batch(trained: tuple) -> None:
    _, _, out, _ = trained
    distill = _losses(out, "distill")
    classifier = _losses(out, "classifier")
    assert len(distill) == 3 and distill[-1] < distill[0]
    assert len(classifier) == 6 and classifier[-1] < classifier[0]
    assert _losses(out, "steer") and _losses(out, "codec")


def test_weights_load_and_score(trained: tuple) -> None:
    _, tracks, out, weights = trained
    model, means, meta = read_weights(weights)
    assert means.shape == (7, model.config.n_mels)
    assert torch.isfinite(means).all()
    assert meta["teacher"] == "hpss" and meta["phases"] == [1, 2, 3]
    assert meta["n_tracks"] == len(tracks)
    with torch.no_grad():
        prob = model(0.1 * torch.randn(2, model.config.segment_samples))
    assert prob.shape == (2,) and ((prob >= 0) & (prob <= 1)).all()
    card = json.loads((out / "card.json").read_text())
    assert "mean nothing on real music" in card["note"]


def test_refuses_test_tracks(trained: tuple, tmp_path: Path) -> None:
    bench, _, _, _ = trained
    only_test = dataclasses.replace(bench, tracks=bench.select("test"))
    with pytest.raises(ValueError, match="train"):
        train(only_test, tmp_path, small=True, seed=0, schedule=TINY, workers=0)
    with pytest.raises(ValueError, match="train tracks only"):
        train(bench, tmp_path, small=True, seed=0, tracks=bench.select("test")[:1], workers=0)


def test_resume_skips_done_phases_and_reproduces(trained: tuple) -> None:
    bench, tracks, out, weights = trained
    first = torch.load(weights, weights_only=True)["state_dict"]
    (out / "phase3.pt").unlink()
    n_lines = len((out / "loss_log.jsonl").read_text().splitlines())
    again = train(bench, out, small=True, seed=0, schedule=TINY, workers=0, tracks=tracks)
    rows = [json.loads(x) for x in (out / "loss_log.jsonl").read_text().splitlines()[n_lines:]]
    assert rows and {r["phase"] for r in rows} == {3}
    second = torch.load(again, weights_only=True)
    assert second["meta"]["resumed_phases"] == [1, 2]
    for name, tensor in first.items():
        assert torch.equal(tensor, second["state_dict"][name]), name


def test_unbounded_twin_is_trained_the_same_way(trained: tuple, tmp_path: Path) -> None:
    """The twin retrains on the recorded train tracks with the recorded seed and schedule; the
    bounded-mask comparison accepts the pair, and a bench other than the training one is
    refused before any training."""
    bench, tracks, _, weights = trained
    twin = train_twin(weights, bench, tmp_path / "twin", bounded=False, workers=0)
    model, _, meta = read_weights(twin)
    assert not model.config.bounded
    assert meta["train_track_ids"] == sorted(t.track_id for t in tracks)
    views = [0.1 * np.random.default_rng(i).standard_normal((1, 176400)) for i in range(2)]
    result = compare_mask_bound(weights, twin, zip(views, ["ai", "real"], strict=True))
    assert [row["ablation"] for row in result["rows"]] == [BOUNDED, UNBOUNDED]
    other = dataclasses.replace(bench, fingerprint="0" * 64)
    with pytest.raises(ValueError, match="was trained on bench"):
        train_twin(weights, other, tmp_path / "nope", bounded=False, workers=0)
    assert not (tmp_path / "nope").exists()


def test_demucs_teacher_when_its_weights_are_on_disk(trained: tuple, tmp_path: Path) -> None:
    """With Demucs weights in the folder, "auto" distils |STFT(mixture - sum of stems)| and
    records the teacher and its files; with an empty folder "auto" falls back to HPSS and
    "demucs" is refused with the reason."""
    pytest.importorskip("demucs")
    from artifactbench.audio.separation import load_separator
    from artifactbench.detectors.artifactnet_open.model import ArtifactNetConfig, ArtifactNetOpen
    from artifactbench.experiments.artifactnet_open.train import demucs_teacher
    from tests.test_separation import save_safetensors, tiny_model, write_yaml

    folder = tmp_path / "demucs"
    folder.mkdir()
    save_safetensors(tiny_model(0), folder / "aaaa0000.safetensors")
    write_yaml(folder, ["aaaa0000"])
    separator = load_separator(folder)
    stft = ArtifactNetOpen(ArtifactNetConfig.small()).stft
    audio = 0.1 * torch.from_numpy(np.random.default_rng(0).standard_normal((2, 44100)))
    audio = audio.float()
    expected = stft(audio - separator.stems(audio).sum(dim=1))
    torch.testing.assert_close(demucs_teacher(separator, stft, audio), expected)

    bench, tracks, _, _ = trained
    one_phase = {"tracks": tracks, "small": True, "seed": 0, "schedule": TINY, "workers": 0,
                 "phases": (1,)}  # fmt: skip
    weights = train(bench, tmp_path / "d", demucs_dir=folder, **one_phase)
    meta = read_weights(weights)[2]
    assert meta["teacher"] == "demucs:htdemucs" and "Demucs residual" in meta["teacher_note"]
    assert meta["teacher_files"] == separator.files
    assert len(_losses(tmp_path / "d", "distill")) == TINY.distill
    empty = tmp_path / "empty"
    empty.mkdir()
    weights = train(bench, tmp_path / "h", demucs_dir=empty, **one_phase)
    assert read_weights(weights)[2]["teacher"] == "hpss"
    with pytest.raises(ValueError, match="teacher demucs: .*htdemucs.yaml"):
        train(bench, tmp_path / "x", demucs_dir=empty, teacher="demucs", **one_phase)
