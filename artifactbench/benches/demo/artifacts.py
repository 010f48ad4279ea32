"""The signal mechanisms behind AI-generated music, each applied for real to a rendered track.

A detector that finds these subsets must find a genuine trace of the process, not a label:

- residual vector quantization (neural codecs such as EnCodec / DAC behind MusicGen-like models),
- a transposed-convolution upsampler (the decoder layer behind the periodic spectral peaks that
  Afchar et al. explain as a Fourier consequence of zero-stuffing),
- a mel spectrogram inverted by Griffin-Lim (early vocoders; smeared highs, incoherent phase),
- a band-limited latent decoder (latent diffusion decoders running at a lower internal rate).

All functions take and return float audio shaped [channels, samples] at the caller's rate, and
use only the portable arithmetic of `synth/portable.py` (no CPU-dispatched NumPy kernels, no
BLAS-ordered sums), so a seed renders the same samples on every machine.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
import scipy.fft as sfft
from scipy import signal

from artifactbench.benches.demo.synth.portable import (
    complex_abs,
    cos,
    cosine_window,
    exact_matmul,
    exp,
    fft_convolve,
    log,
    resample_poly,
    sin,
    sinc,
    tanh,
)

# ----------------------------------------------------------------------------------------------
# residual vector quantization in an MDCT domain


@lru_cache(maxsize=4)
def _mdct_basis(m: int) -> np.ndarray:
    """Orthonormal MDCT basis [2m, m] with a sine window (Princen-Bradley), so TDAC holds."""
    n = np.arange(2 * m)[:, None]
    k = np.arange(m)[None, :]
    window = sin(np.pi * (n + 0.5) / (2 * m))
    basis = np.sqrt(2.0 / m) * window * cos(np.pi / m * (n + 0.5 + m / 2) * (k + 0.5))
    return basis.astype(np.float32)


def mdct_frames(audio: np.ndarray, m: int) -> np.ndarray:
    """[channels, samples] -> [channels, frames, m] coefficients (critically sampled, hop m)."""
    channels, n = audio.shape
    blocks = -(-n // m)
    padded = np.zeros((channels, (blocks + 2) * m), np.float32)
    padded[:, m : m + n] = audio
    b = padded.reshape(channels, blocks + 2, m)
    frames = np.concatenate([b[:, :-1], b[:, 1:]], axis=2)
    return exact_matmul(frames, _mdct_basis(m)).astype(np.float32)


def imdct_frames(coeffs: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `mdct_frames`: overlap-add of the windowed frames, cropped to n samples."""
    m = coeffs.shape[-1]
    frames = exact_matmul(coeffs, _mdct_basis(m).T).astype(np.float32)
    channels, count, _ = frames.shape
    out = np.zeros((channels, count + 1, m), np.float32)
    out[:, :-1] += frames[:, :, :m]
    out[:, 1:] += frames[:, :, m:]
    return out.reshape(channels, -1)[:, m : m + n]


_GRID = 2.0**-20  # RVQ arithmetic runs on integers of this step
_NORM2 = 2.0**50  # squared row norm (in grid units) that keeps every sum exact


def _on_grid(x: np.ndarray) -> np.ndarray:
    """Rows of x as float64 integers in units of _GRID, each of squared norm below 2**50.

    By Cauchy-Schwarz every product, dot product and partial sum between such rows (and the
    distances built from them) is then an integer below 2**53: exact in float64, whatever order
    BLAS adds in. Residuals never outgrow their vector (the zero code is always available) and
    codes are means of vectors, so the bound holds at every stage. An MDCT frame of audio within
    [-1, 1] has a norm below 12, about 2**23.6 grid units.
    """
    ints = np.rint(np.asarray(x, np.float64) / _GRID)
    if ints.size and not (ints * ints).sum(axis=-1).max() < _NORM2:
        raise ValueError("RVQ input out of range: MDCT frames of audio within [-1, 1] expected")
    return ints


