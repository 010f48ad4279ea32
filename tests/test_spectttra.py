"""SpecTTTra equals upstream SONICS on its published checkpoint format.

`fixtures/spectttra-tiny-5s` is a checkpoint in the Hugging Face layout of the SONICS models (the
alpha 5 s config, shrunk to embed 64 / 2 heads / 2 layers) with seeded random weights, and the
logits the upstream implementation gives for four clips, one clip per forward pass.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from artifactbench.detectors.base import LoadContext, Unavailable
from artifactbench.detectors.registry import backend, cards
from artifactbench.detectors.spectttra import (
    CheckpointMismatch,
    SpecTTTra,
    SpecTTTraConfig,
    htk_mel_filterbank,
)
from tests.conftest import upstream_fixtures

FIXTURES = upstream_fixtures()
TINY = FIXTURES / "spectttra-tiny-5s"
SHAPES = FIXTURES / "spectttra-alpha-120s.shapes.json"


@pytest.fixture(scope="module")
def tiny() -> SpecTTTra:
    return SpecTTTra.from_pretrained(TINY)


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.from_numpy(np.load(TINY / "inputs.npy"))


def tiny_config() -> dict:
    return json.loads((TINY / "config.json").read_text())


def alpha_120s_config() -> dict:
    """The published alpha-120s model section: sizes as the shapes file implies, 120 s at 16 kHz."""
    config = tiny_config()
    config["audio"].update(max_time=120, max_len=120 * 16000)
    config["model"].update(
        embed_dim=384, num_heads=6, num_layers=12, input_shape=[128, 3744], t_clip=3, f_clip=1
    )
    return config


def test_fixture_logits_match_upstream(tiny: SpecTTTra, inputs: torch.Tensor) -> None:
    expected = json.loads((TINY / "expected.json").read_text())
    assert not tiny.training
    with torch.inference_mode():
        logits = np.array([tiny(inputs[i : i + 1]).item() for i in range(len(inputs))])
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)
    probs = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(probs, expected["probs"], rtol=0, atol=1e-4)


def test_full_alpha_120s_architecture_matches_published_keys_and_shapes() -> None:
    published = json.loads(SHAPES.read_text())
    torch.manual_seed(0)
    model = SpecTTTra(SpecTTTraConfig.from_sonics(alpha_120s_config()))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == published["state_dict"]
    assert model.num_parameters() == published["parameters"] == 18_679_693
    with torch.inference_mode():
        logits = model.eval()(torch.zeros(1, 120 * 16000).uniform_(-0.5, 0.5))
    assert logits.shape == (1,) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd.pop("classifier.bias"), "missing classifier.bias"),
        (
            lambda sd: sd.__setitem__("encoder.head.weight", torch.zeros(1)),
            "unexpected encoder.head.weight",
        ),
        (
            lambda sd: sd.__setitem__(
                "encoder.st_tokenizer.temporal_tokenizer.pos_encoder.pe", torch.zeros(1, 41, 64)
            ),
            r"encoder.st_tokenizer.temporal_tokenizer.pos_encoder.pe: shape \[1, 41, 64\]",
        ),
    ],
)
def test_strict_loading_names_the_offending_key(edit, message: str) -> None:
    state = torch.load(TINY / "pytorch_model.bin", weights_only=True)
    edit(state)
    model = SpecTTTra(SpecTTTraConfig.from_sonics(tiny_config()))
    with pytest.raises(CheckpointMismatch, match=message):
        model.load_checkpoint(state)


def test_unsupported_config_is_refused() -> None:
    config = tiny_config()
    config["melspec"]["norm"] = "min_max"
    with pytest.raises(ValueError, match="melspec.norm"):
        SpecTTTraConfig.from_sonics(config)


def test_top_db_is_per_clip(tiny: SpecTTTra, inputs: torch.Tensor) -> None:
    """Upstream floors dB at the batch max, so a loud neighbour would change this clip's score."""
    quiet = inputs[1:2] * 1e-3
    loud = inputs[0:1] / inputs[0].abs().max()
    with torch.inference_mode():
        alone = tiny(quiet)
        batched = tiny(torch.cat([loud, quiet]))[1:]
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)


