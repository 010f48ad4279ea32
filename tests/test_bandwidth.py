"""Effective bandwidth (Appendix C): analytic 95% points of flat noise, tones, silence, the three
residual models, Table XI arithmetic and the Fig. 5 plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from artifactbench.experiments.bandwidth.measure import (
    RESIDUAL_MODELS,
    bandwidth_table,
    effective_bandwidth,
    frame_bandwidths,
    plot_bandwidth,
    residual_model,
    uniform_magnitude,
)

RATE = 44100
N_FFT = 2048
BIN = RATE / N_FFT  # 21.5 Hz
PACKAGED = Path(__file__).resolve().parents[1] / "artifactbench/data/models/artifactnet_open.pt"


def brickwall_noise(lo: float, hi: float, seconds: float, seed: int = 0) -> np.ndarray:
    """White noise with every FFT bin outside [lo, hi] Hz zeroed: a band edge with no
    transition band, so the analytic 95% point of the flat band is exact."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(spectrum, n)


def symmetric_cosine(k: int, periods: int = 40) -> np.ndarray:
    """A cosine centred on bin k, 1024 * periods + 1 samples long: cos is even about sample 0
    and about the last sample, so the reflect padding continues it exactly and every frame, the
    edge ones included, holds the same pure Hann main lobe: 1/16, 1/4, 1/16 of the power (1/4,
    1/2, 1/4 of the magnitude) in bins k - 1, k, k + 1."""
    n = np.arange(1024 * periods + 1)
    return np.cos(2 * np.pi * k * n / N_FFT)


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 5000.0), (2000.0, 6000.0)])
def test_flat_band_noise_has_the_analytic_95_point(lo: float, hi: float):
    """Flat from lo to hi, 95% of the energy lies below lo + 0.95 (hi - lo).

    The summed spectrum of 20 s of noise is smooth, so its f* is that point within one bin
    (bin-centre quantisation; over 30 seeds the error stayed within +-0.65 bin). The per-frame
    mean sits lower: each frame's f* is a bin centre, on average half a bin below where the
    energy is reached, and Hann-windowed noise bins are correlated, which moves the first
    crossing a further ~0.4 bin down (over 30 seeds: -0.6 to -1.26 bins). So it is asserted
    within 1.5 bins below the point and never above it.
    """
    mag = uniform_magnitude(brickwall_noise(lo, hi, 20.0))
    expected = lo + 0.95 * (hi - lo)
    summed = effective_bandwidth(mag, RATE, N_FFT, average="summed")
    assert abs(summed - expected) <= BIN
    frames = effective_bandwidth(mag, RATE, N_FFT)
    assert -1.5 * BIN <= frames - expected <= 0.0
    # Any frame's f* is a bin centre inside the band: nothing leaks past the brick wall.
    per_frame = frame_bandwidths(mag, RATE, N_FFT)
    assert np.isfinite(per_frame).all() and per_frame.size == mag.shape[1]
    assert np.allclose(per_frame / BIN, np.round(per_frame / BIN))
    assert lo < per_frame.min() and per_frame.max() <= hi + BIN


@pytest.mark.parametrize("hi", [5000.0, 11025.0, 16000.0])
def test_band_limited_noise_reaches_its_band_edge(hi: float):
    """As the fraction goes to 1, f* of band-limited noise is its band edge: at 99.9% it lies
    within one bin plus the 0.1% of the band the fraction leaves out, for both averages."""
    mag = uniform_magnitude(brickwall_noise(0.0, hi, 10.0, seed=4))
    for average in ("summed", "frames"):
        f = effective_bandwidth(mag, RATE, N_FFT, fraction=0.999, average=average)
        assert abs(f - hi) <= 0.001 * hi + BIN, average


