"""The open ArtifactNet: sizes, the librosa-compatible front end, each forensic channel on signals
whose answer is known, the mask bound, and the ONNX export of the whole forward."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from artifactbench.detectors.artifactnet_open.features import (
    CHANNELS,
    ForensicFeatures,
    MagnitudeSTFT,
    hpss,
    median_filter,
    mel_filterbank,
    reference_path,
)
from artifactbench.detectors.artifactnet_open.model import (
    ArtifactNetConfig,
    ArtifactNetOpen,
    ArtifactUNet,
    parameter_counts,
)

RATE = 44100
SEGMENT = 176400
HOP = 512


@pytest.fixture(scope="module")
def front_end() -> tuple[MagnitudeSTFT, ForensicFeatures]:
    return MagnitudeSTFT(2048, HOP), ForensicFeatures(RATE, 2048, 128)


def channels(signal: np.ndarray, front_end: tuple[MagnitudeSTFT, ForensicFeatures]) -> dict:
    """The seven channels of a signal taken as its own residual, by name."""
    stft, features = front_end
    with torch.no_grad():
        out = features(stft(torch.from_numpy(signal.astype(np.float32))[None]))[0]
    return dict(zip(CHANNELS, out.numpy(), strict=True))


def tone(freq: float, start_s: float = 0.0) -> np.ndarray:
    t = np.arange(SEGMENT) / RATE
    return np.where(t >= start_s, 0.5 * np.sin(2 * np.pi * freq * t), 0.0)


def test_parameter_counts_match_the_paper() -> None:
    counts = parameter_counts(ArtifactNetOpen())
    assert abs(counts["unet"] - 3.6e6) <= 0.36e6
    assert abs(counts["classifier"] - 0.4e6) <= 0.04e6
    assert counts["total"] == counts["unet"] + counts["classifier"]


@pytest.mark.parametrize("config", [ArtifactNetConfig(), ArtifactNetConfig.small()])
def test_forward_shapes(config: ArtifactNetConfig) -> None:
    model = ArtifactNetOpen(config).eval()
    audio = 0.1 * torch.randn(2, SEGMENT)
    with torch.no_grad():
        mag = model.stft(audio)
        mask, residual = model.unet(mag)
        feats = model.features(residual)
        prob = model(audio)
    frames = 1 + SEGMENT // HOP
    assert mag.shape == (2, config.n_fft // 2 + 1, frames)
    assert mask.shape == residual.shape == mag.shape
    assert feats.shape == (2, 7, config.n_mels, frames)
    assert prob.shape == (2,)
    assert bool(((prob > 0) & (prob < 1)).all())


def test_stft_and_mel_match_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, 20000).astype(np.float32)
    ours = MagnitudeSTFT(2048, HOP)(torch.from_numpy(audio)[None])[0].detach().numpy()
    ref = np.abs(librosa.stft(audio, n_fft=2048, hop_length=HOP, pad_mode="reflect"))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3 * ref.max())
    fb = librosa.filters.mel(sr=RATE, n_fft=2048, n_mels=128)
    np.testing.assert_allclose(mel_filterbank(RATE, 2048, 128), fb, rtol=1e-4, atol=1e-7)


def test_hpss_matches_librosa() -> None:
    """Masks agree with librosa.decompose.hpss(mask=True) to 1e-5 on a fixed spectrogram with
    harmonic lines, percussive columns, noise, and an all-zero region (the 0/0 case)."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    mag = rng.exponential(0.1, (200, 90)).astype(np.float32)
    mag[[20, 55, 130], :] += 3.0
    mag[:, [10, 40, 41, 77]] += 2.0
    mag[150:, 60:] = 0.0
    for power, margin in [(2.0, 1.0), (1.0, 2.0)]:
        ref_h, ref_p = librosa.decompose.hpss(
            mag, kernel_size=31, power=power, mask=True, margin=margin
        )
        h, p = hpss(torch.from_numpy(mag)[None], kernel=31, power=power, margin=margin)
        np.testing.assert_allclose(h[0].numpy(), ref_h, atol=1e-5)
        np.testing.assert_allclose(p[0].numpy(), ref_p, atol=1e-5)


