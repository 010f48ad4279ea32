"""CLAM: the head equals upstream on the fixture; strict checkpoints; the feature path on tiny
random encoders saved to disk (never downloaded); load + score one track at a time, MERT through
HubertModel by default and through its own code (a stand-in here) only where a card opts in."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)
from transformers.modeling_outputs import BaseModelOutput

from artifactbench.audio.decode import PROTOCOL_RATE, detector_view, resample
from artifactbench.detectors import clam
from artifactbench.detectors.base import DetectorCard, LoadContext, Unavailable
from artifactbench.detectors.clam import (
    CheckpointError,
    CLAMHead,
    build_with_conv_pos_fallback,
    hidden_states,
    load,
    load_stream,
)
from artifactbench.detectors.mert import LOADER
from artifactbench.detectors.registry import backend, cards
from tests.conftest import upstream_fixtures

# The MoM-CLAM head `CLAM(13, 13, 768, 768)` with seeded random weights, saved as upstream saves
# it, with features and the logits upstream's own code gives (see its expected.json note).
FIXTURE = upstream_fixtures() / "clam-head-random"
# A tiny MERT-v1-95M-shaped snapshot (4 hidden states of width 32) with MERT's own outputs.
MERT = Path(__file__).parent / "fixtures" / "mert-v1-95m-random"
WIDTH = 16  # tiny encoders: 12 layers (13 hidden states) of width 16
CONV = {
    "conv_dim": (8,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
}
TINY = {"hidden_size": WIDTH, "num_hidden_layers": 12, "num_attention_heads": 2,
        "intermediate_size": 64, "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2, **CONV}  # fmt: skip
HUBERT_FIELDS = (
    set(HubertConfig().to_dict()) - set(PretrainedConfig().to_dict()) - {"conv_pos_batch_norm"}
)


class MertLikeConfig(PretrainedConfig):
    """Like MERT's own config: an old-style HuBERT config without `conv_pos_batch_norm`."""

    model_type = "clam-test-mert-like"

    def __init__(self, **kwargs) -> None:
        defaults = HubertConfig().to_dict()
        own = {k: kwargs.pop(k, defaults[k]) for k in HUBERT_FIELDS}
        super().__init__(**kwargs)
        for key, value in own.items():
            setattr(self, key, value)


class MertLikeModel(HubertModel):
    """Like MERT's remote code (the opt-in path) on transformers 5: its own forward around
    HuBERT's parts, whose encoder returns no hidden states; it reads `conv_pos_batch_norm`
    unguarded as 4.48 did."""

    config_class = MertLikeConfig

    def __init__(self, config: MertLikeConfig) -> None:
        if config.conv_pos_batch_norm:
            raise ValueError("MERT-v1 has no batch-norm positional convolution")
        super().__init__(config)

    def forward(self, input_values: torch.Tensor, **kwargs) -> BaseModelOutput:
        features = self.feature_extractor(input_values).transpose(1, 2)
        out = self.encoder(self.feature_projection(features))
        return BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=None)


AutoConfig.register(MertLikeConfig.model_type, MertLikeConfig)
AutoModel.register(MertLikeConfig, MertLikeModel)


def fixture_inputs() -> tuple[torch.Tensor, torch.Tensor, dict]:
    mert = torch.from_numpy(np.load(FIXTURE / "mert.npy"))
    w2v = torch.from_numpy(np.load(FIXTURE / "w2v.npy"))
    return mert, w2v, json.loads((FIXTURE / "expected.json").read_text())