def test_flat_magnitude_band_is_exact():
    """A spectrum given directly, 1.0 in bins 100..309 (210 bins): 95% is 199.5 bins' worth,
    first reached in bin 299 (200 bins), for |X|^2 and for |X| alike, in every frame."""
    mag = np.zeros((N_FFT // 2 + 1, 7))
    mag[100:310] = 1.0
    for energy in ("power", "magnitude"):
        for average in ("frames", "summed"):
            f = effective_bandwidth(mag, RATE, N_FFT, energy=energy, average=average)
            assert f == pytest.approx(299 * BIN, abs=1e-9)


def test_pure_tone_lands_on_its_bin_and_energy_choice_matters():
    k = 100
    mag = uniform_magnitude(symmetric_cosine(k))
    per_frame = frame_bandwidths(mag, RATE, N_FFT, fraction=0.5)
    assert np.allclose(per_frame, k * BIN)
    assert effective_bandwidth(mag, RATE, N_FFT, fraction=0.5) == pytest.approx(k * BIN)
    # 95%: the upper Hann neighbour holds 1/6 of the power, so f* is one bin above the tone.
    assert effective_bandwidth(mag, RATE, N_FFT) == pytest.approx((k + 1) * BIN)
    # Cumulative share through bin k: 5/6 of |X|^2 but only 3/4 of |X|. At 80% they part.
    assert effective_bandwidth(mag, RATE, N_FFT, 0.8, "power") == pytest.approx(k * BIN)
    assert effective_bandwidth(mag, RATE, N_FFT, 0.8, "magnitude") == pytest.approx((k + 1) * BIN)


def test_silent_frames_are_skipped_and_all_silence_is_nan():
    tone = uniform_magnitude(symmetric_cosine(200, periods=8))
    base = effective_bandwidth(tone, RATE, N_FFT)
    assert base == pytest.approx(201 * BIN)
    # Exact zeros and a floor-level hiss (as MagnitudeSTFT renders digital silence) both count
    # as silence: were they frames of f* = 0 Hz, the mean would drop to a fifth.
    padded = np.concatenate([np.zeros((1025, 20)), tone, np.full((1025, 20), 1e-6)], axis=1)
    per_frame = frame_bandwidths(padded, RATE, N_FFT)
    assert np.isnan(per_frame[:20]).all() and np.isnan(per_frame[-20:]).all()
    assert effective_bandwidth(padded, RATE, N_FFT) == pytest.approx(base)
    assert effective_bandwidth(padded, RATE, N_FFT, average="summed") == pytest.approx(base)
    # A quiet but real frame is not silence.
    quiet = padded.copy()
    quiet[50, 0] = 1e-3
    assert frame_bandwidths(quiet, RATE, N_FFT)[0] == pytest.approx(50 * BIN)

    silent = uniform_magnitude(np.zeros(RATE))
    assert math.isnan(effective_bandwidth(silent, RATE, N_FFT))
    assert math.isnan(effective_bandwidth(silent, RATE, N_FFT, average="summed"))
    assert math.isnan(effective_bandwidth(np.zeros((1025, 0)), RATE, N_FFT))


def test_inputs_are_checked():
    mag = np.ones((513, 4))
    with pytest.raises(ValueError, match="n_fft 2048 gives 1025"):
        effective_bandwidth(mag, RATE, N_FFT)
    with pytest.raises(ValueError, match="fraction"):
        effective_bandwidth(mag, RATE, 1024, fraction=0.0)
    with pytest.raises(ValueError, match="energy"):
        effective_bandwidth(mag, RATE, 1024, energy="db")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="average"):
        effective_bandwidth(mag, RATE, 1024, average="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mono"):
        uniform_magnitude(np.zeros((2, 4096)))


def test_uniform_stft_is_the_models_framing():
    """The numpy STFT equals librosa's with reflect padding (and so MagnitudeSTFT's grid)."""
    librosa = pytest.importorskip("librosa")
    x = brickwall_noise(0, 20000, 0.5, seed=3).astype(np.float32)
    ours = uniform_magnitude(x)
    ref = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=512, pad_mode="reflect"))
    assert ours.shape == ref.shape == (1025, 1 + x.size // 512)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_hpss_residual_model():
    model = residual_model("hpss")
    assert (model.name, model.n_fft, model.hop, model.rate) == ("hpss", 2048, 512, RATE)
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE) / RATE
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    res = model(audio)
    assert res.shape == (1025, 1 + audio.size // 512) == (1025, 173)
    mag = uniform_magnitude(audio)
    assert (res <= mag + 1e-6).all()
    # The steady tone is harmonic: HPSS keeps most of the noise floor but little of the tone.
    tone_bin = round(440 / BIN)
    assert res[tone_bin].sum() < 0.05 * mag[tone_bin].sum()
    assert res[600:].sum() > 0.3 * mag[600:].sum()
    # Blocks with kernel // 2 frames of context reproduce the whole-track computation.
    from artifactbench.experiments.bandwidth.measure import _hpss_model

    np.testing.assert_allclose(_hpss_model(chunk_frames=40)(audio), res, rtol=1e-6, atol=1e-9)
    assert 0 < model.bandwidth(audio) < RATE / 2
    with pytest.raises(ValueError, match="no weights"):
        residual_model("hpss", PACKAGED)


def test_artifactnet_open_residual_on_its_own_grid():
    import torch

    from artifactbench.detectors.artifactnet_open.detector import read_weights

    model = residual_model("artifactnet-open", PACKAGED)
    net, _, _ = read_weights(PACKAGED)
    n_fft, seg = net.config.n_fft, net.config.segment_samples
    assert (model.n_fft, model.hop) == (n_fft, net.config.hop) == (1024, 512)
    assert model.provenance["weights"] == str(PACKAGED)
    audio = brickwall_noise(0, 16000, 4.5, seed=1).astype(np.float32) * 0.1
    res = model(audio)
    # One 4 s segment (345 frames) then the 0.5 s tail framed on its own (44 frames).
    assert res.shape == (n_fft // 2 + 1, (1 + seg // 512) + (1 + (audio.size - seg) // 512))
    with torch.inference_mode():
        first = net.stft(torch.from_numpy(audio[None, :seg]))[0].numpy()
    # The bounded mask keeps the residual within [0, 0.5 |X|].
    assert (res >= 0).all() and (res[:, : first.shape[1]] <= 0.5 * first + 1e-6).all()
    f = effective_bandwidth(res, RATE, n_fft)
    assert 0 < f < RATE / 2 and f == pytest.approx(model.bandwidth(audio))
    # A tail shorter than n_fft is dropped; the default weights are the packaged model.
    assert residual_model("artifactnet-open")(audio[: seg + 500]).shape[1] == 1 + seg // 512


def test_artifactnet_open_without_weights_says_how_to_get_them(tmp_path: Path):
    from artifactbench.detectors.base import Unavailable

    with pytest.raises(Unavailable, match="artifactbench train artifactnet-open --bench demo"):
        residual_model("artifactnet-open", tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Unavailable, match="cannot read"):
        residual_model("artifactnet-open", tmp_path / "bad.pt")


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="hpss, artifactnet-open, demucs") as err:
        residual_model("spleeter")
    assert "'spleeter'" in str(err.value)
    assert tuple(RESIDUAL_MODELS) == ("hpss", "artifactnet-open", "demucs")


def test_demucs_without_weights_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from artifactbench.audio.separation import DemucsUnavailable

    monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(tmp_path))
    with pytest.raises(DemucsUnavailable):
        residual_model("demucs")


