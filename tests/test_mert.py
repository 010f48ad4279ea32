"""MERT through transformers' own HubertModel: the hidden states MERT's published code gives on the
`mert-v1-95m-random` fixture, the full-size architecture's keys and shapes, strict configs and
checkpoints, no code from the snapshot, and the CLAM stream built on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import HubertModel, Wav2Vec2FeatureExtractor

from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.clam import load_stream
from artifactbench.detectors.mert import (
    LOADER,
    WEIGHT_NORM,
    MertCheckpointError,
    hubert_config,
    load_mert,
    map_state,
)
from artifactbench.detectors.registry import cards

# Tiny MERTModel with seeded random weights saved as the MERT-v1-95M snapshot is, and the hidden
# states MERT's own code gives for inputs.npy (see its README.md).
FIXTURE = Path(__file__).parent / "fixtures" / "mert-v1-95m-random"
STATES, FRAMES, WIDTH = 4, 74, 32


def snapshot_copy(tmp_path: Path, config: dict | None = None, state: dict | None = None) -> Path:
    """The fixture copied to tmp_path, with its config.json or weights replaced if given."""
    folder = tmp_path / "mert"
    shutil.copytree(FIXTURE, folder)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if state is not None:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def fixture_config() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


def fixture_state() -> dict[str, torch.Tensor]:
    return dict(torch.load(FIXTURE / "pytorch_model.bin", weights_only=True))


def states_of(folder: Path) -> np.ndarray:
    """[batch, states, frames, width] from our loader on the fixture's inputs."""
    model, extractor = load_mert(folder)
    inputs = np.load(FIXTURE / "inputs.npy")
    values = extractor(list(inputs), sampling_rate=24000, return_tensors="pt")["input_values"]
    assert torch.equal(values, torch.from_numpy(inputs))  # do_normalize false: unchanged
    with torch.no_grad():
        out = model(values, output_hidden_states=True)
    return torch.stack(out.hidden_states, dim=1).numpy()


def max_diff(states: np.ndarray) -> float:
    return float(np.abs(states - np.load(FIXTURE / "expected.npy")).max())


def test_hidden_states_equal_merts_own_code() -> None:
    model, extractor = load_mert(FIXTURE)
    assert type(model) is HubertModel and not model.training
    assert type(extractor) is Wav2Vec2FeatureExtractor and extractor.sampling_rate == 24000
    assert not extractor.do_normalize
    states = states_of(FIXTURE)
    assert states.shape == (2, STATES, FRAMES, WIDTH)
    assert max_diff(states) < 1e-5
    assert np.abs(states).max() > 0.5  # random weights: nothing trivially zero or identity


def test_the_published_key_names_are_mapped() -> None:
    state = fixture_state()
    assert set(WEIGHT_NORM) <= set(state)  # as the published MERT-v1-95M checkpoint names them
    model, _ = load_mert(FIXTURE)
    loaded = model.state_dict()
    for old, new in WEIGHT_NORM.items():  # under whichever name the installed torch uses
        assert torch.equal(loaded[new if new in loaded else old], state[old])
    assert torch.equal(loaded["masked_spec_embed"], state["masked_spec_embed"])  # never used


def test_masked_spec_embed_is_unused_at_inference() -> None:
    model, _ = load_mert(FIXTURE)
    with torch.no_grad():
        model.masked_spec_embed.fill_(float("nan"))
        out = model(torch.from_numpy(np.load(FIXTURE / "inputs.npy")), output_hidden_states=True)
    assert max_diff(torch.stack(out.hidden_states, dim=1).numpy()) < 1e-5


def test_no_code_from_the_snapshot_runs(tmp_path: Path) -> None:
    """The snapshot's auto_map names code files that would fail on import: none is imported."""
    folder = snapshot_copy(tmp_path)
    marker = tmp_path / "snapshot-code-ran"
    for name in ("modeling_MERT.py", "configuration_MERT.py"):
        (folder / name).write_text(
            f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('snapshot code ran')\n"
        )
    assert set(fixture_config()["auto_map"].values()) == {
        "configuration_MERT.MERTConfig",
        "modeling_MERT.MERTModel",
    }
    stream, record = load_stream("mert", folder, "cpu", seconds=1.0)
    assert type(stream.model) is HubertModel
    assert record["trust_remote_code"] is False and record["loader"] == LOADER
    assert not marker.exists()