def test_computed_filterbank_and_window_equal_the_checkpoint_buffers() -> None:
    state = torch.load(TINY / "pytorch_model.bin", weights_only=True)
    built = SpecTTTra(SpecTTTraConfig.from_sonics(tiny_config())).state_dict()
    for key in (
        "ft_extractor.audio2melspec.mel_scale.fb",
        "ft_extractor.audio2melspec.spectrogram.window",
    ):
        torch.testing.assert_close(built[key], state[key], rtol=1e-5, atol=1e-6)
    fb = htk_mel_filterbank(1025, 20.0, 8000.0, 128, 16000)
    assert fb.shape == (1025, 128) and (fb.sum(dim=0) > 0).all()


def test_load_and_score_through_the_card(inputs: torch.Tensor) -> None:
    card = cards()["spectttra-alpha-5s"]
    detector = backend(card).load(card, TINY, LoadContext(device="cpu"))
    probs = detector.score([row.numpy() for row in inputs])
    expected = json.loads((TINY / "expected.json").read_text())["probs"]
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-4)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert len(detector.weights_sha256) == 64
    assert detector.provenance["params"] == 121_365
    assert "per clip" in detector.provenance["top_db"]
    with pytest.raises(ValueError, match=r"takes \(80000,\) samples"):
        detector.score([np.zeros(16000, dtype=np.float32)])


def test_load_takes_a_path_to_either_file_as_its_folder() -> None:
    card = cards()["spectttra-alpha-5s"]
    detector = backend(card).load(card, TINY / "pytorch_model.bin", LoadContext(device="cpu"))
    assert detector.provenance["source"] == str(TINY)


def test_load_refuses_a_card_whose_view_disagrees_with_the_checkpoint() -> None:
    card = cards()["spectttra-alpha-120s"]
    with pytest.raises(Unavailable, match="takes 5 s at 16000 Hz"):
        backend(card).load(card, TINY, LoadContext(device="cpu"))


def test_load_reports_a_broken_checkpoint_as_unavailable(tmp_path: Path) -> None:
    state = torch.load(TINY / "pytorch_model.bin", weights_only=True)
    state.pop("classifier.weight")
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((TINY / "config.json").read_text())
    card = cards()["spectttra-alpha-5s"]
    with pytest.raises(Unavailable, match="missing classifier.weight"):
        backend(card).load(card, tmp_path, LoadContext(device="cpu"))
    torch.save({"state": torch.nn.Linear(1, 1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(Unavailable, match="cannot load"):
        backend(card).load(card, tmp_path, LoadContext(device="cpu"))


def test_config_parsing_copes_without_max_len() -> None:
    config = copy.deepcopy(tiny_config())
    del config["audio"]["max_len"]
    assert SpecTTTraConfig.from_sonics(config).max_len == 80000


def test_cli_scores_files_with_the_checkpoint_folder(tmp_path: Path) -> None:
    """`artifactbench score FILE --model spectttra-alpha-5s --weights DIR` equals the model run
    on the protocol's view (16 kHz, centred 5 s, end zero-padded)."""
    import subprocess

    from artifactbench.audio.decode import decode_audio, detector_view
    from artifactbench.audio.encode import encode_audio
    from tests.conftest import music, python_cli

    long_song, short_song = tmp_path / "long.flac", tmp_path / "short.mp3"
    long_song.write_bytes(encode_audio(music(1, seconds=8.0), 44100, "flac"))
    short_song.write_bytes(encode_audio(music(2, seconds=3.0), 44100, "mp3", 128000))
    args = [*python_cli(), "score", str(long_song), str(short_song), "--model",
            "spectttra-alpha-5s", "--weights", str(TINY), "--json"]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.strip().splitlines()]
    model = SpecTTTra.from_pretrained(TINY)
    card = cards()["spectttra-alpha-5s"]
    for record, song in zip(records, (long_song, short_song), strict=True):
        view = detector_view(decode_audio(song), card.view)
        assert view.shape == (80000,)
        with torch.inference_mode():
            expected = torch.sigmoid(model(torch.from_numpy(view)[None])).item()
        assert record["prob"] == pytest.approx(expected, abs=1e-5)