def _nearest(
    x: np.ndarray, codebook: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest code, squared distance to it) for every row of x, both on the grid.

    Distances are exact integers, so ties and near-ties resolve identically on every machine.
    Blocks keep the distance matrix in cache.
    """
    c2 = (codebook * codebook).sum(axis=1)
    index = np.empty(len(x), np.int64)
    error = np.empty(len(x), np.float64)
    for s in range(0, len(x), block):
        rows = x[s : s + block]
        d = rows @ codebook.T
        d *= -2.0
        d += c2
        best = d.argmin(axis=1)
        index[s : s + block] = best
        error[s : s + block] = d[np.arange(len(rows)), best] + (rows * rows).sum(axis=1)
    return index, error


def _kmeans(x: np.ndarray, size: int, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Lloyd's algorithm on grid integers, with code 0 pinned to the zero vector.

    The zero code means a stage can always leave a residual untouched, so adding stages never
    increases the error, on the training vectors or on new ones.
    """
    init = rng.choice(len(x), size=size - 1, replace=len(x) < size - 1)
    codebook = np.concatenate([np.zeros((1, x.shape[1])), x[init]])
    for _ in range(iterations):
        assign, err = _nearest(x, codebook)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=size)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        used = counts > 0
        sums = np.add.reduceat(x[order], starts[used], axis=0)  # integer sums: exact
        codebook[used] = np.rint(sums / counts[used, None])
        empty = np.flatnonzero(~used)
        if len(empty):  # reseed starved codes on the worst-fitting vectors
            codebook[empty] = x[np.argsort(err, kind="stable")[-len(empty) :]]
        codebook[0] = 0.0
    return codebook


def fit_rvq(
    vectors: np.ndarray, stages: int, size: int, rng: np.random.Generator, iterations: int = 8
) -> np.ndarray:
    """Residual codebooks [stages, size, dim]: each stage is k-means on what the previous left.

    The codes lie on the RVQ grid, so they convert to float32 exactly.
    """
    residual = _on_grid(vectors)
    books = []
    for _ in range(stages):
        book = _kmeans(residual, size, rng, iterations)
        residual -= book[_nearest(residual, book)[0]]
        books.append(book)
    return (np.stack(books) * _GRID).astype(np.float32)