def test_the_card_loads_mert_without_remote_code() -> None:
    mert = next(e for e in cards()["clam"].encoders if e.name == "mert")
    assert mert.repo == "m-a-p/MERT-v1-95M" and mert.trust_remote_code is False


def test_full_size_architecture_has_the_published_keys_and_shapes() -> None:
    recorded = json.loads((FIXTURE / "full-size.shapes.json").read_text())
    config = hubert_config(recorded["config"])
    assert (config.hidden_size, config.num_hidden_layers, config.conv_dim[-1]) == (768, 12, 512)
    model = HubertModel(config)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    mapped = map_state(recorded["state_dict"], ours)
    assert mapped == ours
    assert sum(p.numel() for p in model.parameters()) == recorded["parameters"] == 94_371_712


def test_weight_norm_names_map_both_ways() -> None:
    (old, new), *_ = WEIGHT_NORM.items()
    assert map_state({old: 1, "hubert.x": 2}, {new, "x"}) == {new: 1, "x": 2}
    assert map_state({"mert_model." + new: 1}, {old}) == {old: 1}


def test_prefixed_safetensors_with_parametrization_names_load(tmp_path: Path) -> None:
    state = {"mert_model." + WEIGHT_NORM.get(k, k): v for k, v in fixture_state().items()}
    folder = snapshot_copy(tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"not read when model.safetensors is there")
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    assert max_diff(states_of(folder)) < 1e-5


def test_a_config_without_conv_pos_batch_norm_loads(tmp_path: Path) -> None:
    config = fixture_config()
    del config["conv_pos_batch_norm"]  # MERT-v1's own config predates the option
    assert max_diff(states_of(snapshot_copy(tmp_path, config=config))) < 1e-5


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"feature_extractor_cqt": True}, "feature_extractor_cqt: True"),
        ({"deepnorm": True}, "deepnorm: True"),
        ({"attention_relax": 32.0}, "attention_relax: 32.0"),
    ],
)
def test_what_hubert_cannot_compute_is_refused_in_one_line(
    tmp_path: Path, edit: dict, named: str
) -> None:
    folder = snapshot_copy(tmp_path, config={**fixture_config(), **edit})
    with pytest.raises(Unavailable, match="HubertModel cannot compute") as info:
        load_mert(folder)
    assert named in str(info.value) and "\n" not in str(info.value)
    assert "trust_remote_code: true" in info.value.hint


def test_a_config_that_is_not_merts_is_refused() -> None:
    with pytest.raises(Unavailable, match="model_type 'hubert' is not 'mert_model'"):
        hubert_config({**fixture_config(), "model_type": "hubert"})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("encoder.layers.2.final_layer_norm.bias"), "missing encoder.layers.2."),
        (lambda s: s.update({"encoder.extra.weight": torch.zeros(3)}), "unexpected encoder.extra"),
        (
            lambda s: s.update({"feature_projection.projection.bias": torch.zeros(7)}),
            r"feature_projection.projection.bias: shape \[7\] in the checkpoint, \[32\] in the",
        ),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_key(
    tmp_path: Path, edit, message: str
) -> None:
    state = fixture_state()
    edit(state)
    with pytest.raises(MertCheckpointError, match=message):
        load_mert(snapshot_copy(tmp_path, state=state))


def test_clam_stream_averages_merts_hidden_states_over_time() -> None:
    stream, record = load_stream("mert", FIXTURE, "cpu")
    assert record["loader"] == LOADER and record["class"] == "HubertModel"
    assert record["hidden_states_from"] == "output_hidden_states" and not stream.hooks
    assert (record["rate"], record["states"], record["width"]) == (24000, STATES, WIDTH)
    assert record["do_normalize"] is False
    features = stream.encode(list(np.load(FIXTURE / "inputs.npy")))
    expected = np.load(FIXTURE / "expected.npy").mean(axis=2)
    assert features.shape == (2, STATES, WIDTH) and features.dtype == torch.float32
    assert np.abs(features.numpy() - expected).max() < 1e-5