def test_head_matches_upstream_one_track_at_a_time() -> None:
    head = CLAMHead.from_checkpoint(FIXTURE / "clam_head.pth")
    mert, w2v, expected = fixture_inputs()
    assert not head.training
    with torch.no_grad():
        per_track = torch.cat([head(mert[i : i + 1], w2v[i : i + 1]) for i in range(len(mert))])
        batch = head(mert, w2v)
    np.testing.assert_allclose(per_track.numpy(), expected["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(torch.sigmoid(per_track).numpy(), expected["probs"], atol=1e-4)
    assert torch.equal(batch, per_track)  # the public forward never mixes tracks


def test_upstream_batched_forward_mixes_the_batch() -> None:
    head = CLAMHead.from_checkpoint(FIXTURE / "clam_head.pth")
    mert, w2v, expected = fixture_inputs()
    with torch.no_grad():
        mixed = head(mert, w2v, mix_batch=True)
    np.testing.assert_allclose(mixed.numpy(), expected["batched_logits"], atol=1e-4, rtol=0)
    assert np.abs(mixed.numpy() - np.array(expected["logits"])).max() > 1e-3


def test_wrapped_and_prefixed_checkpoints_load(tmp_path: Path) -> None:
    state = torch.load(FIXTURE / "clam_head.pth", weights_only=True)
    mert, w2v, expected = fixture_inputs()
    wrapped = {
        "model_state_dict": {f"module.{k}": v for k, v in state.items()},
        "epoch": 7,
        "best_f1": 0.9,
    }
    torch.save(wrapped, tmp_path / "wrapped.pth")
    torch.save({"state_dict": dict(state)}, tmp_path / "state.pth")
    for name in ("wrapped.pth", "state.pth"):
        with torch.no_grad():
            logits = CLAMHead.from_checkpoint(tmp_path / name)(mert, w2v)
        np.testing.assert_allclose(logits.numpy(), expected["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("fc3.bias"), "missing fc3.bias"),
        (lambda s: s.update({"fc4.weight": torch.zeros(1)}), "unexpected fc4.weight"),
        (
            lambda s: s.update({"fc1.weight": torch.zeros(512, 1024)}),
            r"fc1.weight: shape \[512, 1024\] in the checkpoint, \[512, 768\] in the model",
        ),
    ],
)
def test_strict_loading_names_the_key(tmp_path: Path, edit, message: str) -> None:
    state = dict(torch.load(FIXTURE / "clam_head.pth", weights_only=True))
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message):
        CLAMHead.from_checkpoint(tmp_path / "bad.pth")


def test_unreadable_and_stateless_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        CLAMHead.from_checkpoint(tmp_path / "junk.pth")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="no state dict.*epoch, optimizer"):
        CLAMHead.from_checkpoint(tmp_path / "none.pth")


