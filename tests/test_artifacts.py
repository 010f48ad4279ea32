"""The synthesizer and each AI-generator mechanism leave the traces they claim, for real."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from artifactbench.benches.demo import artifacts, synth
from artifactbench.benches.demo.synth import RATE, synthesize, tape_vintage


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


# ---------------------------------------------------------------------------------------------
# portable arithmetic: as accurate as NumPy's kernels, but the same bits on every CPU


def test_portable_functions_agree_with_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1000, 1000, 20000)
    assert np.abs(synth.sin(x) - np.sin(x)).max() < 1e-15
    assert np.abs(synth.cos(x) - np.cos(x)).max() < 1e-15
    y = rng.uniform(-700, 700, 20000)
    assert np.abs(synth.exp(y) / np.exp(y) - 1).max() < 1e-15
    z = np.exp(rng.uniform(-700, 700, 20000))
    assert np.abs(synth.log(z) - np.log(z)).max() < 1e-12
    base = z[:100] ** 0.01
    # Relative: NumPy's own pow differs by a few ulps from CPU to CPU (its SIMD kernels).
    assert np.abs(synth.power(base, 1.4) / base**1.4 - 1).max() < 1e-13
    w = rng.uniform(-20, 20, 20000)
    assert np.abs(synth.tanh(w) - np.tanh(w)).max() < 1e-15
    assert np.abs(synth.sinc(w) - np.sinc(w)).max() < 1e-15
    assert synth.sinc(np.zeros(1))[0] == 1.0 and synth.exp(0.0) == 1.0
    assert np.abs(synth.cosine_window(63, 0.54) - np.hamming(63)).max() < 1e-15
    assert np.abs(synth.cosine_window(64, 0.5) - np.hanning(64)).max() < 1e-15
    periodic = signal.get_window("hann", 1024)
    assert np.abs(synth.cosine_window(1024, 0.5, periodic=True) - periodic).max() < 1e-15
    assert np.abs(synth.kaiser(101, 5.0) - np.kaiser(101, 5.0)).max() < 1e-14
    with pytest.raises(ValueError):
        synth.sin(np.array([1e7]))
    with pytest.raises(ValueError):
        synth.log(np.array([0.0]))


def test_resampler_filter_is_scipys_default() -> None:
    firwin = signal.firwin(2 * 1600 + 1, 1 / 160, window=("kaiser", 5.0))
    assert np.abs(synth.lowpass_fir(160, 147) - firwin).max() < 1e-15
    x = np.random.default_rng(1).standard_normal((2, 4000)).astype(np.float32)
    ours = synth.resample_poly(x, 4, 1, axis=1)
    assert ours.dtype == np.float32
    assert np.abs(ours - signal.resample_poly(x, 4, 1, axis=1)).max() < 1e-5


@pytest.mark.parametrize(
    ("order", "cutoff", "kind"),
    [
        (6, 9000.0, "lowpass"),
        (4, 7000.0, "highpass"),
        (2, 1000.0, "highpass"),
        (3, 300.0, "lowpass"),
    ],
)
def test_butterworth_sections_have_scipys_response(order: int, cutoff: float, kind: str) -> None:
    ours = synth.butter_sos(order, cutoff, kind)
    ref = signal.butter(order, cutoff, kind, fs=RATE, output="sos")
    _, h_ours = signal.sosfreqz(ours, 2048, fs=RATE)
    _, h_ref = signal.sosfreqz(ref, 2048, fs=RATE)
    assert np.abs(np.abs(h_ours) - np.abs(h_ref)).max() < 1e-12


def test_exact_matmul_is_independent_of_summation_order() -> None:
    """Any BLAS kernel, thread split or SIMD width adds in some order: none may change a bit."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((300, 128)).astype(np.float32)
    b = rng.standard_normal((128, 64)).astype(np.float32)
    product = synth.exact_matmul(a, b)
    perm = rng.permutation(128)
    assert np.array_equal(product, synth.exact_matmul(a[:, perm], b[perm]))
    halves = synth.exact_matmul(a[:, :64], b[:64]) + synth.exact_matmul(a[:, 64:], b[64:])
    scale = np.abs(a @ b).max()
    assert np.abs(product - a.astype(np.float64) @ b).max() < 1e-6 * scale
    assert np.abs(halves - product).max() < 1e-6 * scale


def test_complex_helpers_round_one_operation_at_a_time() -> None:
    rng = np.random.default_rng(3)
    a = (rng.standard_normal(1000) + 1j * rng.standard_normal(1000)).astype(np.complex64)
    b = (rng.standard_normal(1000) + 1j * rng.standard_normal(1000)).astype(np.complex64)
    product = synth.complex_product(a, b)
    assert product.dtype == np.complex64
    assert np.array_equal(product.real, a.real * b.real - a.imag * b.imag)
    assert np.array_equal(product.imag, a.real * b.imag + a.imag * b.real)
    assert np.abs(synth.complex_abs(a) - np.abs(a)).max() < 1e-6
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    h = rng.standard_normal(63).astype(np.float32)
    direct = signal.convolve(x, h[None, :], method="direct")
    assert np.abs(synth.fft_convolve(x, h, axis=1) - direct).max() < 1e-4


def test_nearest_codes_are_exact_integer_distances() -> None:
    rng = np.random.default_rng(4)
    x = artifacts._on_grid(rng.standard_normal((500, 64)))
    book = artifacts._on_grid(rng.standard_normal((32, 64)))
    book[0] = 0.0
    book[5] = book[9]  # a tie: the first code wins, on every machine
    index, error = artifacts._nearest(x, book, block=64)
    exact = ((x.astype(np.int64)[:, None, :] - book.astype(np.int64)[None]) ** 2).sum(axis=-1)
    assert np.array_equal(index, exact.argmin(axis=1))
    assert np.array_equal(error.astype(np.int64), exact.min(axis=1))
    assert 9 not in index
    with pytest.raises(ValueError, match="out of range"):
        artifacts._on_grid(np.full((1, 64), 1000.0))


def test_mel_pseudo_inverse_matches_numpys() -> None:
    fb = artifacts.mel_filterbank(RATE, 1024, 128).astype(np.float64)
    ours = artifacts._mel_pinv(RATE, 1024, 128).astype(np.float64)
    ref = np.linalg.pinv(fb)
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()
    assert np.abs(fb @ ours @ fb - fb).max() < 1e-5 * np.abs(fb).max()
