"""The signal mechanisms behind AI-generated music, each applied for real to a rendered track.

A detector that finds these subsets must find a genuine trace of the process, not a label:

- residual vector quantization (neural codecs such as EnCodec / DAC behind MusicGen-like models),
- a transposed-convolution upsampler (the decoder layer behind the periodic spectral peaks that
  Afchar et al. explain as a Fourier consequence of zero-stuffing),
- a mel spectrogram inverted by Griffin-Lim (early vocoders; smeared highs, incoherent phase),
- a band-limited latent decoder (latent diffusion decoders running at a lower internal rate).

All functions take and return float audio shaped [channels, samples] at the caller's rate.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
import scipy.fft as sfft
from scipy import signal

# ----------------------------------------------------------------------------------------------
# residual vector quantization in an MDCT domain


@lru_cache(maxsize=4)
def _mdct_basis(m: int) -> np.ndarray:
    """Orthonormal MDCT basis [2m, m] with a sine window (Princen-Bradley), so TDAC holds."""
    n = np.arange(2 * m)[:, None]
    k = np.arange(m)[None, :]
    window = np.sin(np.pi * (n + 0.5) / (2 * m))
    basis = np.sqrt(2.0 / m) * window * np.cos(np.pi / m * (n + 0.5 + m / 2) * (k + 0.5))
    return basis.astype(np.float32)


def mdct_frames(audio: np.ndarray, m: int) -> np.ndarray:
    """[channels, samples] -> [channels, frames, m] coefficients (critically sampled, hop m)."""
    channels, n = audio.shape
    blocks = -(-n // m)
    padded = np.zeros((channels, (blocks + 2) * m), np.float32)
    padded[:, m : m + n] = audio
    b = padded.reshape(channels, blocks + 2, m)
    frames = np.concatenate([b[:, :-1], b[:, 1:]], axis=2)
    return frames @ _mdct_basis(m)


def imdct_frames(coeffs: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `mdct_frames`: overlap-add of the windowed frames, cropped to n samples."""
    m = coeffs.shape[-1]
    frames = coeffs @ _mdct_basis(m).T
    channels, count, _ = frames.shape
    out = np.zeros((channels, count + 1, m), np.float32)
    out[:, :-1] += frames[:, :, :m]
    out[:, 1:] += frames[:, :, m:]
    return out.reshape(channels, -1)[:, m : m + n]


def _nearest(x: np.ndarray, codebook: np.ndarray, block: int = 2048) -> np.ndarray:
    """Nearest code for every row of x, in blocks so the distance matrix stays in cache."""
    c2 = (codebook * codebook).sum(axis=1)
    out = np.empty(len(x), np.int64)
    for s in range(0, len(x), block):
        d = x[s : s + block] @ codebook.T
        d *= -2.0
        d += c2
        out[s : s + block] = d.argmin(axis=1)
    return out


