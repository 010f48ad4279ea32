"""The synthesizer and each AI-generator mechanism leave the traces they claim, for real."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from artifactbench.benches import artifacts
from artifactbench.benches.synth import RATE, synthesize, tape_vintage


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return synthesize(np.random.default_rng(7), 3.0)


def _mean_spectrum(audio: np.ndarray, nperseg: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    freqs, power = signal.welch(audio.mean(axis=0), RATE, nperseg=nperseg)
    return freqs, power


def _band_energy(audio: np.ndarray, lo: float, hi: float = RATE / 2 + 1) -> float:
    freqs, power = _mean_spectrum(audio)
    return float(power[(freqs >= lo) & (freqs < hi)].sum())


def _prominence_db(audio: np.ndarray, freq: float) -> float:
    """Level at `freq` above the median of the surrounding +-200 Hz (a tone sticks out)."""
    freqs, power = _mean_spectrum(audio)
    level = 10 * np.log10(power + 1e-30)
    i = int(np.argmin(np.abs(freqs - freq)))
    around = np.r_[level[max(i - 40, 0) : max(i - 3, 0)], level[i + 4 : i + 41]]
    return float(level[i] - np.median(around))


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10((reference**2).sum() / ((reference - test) ** 2).sum()))


# ---------------------------------------------------------------------------------------------
# synthesizer


def test_synth_is_a_pure_function_of_the_generator() -> None:
    a = synthesize(np.random.default_rng(3), 2.0)
    b = synthesize(np.random.default_rng(3), 2.0)
    c = synthesize(np.random.default_rng(4), 2.0)
    assert np.array_equal(a, b)
    assert a.shape == (2, 2 * RATE) and a.dtype == np.float32
    assert not np.allclose(a[:, : c.shape[1]], c[:, : a.shape[1]])


@pytest.mark.parametrize("style", ["studio", "live"])
def test_synth_is_normalised_stereo_music(style: str) -> None:
    for seed in range(3):
        audio = synthesize(np.random.default_rng(seed), 2.5, style)
        peak = float(np.abs(audio).max())
        assert 0.7 < peak < 0.95
        assert np.isfinite(audio).all()
        assert not np.allclose(audio[0], audio[1])  # panning and reverb make it stereo
        # broadband, like a mix: bass and highs both present
        assert _band_energy(audio, 40, 300) > 0
        assert _band_energy(audio, 5000, 16000) > 1e-7 * _band_energy(audio, 0)


def test_tape_vintage_rolls_off_the_top(music: np.ndarray) -> None:
    old = tape_vintage(music, np.random.default_rng(0))
    assert old.shape == music.shape
    assert np.abs(old).max() < 0.95
    ratio = _band_energy(old, 14000) / _band_energy(music, 14000)
    assert ratio < 1e-2


# ---------------------------------------------------------------------------------------------
# residual vector quantization


def test_mdct_reconstructs_perfectly(music: np.ndarray) -> None:
    coeffs = artifacts.mdct_frames(music, 64)
    assert coeffs.shape[-1] == 64
    back = artifacts.imdct_frames(coeffs, music.shape[1])
    assert np.abs(back - music).max() < 1e-5


@pytest.fixture(scope="module")
def codebooks() -> np.ndarray:
    corpus = [synthesize(np.random.default_rng(100 + i), 2.0) for i in range(3)]
    vectors = np.concatenate([artifacts.mdct_frames(a, 32).reshape(-1, 32) for a in corpus])
    return artifacts.fit_rvq(vectors, stages=6, size=128, rng=np.random.default_rng(0))


def test_rvq_error_falls_with_every_stage_on_unseen_music(
    music: np.ndarray, codebooks: np.ndarray
) -> None:
    vectors = artifacts.mdct_frames(music, 32).reshape(-1, 32)
    errors = [
        float(((vectors - artifacts.rvq_quantize(vectors, codebooks[:k])) ** 2).sum())
        for k in range(1, len(codebooks) + 1)
    ]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 0.5 * errors[0]


def test_rvq_bottleneck_changes_the_waveform(music: np.ndarray, codebooks: np.ndarray) -> None:
    shallow = artifacts.rvq_bottleneck(music, codebooks[:2])
    deep = artifacts.rvq_bottleneck(music, codebooks)
    assert shallow.shape == music.shape
    snr_shallow, snr_deep = _snr_db(music, shallow), _snr_db(music, deep)
    assert 0 < snr_shallow < snr_deep < 40  # lossy, and deeper is closer
    # a k-means codebook spends its bits on the loud low band: highs are lost first
    assert _band_energy(shallow, 8000) < 0.7 * _band_energy(music, 8000)


# ---------------------------------------------------------------------------------------------
# transposed-convolution upsampler


@pytest.mark.parametrize("factor", [4, 8])
def test_upsampler_leaves_tones_at_multiples_of_the_low_rate(
    music: np.ndarray, factor: int
) -> None:
    kernel = artifacts.tconv_kernel(factor, np.random.default_rng(factor))
    out = artifacts.upsampler_generator(music, factor, kernel, bias=0.4)
    assert out.shape == music.shape
    low_rate = RATE / factor
    for k in range(1, factor // 2):  # every multiple below Nyquist
        assert _prominence_db(out, k * low_rate) > 15
        assert _prominence_db(music, k * low_rate) < 6
    assert _snr_db(music, out) > 8  # the music itself survives


def test_transposed_conv_is_zero_stuffing_then_filtering() -> None:
    low = np.array([[1.0, -2.0, 0.5]])
    kernel = np.array([0.25, 0.5, 1.0, 0.5])
    out = artifacts.transposed_conv(low, kernel, 2, bias=0.0)
    stuffed = np.array([[1.0, 0.0, -2.0, 0.0, 0.5, 0.0]])
    assert np.allclose(out[0, :7], np.convolve(stuffed[0], kernel)[:7])


# ---------------------------------------------------------------------------------------------
# mel + Griffin-Lim


def test_griffin_lim_matches_the_mel_magnitude_not_the_waveform(music: np.ndarray) -> None:
    out = artifacts.mel_griffin_lim(music, RATE, np.random.default_rng(0), iterations=16)
    assert out.shape == music.shape
    target = artifacts.mel_target(music, RATE, 1024, 256, 128)
    got = np.abs(artifacts.stft(out, 1024, 256))
    convergence = np.linalg.norm(got - target) / np.linalg.norm(target)
    assert convergence < 0.3
    correlation = np.corrcoef(out.ravel(), music.ravel())[0, 1]
    assert abs(correlation) < 0.2  # phase is rebuilt from noise, so samples do not line up
    original = np.abs(artifacts.stft(music, 1024, 256))
    top = slice(300, None)  # above ~13 kHz the 128 mel bands are wide: harmonics are smeared
    smear = np.linalg.norm(target[..., top] - original[..., top]) / np.linalg.norm(
        original[..., top]
    )
    assert smear > 0.3


def test_stft_round_trip() -> None:
    x = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32)
    back = artifacts.istft(artifacts.stft(x, 512, 128), 512, 128, 5000)
    assert np.abs(back - x).max() < 1e-4


# ---------------------------------------------------------------------------------------------
# band-limited latent decoder


def test_latent_decoder_leaves_nothing_above_its_band(music: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    bank = artifacts.decoder_filterbank(32000, rng)
    out = artifacts.latent_decoder(
        music, RATE, 32000, bank, rng.uniform(0.8, 1.2, len(bank)), np.full(len(bank), 1.5)
    )
    assert out.shape == music.shape
    above_in = _band_energy(music, 16100)
    above_out = _band_energy(out, 16100)
    assert above_in > 1e-6 * _band_energy(music, 0)  # the source had highs to lose
    assert above_out < 1e-8 * above_in
    low_in, low_out = _band_energy(music, 100, 8000), _band_energy(out, 100, 8000)
    assert 0.5 < low_out / low_in < 2.0  # in band, the music goes through
    assert _snr_db(music, out) < 40  # but coloured by the learned filterbank, not a copy