def test_median_filter_torch_and_export_paths_agree(monkeypatch) -> None:
    """The unfold + median path (torch), the scipy kernel (CPU inference) and the stacked TopK
    path (ONNX export) pick the same element of every window, along both axes, ties included."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.integers(0, 5, (2, 40, 33)).astype(np.float32))
    with reference_path():
        eager = {dim: median_filter(x, 7, dim) for dim in (-1, -2)}
    for dim in (-1, -2):
        assert torch.equal(median_filter(x, 7, dim), eager[dim])
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    for dim in (-1, -2):
        assert torch.equal(median_filter(x, 7, dim), eager[dim])


def test_mel_res_peaks_at_the_tone(front_end) -> None:
    ch = channels(tone(1000.0), front_end)
    peak = int(ch["mel_res"][:, 100].argmax())
    fb = mel_filterbank(RATE, 2048, 128)
    centre_hz = float(np.argmax(fb[peak])) * RATE / 2048
    assert 900 < centre_hz < 1100


def test_steady_tone_is_harmonic_and_clicks_are_percussive(front_end) -> None:
    steady = channels(tone(1000.3), front_end)
    clicks_signal = np.zeros(SEGMENT)
    clicks_signal[:: RATE // 8] = 1.0
    clicks = channels(clicks_signal, front_end)
    inner = slice(20, -20)

    def energy(ch: dict, name: str) -> float:
        return float(np.exp(ch[name][:, inner]).sum())

    assert energy(steady, "mel_H") > 10 * energy(steady, "mel_P")
    assert energy(clicks, "mel_P") > 10 * energy(clicks, "mel_H")
    loudest = int(steady["mel_res"][:, 100].argmax())
    assert steady["hp_ratio"][loudest, inner].min() > 0
    click_frame = 20 + int(clicks["mel_res"][:, inner].sum(axis=0).argmax())
    assert np.median(clicks["hp_ratio"][:, click_frame]) < 0


def test_spectral_flux_fires_at_the_onset_only(front_end) -> None:
    """A tone starting at 1 s: the flux peaks at the onset frame and is < 1% of that after it."""
    flux = channels(tone(1000.3, start_s=1.0), front_end)["spectral_flux"].mean(axis=0)
    onset = int(np.argmax(flux))
    assert abs(onset - RATE / HOP) <= 2
    assert flux[: onset - 4].max() == 0.0
    assert flux[onset + 4 : -4].max() < 0.01 * flux[onset]


def test_deltas_of_an_exponential_swell(front_end) -> None:
    """Amplitude exp(2t) makes the log mel rise linearly: delta is the constant slope, delta2 ~0."""
    t = np.arange(SEGMENT) / RATE
    ch = channels(0.05 * np.exp(2.0 * t) * np.sin(2 * np.pi * 1000.3 * t), front_end)
    loudest = int(ch["mel_res"][:, 100].argmax())
    slope = 2.0 * HOP / RATE
    inner = slice(10, -10)
    np.testing.assert_allclose(ch["delta"][loudest, inner], slope, rtol=0.05)
    assert np.abs(ch["delta2"][loudest, inner]).max() < 0.1 * slope


@pytest.mark.parametrize(("bounded", "low", "high"), [(True, 0.49, 0.5), (False, 0.9, 1.0)])
def test_mask_bound(bounded: bool, low: float, high: float) -> None:
    """With the head pushed to saturate, the bounded mask stops at 0.5 and the ablation near 1."""
    unet = ArtifactUNet(dataclasses.replace(ArtifactNetConfig.small(), bounded=bounded))
    mag = torch.rand(2, 513, 40) * 5
    with torch.no_grad():
        _, natural = unet.eval()(mag)
        unet.head.bias.fill_(20.0)
        mask, residual = unet(mag)
    assert bool((natural <= (0.5 if bounded else 1.0) * mag + 1e-6).all())
    assert float(mask.min()) >= low and float(mask.max()) <= high
    torch.testing.assert_close(residual, mask * mag)


def test_onnx_export_matches_torch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = ArtifactNetOpen().eval()
    path = tmp_path / "artifactnet_open.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, SEGMENT),),
        str(path),
        input_names=["audio"],
        output_names=["p_ai"],
        dynamic_axes={"audio": {0: "batch"}, "p_ai": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "audio" and inp.type == "tensor(float)" and inp.shape[1] == SEGMENT
    assert len(session.get_outputs()[0].shape) == 1
    audio = (0.3 * torch.randn(3, SEGMENT)).clamp(-1, 1)
    with torch.no_grad():
        expected = model(audio).numpy()
    (got,) = session.run(None, {"audio": audio.numpy()})
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shipped_model_scores_the_same_on_cuda_as_on_cpu() -> None:
    """Every tensor the front end makes lives on its input's device, and the scores agree."""
    from artifactbench.detectors.base import LoadContext
    from artifactbench.detectors.registry import backend, resolve_models

    card = resolve_models("artifactnet-open-demo")[0]
    rng = np.random.default_rng(0)
    width = card.view.rate * card.view.seconds
    views = [(0.1 * rng.standard_normal((card.view.n_chunks, width))).astype(np.float32)
             for _ in range(3)]  # fmt: skip
    on = {d: backend(card).load(card, None, LoadContext(device=d)).score(views)
          for d in ("cpu", "cuda")}  # fmt: skip
    assert np.allclose(on["cpu"], on["cuda"], atol=1e-4)