def _kmeans(x: np.ndarray, size: int, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Lloyd's algorithm with code 0 pinned to the zero vector.

    The zero code means a stage can always leave a residual untouched, so adding stages never
    increases the error, on the training vectors or on new ones.
    """
    init = rng.choice(len(x), size=size - 1, replace=len(x) < size - 1)
    codebook = np.concatenate([np.zeros((1, x.shape[1]), np.float32), x[init]])
    for _ in range(iterations):
        assign = _nearest(x, codebook)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=size)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        used = counts > 0
        sums = np.add.reduceat(x[order], starts[used], axis=0)
        codebook[used] = sums / counts[used, None]
        empty = np.flatnonzero(~used)
        if len(empty):  # reseed starved codes on the worst-fitting vectors
            err = ((x - codebook[assign]) ** 2).sum(axis=1)
            codebook[empty] = x[np.argsort(err, kind="stable")[-len(empty) :]]
        codebook[0] = 0.0
    return codebook


def fit_rvq(
    vectors: np.ndarray, stages: int, size: int, rng: np.random.Generator, iterations: int = 8
) -> np.ndarray:
    """Residual codebooks [stages, size, dim]: each stage is k-means on what the previous left."""
    residual = np.asarray(vectors, np.float32).copy()
    books = []
    for _ in range(stages):
        book = _kmeans(residual, size, rng, iterations)
        residual -= book[_nearest(residual, book)]
        books.append(book)
    return np.stack(books)


def rvq_quantize(vectors: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Reconstruction of `vectors` through every stage of `codebooks` (encode + decode)."""
    residual = np.asarray(vectors, np.float32).copy()
    for book in codebooks:
        residual -= book[_nearest(residual, book)]
    return vectors - residual


def rvq_bottleneck(audio: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Pass audio through an RVQ codec: MDCT frames -> quantized codes -> overlap-add."""
    m = codebooks.shape[2]
    coeffs = mdct_frames(np.asarray(audio, np.float32), m)
    flat = coeffs.reshape(-1, m)
    quantized = rvq_quantize(flat, codebooks).reshape(coeffs.shape)
    return imdct_frames(quantized, audio.shape[1])


# ----------------------------------------------------------------------------------------------
# transposed-convolution upsampler


def tconv_kernel(
    factor: int, rng: np.random.Generator, taps_per_phase: int = 4, imbalance: float = 0.04
) -> np.ndarray:
    """A short 'learned' upsampling kernel: an interpolator, imperfectly, as training leaves it.

    A windowed sinc for `factor` with a seeded multiplicative perturbation. Its polyphase
    components then no longer sum evenly, so the kernel's gain at multiples of the low rate is
    not zero: that is what turns a constant input into tones there. The spread of those sums
    is set to `imbalance` (relative std) so every kernel of a family leaves tones of
    comparable strength whatever the seed.
    """
    length = factor * taps_per_phase
    n = np.arange(length) - (length - 1) / 2
    kernel = np.sinc(n / factor) * np.hanning(length + 2)[1:-1]
    kernel *= 1.0 + 0.1 * rng.standard_normal(length)
    phases = kernel.reshape(taps_per_phase, factor)
    sums = phases.sum(axis=0)
    spread = (sums - sums.mean()) / max(sums.std(), 1e-9)
    target = sums.mean() * (1.0 + imbalance * spread)
    phases += (target - sums) / taps_per_phase
    return (phases.reshape(-1) * (factor / phases.sum())).astype(np.float32)


def transposed_conv(low: np.ndarray, kernel: np.ndarray, factor: int, bias: float) -> np.ndarray:
    """A stride-`factor` transposed convolution over the last axis: zero-stuff then filter."""
    return signal.upfirdn(kernel, low + bias, up=factor, axis=-1)


def upsampler_generator(
    audio: np.ndarray, factor: int, kernel: np.ndarray, bias: float = 0.4
) -> np.ndarray:
    """Decode a 1/`factor`-rate version of the track through a transposed convolution.

    The decoder owns the band below the low rate's Nyquist; the track's own content above it
    is added back so the music survives. What the layer leaves behind stays: faint images of
    the low band and, from the large positive mean of its input (a bias, or the activations
    of a ReLU-like layer), tones at every multiple of the low rate (the 'checkerboard').
    """
    audio = np.asarray(audio, np.float32)
    n = audio.shape[1]
    low = signal.resample_poly(audio, 1, factor, axis=1)
    ideal = signal.resample_poly(low, factor, 1, axis=1)[:, :n]
    edge = -(-len(kernel) // factor)  # low-rate samples the kernel spans
    padded = np.pad(low, ((0, 0), (edge, edge)))  # so the bias is steady from the first sample
    start = edge * factor + (len(kernel) - 1) // 2
    decoded = transposed_conv(padded, kernel, factor, bias)[:, start : start + n]
    decoded -= decoded.mean(axis=1, keepdims=True)
    return (audio - ideal + decoded).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# mel spectrogram + Griffin-Lim


def stft(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[..., samples] -> [..., frames, bins]; periodic Hann, centred with n_fft/2 zero padding."""
    window = signal.get_window("hann", n_fft).astype(np.float32)
    padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(n_fft // 2, n_fft // 2 + hop)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    return sfft.rfft(frames * window, axis=-1)


def istft(spec: np.ndarray, n_fft: int, hop: int, n: int) -> np.ndarray:
    """Least-squares inverse of `stft` (weighted overlap-add) cropped to n samples."""
    if n_fft % hop:
        raise ValueError("hop must divide n_fft")
    window = signal.get_window("hann", n_fft).astype(np.float32)
    frames = sfft.irfft(spec, n_fft, axis=-1) * window
    count, ratio = frames.shape[-2], n_fft // hop
    blocks = frames.reshape(*frames.shape[:-1], ratio, hop)
    out = np.zeros((*frames.shape[:-2], count + ratio - 1, hop), np.float32)
    norm = np.zeros((count + ratio - 1, hop), np.float32)
    w2 = (window**2).reshape(ratio, hop)
    for r in range(ratio):
        out[..., r : r + count, :] += blocks[..., r, :]
        norm[r : r + count] += w2[r]
    out = out.reshape(*out.shape[:-2], -1) / np.maximum(norm.reshape(-1), 1e-8)
    return out[..., n_fft // 2 : n_fft // 2 + n]


@lru_cache(maxsize=8)
def mel_filterbank(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters [n_mels, bins] equally spaced on the HTK mel scale, area-normalised."""

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_mel = np.linspace(0.0, mel(np.array(rate / 2)), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_pinv(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    return np.linalg.pinv(mel_filterbank(rate, n_fft, n_mels)).astype(np.float32)


def mel_target(audio: np.ndarray, rate: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """The linear magnitude a mel vocoder can recover: mel projection, pseudo-inverse, >= 0."""
    mag = np.abs(stft(np.asarray(audio, np.float32), n_fft, hop)).astype(np.float32)
    mels = mag @ mel_filterbank(rate, n_fft, n_mels).T
    return np.maximum(mels @ _mel_pinv(rate, n_fft, n_mels).T, 0.0)


def griffin_lim(
    magnitude: np.ndarray,
    n_fft: int,
    hop: int,
    n: int,
    rng: np.random.Generator,
    iterations: int = 24,
    momentum: float = 0.99,
) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al.): phase from random, with momentum, for a magnitude."""
    angle = rng.uniform(0.0, 2 * np.pi, size=magnitude.shape).astype(np.float32)
    estimate = np.empty(magnitude.shape, np.complex64)
    estimate.real = magnitude * np.cos(angle)
    estimate.imag = magnitude * np.sin(angle)
    previous = estimate
    for _ in range(iterations):
        rebuilt = stft(istft(estimate, n_fft, hop, n), n_fft, hop)
        accelerated = rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        estimate = accelerated * (magnitude / np.maximum(np.abs(accelerated), 1e-12))
    return istft(estimate, n_fft, hop, n)


def mel_griffin_lim(
    audio: np.ndarray,
    rate: int,
    rng: np.random.Generator,
    n_fft: int = 1024,
    hop: int = 256,
    n_mels: int = 128,
    iterations: int = 24,
) -> np.ndarray:
    """A mel vocoder without a neural network: mel spectrogram in, Griffin-Lim waveform out."""
    target = mel_target(audio, rate, n_fft, hop, n_mels)
    return griffin_lim(target, n_fft, hop, audio.shape[1], rng, iterations).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# band-limited latent decoder


def decoder_filterbank(
    latent_rate: int, rng: np.random.Generator, bands: int = 6, taps: int = 63
) -> np.ndarray:
    """[bands, taps] band-pass FIRs that tile 0..latent Nyquist, perturbed as if trained.

    Built as differences of windowed-sinc low-passes at log-spaced edges, so before the
    perturbation they sum to a delay; afterwards the bank colours the sound a little.
    """
    nyq = latent_rate / 2
    edges = np.concatenate([[0.0], np.geomspace(150.0, nyq * 0.7, bands - 1), [nyq]])
    n = np.arange(taps) - (taps - 1) / 2
    window = np.hamming(taps)

    def lowpass(cut: float) -> np.ndarray:
        if cut >= nyq:
            return (n == 0).astype(np.float64)
        return 2 * cut / latent_rate * np.sinc(2 * cut / latent_rate * n) * window

    bank = np.stack([lowpass(edges[k + 1]) - lowpass(edges[k]) for k in range(bands)])
    bank += 0.01 * rng.standard_normal(bank.shape) * window
    return bank.astype(np.float32)


def band_limit(audio: np.ndarray, rate: int, edge: float, taper: float = 0.05) -> np.ndarray:
    """Zero everything above `edge` Hz (raised-cosine roll-off over the last `taper` fraction)."""
    n = audio.shape[-1]
    size = sfft.next_fast_len(
        n + rate // 50, real=True
    )  # margin so the filter's tail does not wrap
    spec = sfft.rfft(audio, size, axis=-1)
    freqs = np.arange(spec.shape[-1]) * (rate / size)
    start = edge * (1.0 - taper)
    ramp = np.clip((freqs - start) / (edge - start), 0.0, 1.0)
    spec *= (0.5 + 0.5 * np.cos(np.pi * ramp)) * (freqs < edge)
    return sfft.irfft(spec, size, axis=-1)[..., :n].astype(np.float32)


def latent_decoder(
    audio: np.ndarray,
    rate: int,
    latent_rate: int,
    filterbank: np.ndarray,
    gains: np.ndarray,
    drives: np.ndarray,
) -> np.ndarray:
    """Encode to a latent at `latent_rate`, decode through a filterbank with soft nonlinearity.

    Every step after the encoder runs at the latent rate, and the last one is a band-limited
    interpolation back to `rate`, so nothing survives above the latent band: the trace is the
    missing band (plus a learned-looking colouring), not any periodic peak.
    """
    g = gcd(rate, latent_rate)
    up, down = latent_rate // g, rate // g
    latent = signal.resample_poly(np.asarray(audio, np.float32), up, down, axis=1)
    delay = (filterbank.shape[1] - 1) // 2
    decoded = np.zeros_like(latent)
    for band, gain, drive in zip(filterbank, gains, drives, strict=True):
        part = signal.oaconvolve(latent, band[None, :], axes=1)[:, delay : delay + latent.shape[1]]
        decoded += gain * np.tanh(drive * part) / drive
    out = signal.resample_poly(decoded, down, up, axis=1)[:, : audio.shape[1]]
    if out.shape[1] < audio.shape[1]:
        out = np.pad(out, ((0, 0), (0, audio.shape[1] - out.shape[1])))
    return band_limit(out, rate, latent_rate / 2)