def test_demucs_residual_with_a_tiny_bag(tmp_path: Path):
    """A real (tiny, random) HTDemucs on disk: the residual is |uniform STFT| of mixture minus
    the stems, exactly as the separator computes it."""
    pytest.importorskip("demucs")
    import torch

    from artifactbench.audio.separation import load_separator
    from tests.test_separation import save_safetensors, tiny_model, write_yaml

    save_safetensors(tiny_model(0), tmp_path / "aaaa0000.safetensors")
    write_yaml(tmp_path, ["aaaa0000"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = residual_model("demucs", tmp_path)
        audio = brickwall_noise(0, 8000, 1.0, seed=2).astype(np.float32) * 0.2
        res = model(audio)
        direct = load_separator(tmp_path).residual(audio[None])[0].numpy()
    finally:
        torch.set_num_threads(threads)
    assert (model.n_fft, model.hop) == (2048, 512)
    assert res.shape == (1025, 1 + audio.size // 512)
    np.testing.assert_allclose(res, uniform_magnitude(direct), rtol=1e-4, atol=1e-5)
    assert model.provenance["files"].keys() == {"htdemucs.yaml", "aaaa0000.safetensors"}


def test_bandwidth_table_by_hand():
    rows = [
        ("real_a", "real", 16000.0),
        ("real_a", "real", 18000.0),
        ("real_b", "real", 14000.0),
        ("gen_x", "ai", 8000.0),
        ("gen_x", "ai", 10000.0),
        ("gen_x", "ai", math.nan),  # a silent track
        ("gen_y", "ai", 12000.0),
        ("gen_z", "ai", math.nan),
    ]
    table = bandwidth_table(rows)
    subsets = table["subsets"]
    assert list(subsets) == ["real_a", "real_b", "gen_y", "gen_x", "gen_z"]
    assert subsets["real_a"] == {"label": "real", "n": 2, "mean_hz": 17000.0, "std_hz": 1000.0}
    assert subsets["gen_x"] == {"label": "ai", "n": 2, "mean_hz": 9000.0, "std_hz": 1000.0}
    assert subsets["gen_z"] == {"label": "ai", "n": 0, "mean_hz": None, "std_hz": None}
    # Class means pool tracks: real (16 + 18 + 14) / 3 = 16 kHz, AI (8 + 10 + 12) / 3 = 10 kHz.
    assert table["real"] == {"n": 3, "mean_hz": 16000.0}
    assert table["ai"] == {"n": 3, "mean_hz": 10000.0}
    assert table["ratio_ai_real"] == pytest.approx(10 / 16)
    assert (table["n_tracks"], table["n_skipped"]) == (8, 2)

    only_ai = bandwidth_table([("g", "ai", 5000.0)])
    assert only_ai["real"] == {"n": 0, "mean_hz": None} and only_ai["ratio_ai_real"] is None
    with pytest.raises(ValueError, match="mixes labels"):
        bandwidth_table([("s", "real", 1.0), ("s", "ai", 2.0)])
    with pytest.raises(ValueError, match="'real' or 'ai'"):
        bandwidth_table([("s", "fake", 1.0)])


def test_plot_writes_a_png(tmp_path: Path):
    table = bandwidth_table(
        [("real_a", "real", 16000.0), ("gen_x", "ai", 9000.0), ("gen_y", "ai", 11000.0)]
        + [("gen_z", "ai", math.nan)]
    )
    path = plot_bandwidth(table, tmp_path / "bandwidth.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # One class only still draws (no ratio in the title, one mean line).
    one = plot_bandwidth(bandwidth_table([("g", "ai", 5000.0)]), tmp_path / "one.png")
    assert one.stat().st_size > 1000
    # A caller's own title (another definition of f*) replaces the default first line.
    titled = plot_bandwidth(table, tmp_path / "titled.png", title="99.9% magnitude")
    assert titled.read_bytes() != data