def save_encoder(folder: Path, model: torch.nn.Module, rate: int, normalize: bool) -> Path:
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=rate, padding_value=0.0, do_normalize=normalize
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A MERT-like 24 kHz and a wav2vec2-like 16 kHz encoder, tiny and random, on disk."""
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    mert_config = MertLikeConfig(**TINY)
    mert_config.conv_pos_batch_norm = False  # to build it here; saved without it, as MERT's is
    mert = MertLikeModel(mert_config)
    del mert.config.conv_pos_batch_norm
    wav2vec2 = Wav2Vec2Model(Wav2Vec2Config(**TINY))
    return {
        "mert": save_encoder(root / "mert", mert, 24000, normalize=False),
        "wav2vec2": save_encoder(root / "wav2vec2", wav2vec2, 16000, normalize=True),
    }


def tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * PROTOCOL_RATE)) / PROTOCOL_RATE
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t) + rng.normal(0, 0.01, t.size)
    return x.astype(np.float32)


def test_conv_pos_batch_norm_workaround_triggers_on_a_config_lacking_it(encoders) -> None:
    mert, mert_record = load_stream("mert", encoders["mert"], "cpu", trust_remote_code=True)
    w2v, w2v_record = load_stream("wav2vec2", encoders["wav2vec2"], "cpu")
    assert (mert_record["loader"], w2v_record["loader"]) == ("AutoModel (remote code)", "AutoModel")
    assert mert_record["conv_pos_batch_norm_set_false"] is True
    assert mert.model.config.conv_pos_batch_norm is False
    assert w2v_record["conv_pos_batch_norm_set_false"] is False
    assert (mert_record["hidden_states_from"], w2v_record["hidden_states_from"]) == (
        "layer hooks",
        "output_hidden_states",
    )

    def other_error(config) -> None:
        raise AttributeError("'Cfg' object has no attribute 'something_else'")

    with pytest.raises(AttributeError, match="something_else"):
        build_with_conv_pos_fallback(other_error, HubertConfig())


def test_hooks_give_the_same_hidden_states_as_the_model(encoders) -> None:
    stream, _ = load_stream("wav2vec2", encoders["wav2vec2"], "cpu")
    values = torch.from_numpy(tone(2.0, 1)[:32000]).unsqueeze(0)
    with torch.no_grad():
        own = hidden_states(stream.model, values, hooks=False)
        hooked = hidden_states(stream.model, values, hooks=True)
    assert len(own) == len(hooked) == 13
    for a, b in zip(own, hooked, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("seconds", [100.0, 30.0])
def test_streams_take_the_centred_90s_at_their_own_rate(encoders, seconds: float) -> None:
    track = tone(seconds, 2)
    for name, rate in (("mert", 24000), ("wav2vec2", 16000)):
        stream, record = load_stream(name, encoders[name], "cpu")
        assert record["rate"] == stream.view.rate == rate
        view = detector_view(track, stream.view)
        full = resample(track, PROTOCOL_RATE, rate)
        assert len(view) == 90 * rate
        if len(full) > len(view):
            start = (len(full) - len(view)) // 2
            np.testing.assert_array_equal(view, full[start : start + len(view)])
        else:
            np.testing.assert_array_equal(view[: len(full)], full)
            assert not view[len(full) :].any()


def test_features_stack_the_13_states_and_average_over_time(encoders, monkeypatch) -> None:
    seen: list[list[torch.Tensor]] = []

    def spy(model: torch.nn.Module, values: torch.Tensor, hooks: bool) -> list[torch.Tensor]:
        seen.append(hidden_states(model, values, hooks))
        return seen[-1]

    monkeypatch.setattr(clam, "hidden_states", spy)
    track = tone(100.0, 2)
    for name, frame_rate in (("mert", 75), ("wav2vec2", 50)):
        stream, _ = load_stream(name, encoders[name], "cpu")
        features = stream.features([track])
        states = seen[-1]
        assert features.shape == (1, 13, WIDTH) and features.dtype == torch.float32
        assert states[0].shape == (1, 90 * frame_rate - 1, WIDTH)  # 320x conv downsampling
        assert torch.equal(features, torch.stack([s.mean(dim=1) for s in states], dim=1))


def test_full_width_streams_feed_the_fixture_head(tmp_path: Path) -> None:
    torch.manual_seed(1)
    wide = {**TINY, "hidden_size": 768, "num_attention_heads": 4}
    folder = save_encoder(tmp_path / "w2v768", Wav2Vec2Model(Wav2Vec2Config(**wide)), 16000, True)
    stream, record = load_stream("wav2vec2", folder, "cpu", seconds=1.0)
    features = stream.features([tone(3.0, 3)])
    assert (record["states"], record["width"]) == (13, 768)
    assert features.shape == (1, 13, 768)
    head = CLAMHead.from_checkpoint(FIXTURE / "clam_head.pth")
    with torch.no_grad():
        assert torch.isfinite(head(features, features)).all()


def head_dims(folder: Path) -> tuple[int, int]:
    """(hidden states, width) of an encoder snapshot, from its config.json."""
    config = json.loads((folder / "config.json").read_text())
    return config["num_hidden_layers"] + 1, config["hidden_size"]


def weights_dir(
    tmp_path: Path, encoders: dict[str, Path], pin_mert: bool, mert: Path = MERT
) -> Path:
    """Head + mert/ + wav2vec2/: MERT the fixture snapshot, or `mert` (e.g. the stand-in)."""
    card = cards()["clam"]
    folder = tmp_path / "weights"
    folder.mkdir()
    sources = {"mert": mert, "wav2vec2": encoders["wav2vec2"]}
    (mert_states, mert_width), (w2v_states, w2v_width) = map(head_dims, sources.values())
    torch.manual_seed(2)
    head = CLAMHead(mert_states, w2v_states, mert_width, w2v_width)
    torch.save({"model_state_dict": head.state_dict()}, folder / card.files[0].name)
    for name, source in sources.items():
        (folder / name).symlink_to(source)
    if pin_mert:
        meta = tmp_path / "mert-pinned"
        for item in mert.iterdir():
            (meta / item.name).parent.mkdir(parents=True, exist_ok=True)
            (meta / item.name).symlink_to(item)
        record = meta / ".cache" / "huggingface" / "download" / "config.json.metadata"
        record.parent.mkdir(parents=True)
        revision = next(e.revision for e in card.encoders if e.name == "mert")
        record.write_text(f"{revision}\netag\n1700000000.0\n")
        (folder / "mert").unlink()
        (folder / "mert").symlink_to(meta)
    return folder


def test_load_and_score_one_track_at_a_time(tmp_path: Path, encoders) -> None:
    card = cards()["clam"]
    assert backend(card).load is load
    detector = load(card, weights_dir(tmp_path, encoders, pin_mert=True), LoadContext())
    tracks = [tone(95.0, 4), tone(20.0, 5)]
    seen: list[tuple[int, ...]] = []
    detector.head.crossAttention1.register_forward_hook(lambda _m, a, _o: seen.append(a[0].shape))
    logits: list[torch.Tensor] = []
    detector.head.fc3.register_forward_hook(lambda _m, _a, out: logits.append(out))
    probs = detector.score(tracks)
    assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probs)
    mert_width = head_dims(MERT)[1]
    assert seen == [(1, mert_width), (1, mert_width)]  # one track per head forward
    np.testing.assert_allclose(probs, torch.sigmoid(torch.cat(logits)[:, 0]).numpy(), atol=1e-7)
    prov = detector.provenance
    assert prov["encoder_dtype"] == "float32" and prov["head_forward"] == "one track at a time"
    mert = prov["encoders"]["mert"]
    assert mert["trust_remote_code"] is False and mert["loader"] == LOADER
    assert mert["class"] == "HubertModel" and mert["hidden_states_from"] == "output_hidden_states"
    assert mert["revision"] == card.encoders[0].revision
    assert prov["encoders"]["wav2vec2"]["loader"] == "AutoModel"
    assert len(detector.weights_sha256) == 64


def opted_in() -> DetectorCard:
    """The clam card with MERT's own code opted in (`trust_remote_code: true`)."""
    card = cards()["clam"]
    refs = tuple(replace(e, trust_remote_code=e.name == "mert") for e in card.encoders)
    return replace(card, encoders=refs)