def rvq_quantize(vectors: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Reconstruction of `vectors` through every stage of `codebooks` (encode + decode)."""
    target = _on_grid(vectors)
    residual = target.copy()
    for book in codebooks:
        ints = _on_grid(book)
        residual -= ints[_nearest(residual, ints)[0]]
    return ((target - residual) * _GRID).astype(np.float32)


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
    kernel = sinc(n / factor) * cosine_window(length + 2, 0.5)[1:-1]
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
    low = resample_poly(audio, 1, factor, axis=1)
    ideal = resample_poly(low, factor, 1, axis=1)[:, :n]
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
    window = cosine_window(n_fft, 0.5, periodic=True).astype(np.float32)
    padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(n_fft // 2, n_fft // 2 + hop)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    return sfft.rfft(frames * window, axis=-1)


def istft(spec: np.ndarray, n_fft: int, hop: int, n: int) -> np.ndarray:
    """Least-squares inverse of `stft` (weighted overlap-add) cropped to n samples."""
    if n_fft % hop:
        raise ValueError("hop must divide n_fft")
    window = cosine_window(n_fft, 0.5, periodic=True).astype(np.float32)
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


_LN10 = 2.302585092994046


@lru_cache(maxsize=8)
def mel_filterbank(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters [n_mels, bins] equally spaced on the HTK mel scale, area-normalised."""

    def mel(f: float) -> float:
        return 2595.0 / _LN10 * float(log(1.0 + f / 700.0))

    edges_mel = np.linspace(0.0, mel(rate / 2), n_mels + 2)
    edges = 700.0 * (exp(edges_mel * (_LN10 / 2595.0)) - 1.0)
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


def _cholesky_solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """gram^-1 rhs for a symmetric positive definite gram, by Cholesky in a fixed order.

    Every dot product is an elementwise product summed by NumPy's own (CPU-independent)
    reduction, never by LAPACK or BLAS, whose kernels differ from CPU to CPU.
    """
    n = len(gram)
    low = np.zeros_like(gram)
    for j in range(n):
        low[j, j] = np.sqrt(gram[j, j] - (low[j, :j] * low[j, :j]).sum())
        low[j + 1 :, j] = (gram[j + 1 :, j] - (low[j + 1 :, :j] * low[j, :j]).sum(axis=1)) / low[
            j, j
        ]
    y = np.zeros_like(rhs)
    for i in range(n):
        y[i] = (rhs[i] - (low[i, :i, None] * y[:i]).sum(axis=0)) / low[i, i]
    x = np.zeros_like(rhs)
    for i in reversed(range(n)):
        x[i] = (y[i] - (low[i + 1 :, i, None] * x[i + 1 :]).sum(axis=0)) / low[i, i]
    return x


@lru_cache(maxsize=8)
def _mel_pinv(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[bins, n_mels] pseudo-inverse of the filterbank F: F^T (F F^T + eps I)^-1.

    The tiny ridge (1e-12 of the largest diagonal) stands in for the SVD's cut-off, for the mel
    that holds no bin and those that share their only one; within 1e-5 of `np.linalg.pinv`.
    The Gram matrix is summed by NumPy from exact float32 x float32 products, not by BLAS.
    """
    fb = mel_filterbank(rate, n_fft, n_mels).astype(np.float64)
    gram = (fb[:, None, :] * fb[None, :, :]).sum(axis=-1)
    gram += 1e-12 * float(np.diag(gram).max()) * np.eye(n_mels)
    return _cholesky_solve(gram, fb).T.astype(np.float32)


def mel_target(audio: np.ndarray, rate: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """The linear magnitude a mel vocoder can recover: mel projection, pseudo-inverse, >= 0."""
    mag = complex_abs(stft(np.asarray(audio, np.float32), n_fft, hop))
    mels = exact_matmul(mag, mel_filterbank(rate, n_fft, n_mels).T)
    lin = exact_matmul(mels, _mel_pinv(rate, n_fft, n_mels).T)
    return np.maximum(lin, 0.0).astype(np.float32)


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
    target = np.asarray(magnitude, np.float32)
    angle = rng.uniform(0.0, 2 * np.pi, size=target.shape).astype(np.float32)
    estimate = np.empty(target.shape, np.complex64)
    estimate.real = target * cos(angle).astype(np.float32)
    estimate.imag = target * sin(angle).astype(np.float32)
    previous = estimate
    momentum = np.float32(momentum)
    for _ in range(iterations):
        rebuilt = stft(istft(estimate, n_fft, hop, n), n_fft, hop)
        accelerated = np.empty_like(rebuilt)
        accelerated.real = rebuilt.real + momentum * (rebuilt.real - previous.real)
        accelerated.imag = rebuilt.imag + momentum * (rebuilt.imag - previous.imag)
        previous = rebuilt
        gain = target / np.maximum(complex_abs(accelerated), np.float32(1e-12))
        estimate = accelerated
        estimate.real *= gain
        estimate.imag *= gain
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
    steps = np.linspace(0.0, 1.0, bands - 1)
    inner = 150.0 * exp(steps * float(log(nyq * 0.7 / 150.0)))  # log-spaced, like geomspace
    inner[-1] = nyq * 0.7
    edges = np.concatenate([[0.0], inner, [nyq]])
    n = np.arange(taps) - (taps - 1) / 2
    window = cosine_window(taps, 0.54)

    def lowpass(cut: float) -> np.ndarray:
        if cut >= nyq:
            return (n == 0).astype(np.float64)
        return 2 * cut / latent_rate * sinc(2 * cut / latent_rate * n) * window

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
    gain = ((0.5 + 0.5 * cos(np.pi * ramp)) * (freqs < edge)).astype(spec.real.dtype)
    spec.real *= gain
    spec.imag *= gain
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
    latent = resample_poly(np.asarray(audio, np.float32), up, down, axis=1)
    delay = (filterbank.shape[1] - 1) // 2
    decoded = np.zeros_like(latent)
    for band, gain, drive in zip(filterbank, gains, drives, strict=True):
        part = fft_convolve(latent, band, axis=1)[:, delay : delay + latent.shape[1]]
        decoded += (gain * tanh(drive * part) / drive).astype(np.float32)
    out = resample_poly(decoded, down, up, axis=1)[:, : audio.shape[1]]
    if out.shape[1] < audio.shape[1]:
        out = np.pad(out, ((0, 0), (0, audio.shape[1] - out.shape[1])))
    return band_limit(out, rate, latent_rate / 2)
