"""The open ArtifactNet as a detector family, its ONNX export and its channel ablations, on a
small randomly initialised model saved in the trainer's weights format."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from artifactbench.benches.base import Bench
from artifactbench.detectors import artifactnet_onnx
from artifactbench.detectors.artifactnet_open import detector
from artifactbench.detectors.artifactnet_open.features import CHANNELS
from artifactbench.detectors.artifactnet_open.model import ArtifactNetConfig, ArtifactNetOpen
from artifactbench.detectors.base import LoadContext, Unavailable
from artifactbench.detectors.registry import cards, resolve_models
from artifactbench.experiments.artifactnet_open.ablate import (
    ABLATIONS,
    BASELINE,
    BOUNDED,
    UNBOUNDED,
    ChannelAblation,
    ablate,
    compare_mask_bound,
    render_json,
    render_markdown,
)
from artifactbench.experiments.artifactnet_open.export import export_onnx
from artifactbench.runner import RunOptions, run
from artifactbench.util import sha256_file
from tests.conftest import PLUGINS

SEGMENT = 176400
CARD_ID = "artifactnet-open-test"


TRAINING = {
    "bench": "random",
    "bench_fingerprint": "f" * 64,
    "train_track_ids_sha256": "a" * 64,
    "seed": 0,
    "small": True,
    "schedule": {"classifier": 0},
    "phases": [],
    "teacher": None,
}


def save_random_weights(
    path: Path, seed: int = 0, bounded: bool = True, meta: dict | None = None
) -> Path:
    """A random small model in the trainer's format, channel means from two random inputs."""
    torch.manual_seed(seed)
    config = dataclasses.replace(ArtifactNetConfig.small(), bounded=bounded)
    model = ArtifactNetOpen(config).eval()
    with torch.no_grad():
        _, residual = model.unet(model.stft(0.1 * torch.randn(2, SEGMENT)))
        means = model.features(residual).mean(dim=(0, 3))
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()}
    blob = {
        "config": config,
        "state_dict": model.state_dict(),
        "channel_means": means,
        "meta": meta or {"seed": seed, "bench": "random", "train_metrics": {"auc": float("nan")}},
    }
    torch.save(blob, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_weights(tmp_path_factory.mktemp("weights") / "open.pt")


@pytest.fixture
def open_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A card of the `artifactnet_open` family beside the test plugins' cards.

    Two chunks per track rather than the published seven: the chunk count changes only the
    run time here, and every chunk costs about a second on a CPU.
    """
    folder = tmp_path / "cards"
    folder.mkdir()
    card = {
        "id": CARD_ID,
        "family": "artifactnet_open",
        "description": "open ArtifactNet, random weights",
        "files": [{"name": "artifactnet_open_test.pt"}],
        "view": {"rate": 44100, "seconds": 4, "crop": "chunks", "n_chunks": 2, "pad": True},
    }
    (folder / f"{CARD_ID}.yaml").write_text(yaml.safe_dump(card))
    monkeypatch.setenv("ARTIFACTBENCH_CARDS", f"{PLUGINS / 'cards'}:{folder}")
    return CARD_ID


def views(n_tracks: int, n_chunks: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.uniform(0.01, 0.3) * rng.standard_normal((n_chunks, SEGMENT))).astype(np.float32)
        for _ in range(n_tracks)
    ]


def test_ablations_are_the_seven_channels() -> None:
    assert ABLATIONS == CHANNELS


def test_ablated_channel_is_the_only_classifier_input_that_changes(weights: Path) -> None:
    model, means, _ = detector.read_weights(weights)
    seen: list[torch.Tensor] = []
    model.classifier.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    audio = torch.from_numpy(views(1, n_chunks=2)[0])
    with torch.no_grad():
        ChannelAblation(model, means, None)(audio)
        ChannelAblation(model, means, "hp_ratio")(audio)
    base, ablated = seen
    c = ABLATIONS.index("hp_ratio")
    others = [i for i in range(7) if i != c]
    torch.testing.assert_close(ablated[:, others], base[:, others], rtol=0, atol=0)
    assert not torch.equal(ablated[:, c], base[:, c])
    torch.testing.assert_close(ablated[:, c], means[c][None, :, None].expand_as(ablated[:, c]))


def test_unknown_channel_lists_the_valid_ones(weights: Path) -> None:
    with pytest.raises(ValueError, match="mel_res.*spectral_flux"):
        ablate(weights, "mel_HP", [])


def test_ablate_all_gives_baseline_and_one_row_per_channel(weights: Path) -> None:
    data = list(zip(views(4, n_chunks=1), ["ai", "real", "ai", "real"], strict=True))
    result = ablate(weights, "all", data, batch_size=3)
    assert [r["ablation"] for r in result["rows"]] == [BASELINE, *ABLATIONS]
    assert result["n_tracks"] == 4 and result["n_failed"] == 0
    base = result["rows"][0]
    assert base["delta_f1"] == 0.0 and base["delta_auc"] == 0.0
    for row in result["rows"][1:]:
        for key in ("f1", "auc", "tpr", "fpr"):
            if row[key] is not None and base[key] is not None:
                assert row[f"delta_{key}"] == pytest.approx(row[key] - base[key])
    table = render_markdown(result)
    assert "Appendix B" in table and "bounded-mask" in table
    assert table.count("\n| ") == 1 + 1 + len(ABLATIONS) - 1 + 1  # header, rule, rows
    saved = json.loads(render_json(result))
    assert saved["rows"] == result["rows"] and saved["meta"]["train_metrics"]["auc"] is None


def test_detector_without_weights_says_how_to_train(open_card: str) -> None:
    card = cards()[open_card]
    with pytest.raises(Unavailable) as info:
        detector.load(card, None, LoadContext())
    assert info.value.hint == detector.TRAIN_HINT


def test_detector_scores_a_file_bench_through_the_runner(
    open_card: str, weights: Path, file_bench: Bench, tmp_path: Path
) -> None:
    options = RunOptions(out=tmp_path / "runs", workers=0, batch_size=4, split="test", limit=4,
                         weights={open_card: weights})  # fmt: skip
    result = run(file_bench, resolve_models(open_card), options)
    assert result.models == [open_card] and not result.skipped
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    decoded = preds[~preds.stage.isin(["resolve", "decode"])]
    assert len(decoded) > 0
    assert (decoded.status == "scored").all() and decoded.prob.between(0, 1).all()
    record = json.loads((result.run_dir / "run.json").read_text())["detectors"][open_card]
    assert record["provenance"]["weights"] == str(weights)


def test_detector_score_is_the_median_of_its_chunks(open_card: str, weights: Path) -> None:
    loaded = detector.load(cards()[open_card], weights, LoadContext())
    assert loaded.weights_sha256 == sha256_file(weights)
    batch = views(2, n_chunks=2)
    chunk_probs = loaded.chunk_probs(np.concatenate(batch)).reshape(2, 2)
    np.testing.assert_allclose(loaded.score(batch), np.median(chunk_probs, axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="expected chunks"):
        loaded.score([np.zeros((2, 100), np.float32)])


def test_export_matches_torch_and_runs_through_the_published_adapter(
    open_card: str, weights: Path, tmp_path: Path
) -> None:
    batch = views(2, n_chunks=1, seed=5)
    report = export_onnx(weights, tmp_path / "open.onnx", check_views=iter(batch))
    assert report["max_abs_difference"] <= 1e-4 and report["bench_chunks"] == 2
    assert report["max_abs_difference"] == max(
        report["probe_max_abs_difference"], report["bench_max_abs_difference"]
    )
    published = artifactnet_onnx.load(cards()["artifactnet"], Path(report["onnx"]), LoadContext())
    probe = artifactnet_onnx.probe_chunks(published.width, cards()["artifactnet"].view.rate)
    independent, _, _ = artifactnet_onnx.rows_independent(
        published.session, published.contract, probe
    )
    assert independent  # batched or alone, each row gives the same P(AI)
    ours = detector.load(cards()[open_card], weights, LoadContext())
    np.testing.assert_allclose(published.score(batch), ours.score(batch), rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bounded and an unbounded model recorded as trained the same way."""
    root = tmp_path_factory.mktemp("twins")
    bounded = save_random_weights(root / "bounded.pt", seed=1, meta=TRAINING)
    unbounded = save_random_weights(root / "unbounded.pt", seed=1, bounded=False, meta=TRAINING)
    return bounded, unbounded


def test_bounded_mask_compares_mask_energy_and_scores(twins: tuple[Path, Path]) -> None:
    """Mask mean and residual energy fraction are those of each model's own U-Net on the
    chunks (recomputed here by hand); the bound halves the mask of otherwise equal weights."""
    bounded, unbounded = twins
    batch = views(4, n_chunks=2, seed=3)
    data = list(zip(batch, ["ai", "real", "ai", "real"], strict=True))
    result = compare_mask_bound(bounded, unbounded, data, batch_size=3)
    rows = {row["ablation"]: row for row in result["rows"]}
    assert list(rows) == [BOUNDED, UNBOUNDED] and result["n_tracks"] == 4
    chunks = torch.from_numpy(np.concatenate(batch))
    for name, path in ((BOUNDED, bounded), (UNBOUNDED, unbounded)):
        model, _, _ = detector.read_weights(path)
        with torch.no_grad():
            mag = model.stft(chunks)
            mask, residual = model.unet(mag)
        fraction = (residual**2).sum(dim=(1, 2)) / (mag**2).sum(dim=(1, 2))
        assert rows[name]["mask_mean"] == pytest.approx(mask.mean().item(), rel=1e-5)
        assert rows[name]["residual_energy_fraction"] == pytest.approx(
            fraction.mean().item(), rel=1e-5
        )
    # Same seed, same weights: the unbounded mask is exactly twice the bounded one.
    assert rows[UNBOUNDED]["mask_mean"] == pytest.approx(2 * rows[BOUNDED]["mask_mean"], rel=1e-5)
    assert rows[BOUNDED]["mask_mean"] <= 0.5
    assert rows[BOUNDED]["delta_f1"] == 0.0
    assert rows[UNBOUNDED]["delta_mask_mean"] == pytest.approx(rows[BOUNDED]["mask_mean"])
    table = render_markdown(result)
    assert "bounded mask" in table and table.count("\n| ") == 3  # header, two rows
    assert json.loads(render_json(result))["kind"] == "bounded-mask"


def test_bounded_mask_refuses_models_not_trained_the_same_way(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    bounded, unbounded = twins
    with pytest.raises(ValueError, match="bounded mask and the second an unbounded"):
        compare_mask_bound(unbounded, bounded, [])
    other_seed = save_random_weights(
        tmp_path / "seed.pt", bounded=False, meta={**TRAINING, "seed": 7}
    )
    with pytest.raises(ValueError, match="not trained the same way: seed"):
        compare_mask_bound(bounded, other_seed, [])
    unrecorded = save_random_weights(tmp_path / "bare.pt", bounded=False)
    with pytest.raises(ValueError, match="bench_fingerprint"):
        compare_mask_bound(bounded, unrecorded, [])