def test_mert_needs_no_pinned_revision_without_remote_code(tmp_path: Path, encoders) -> None:
    detector = load(cards()["clam"], weights_dir(tmp_path, encoders, pin_mert=False), LoadContext())
    mert = detector.provenance["encoders"]["mert"]
    assert mert["revision"] == "unverified" and mert["loader"] == LOADER


def test_remote_code_needs_the_pinned_revision(tmp_path: Path, encoders) -> None:
    folder = weights_dir(tmp_path, encoders, pin_mert=False, mert=encoders["mert"])
    with pytest.raises(Unavailable, match="not verifiably m-a-p/MERT-v1-95M@12af15fef9"):
        load(opted_in(), folder, LoadContext())


def test_opted_in_remote_code_runs_at_the_pinned_revision(tmp_path: Path, encoders) -> None:
    folder = weights_dir(tmp_path, encoders, pin_mert=True, mert=encoders["mert"])
    detector = load(opted_in(), folder, LoadContext())
    mert = detector.provenance["encoders"]["mert"]
    assert mert["trust_remote_code"] is True and mert["loader"] == "AutoModel (remote code)"
    assert (mert["class"], mert["hidden_states_from"]) == ("MertLikeModel", "layer hooks")
    assert mert["conv_pos_batch_norm_set_false"] is True
    assert all(0.0 <= p <= 1.0 for p in detector.score([tone(3.0, 6)]))


def test_a_mert_checkpoint_that_does_not_fit_is_unavailable(tmp_path: Path, encoders) -> None:
    broken = tmp_path / "mert-broken"
    shutil.copytree(MERT, broken)
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    del state["encoder.layer_norm.weight"]
    torch.save(state, broken / "pytorch_model.bin")
    folder = weights_dir(tmp_path, encoders, pin_mert=False, mert=broken)
    with pytest.raises(Unavailable, match="clam: mert: .*missing encoder.layer_norm") as info:
        load(cards()["clam"], folder, LoadContext())
    assert "fetch model clam" in info.value.hint


def test_cli_scores_a_file_with_a_weights_folder(
    tmp_path: Path, encoders, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`artifactbench score FILE --model clam --weights DIR` (head + mert/ + wav2vec2/), MERT
    the fixture snapshot through HubertModel; in this process, to compare with a direct load."""
    from artifactbench.audio.decode import decode_audio
    from artifactbench.audio.encode import encode_audio
    from artifactbench.cli import main

    folder = weights_dir(tmp_path, encoders, pin_mert=True)
    song = tmp_path / "song.flac"
    song.write_bytes(encode_audio(tone(12.0, 7), 44100, "flac"))
    argv = ["artifactbench", "score", str(song), "--model", "clam", "--weights", str(folder),
            "--json"]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    direct = load(cards()["clam"], folder, LoadContext()).score([decode_audio(song)])[0]
    assert record["model"] == "clam" and record["prob"] == pytest.approx(direct, abs=1e-6)
