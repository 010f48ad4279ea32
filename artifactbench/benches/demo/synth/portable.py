"""Portable arithmetic: float64 functions that give the same bits on every CPU.

NumPy picks SIMD kernels for `sin`, `exp`, `tanh`, `power`, complex products and more by the CPU
it runs on (AVX2, AVX-512 and plain SSE round differently, e.g. a fused multiply-add in a complex
product), and BLAS picks matrix kernels and summation orders the same way, so the demo bench
uses none of them. Everything here is built from operations that are exactly rounded on every
CPU (+, -, *, /, sqrt, rint, frexp, ldexp, NumPy's sums), plus scipy's FFT and filter loops,
which are compiled once and dispatch on nothing. The synthesis (`voices`, `music`) and the
generator mechanisms (`..artifacts`) share them.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy import signal

RATE = 44100  # the demo bench's sample rate (and `butter_sos`'s default)

# ----------------------------------------------------------------------------------------------
# portable arithmetic: the same bits on every CPU

_PIO2_1 = 1.57079632673412561417e00  # pi/2 in three parts; k * part is exact for |k| < 2**20
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts; k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046
_SIN = (
    -1.66666666666666324348e-01,
    8.33333333332248946124e-03,
    -1.98412698298579493134e-04,
    2.75573137070700676789e-06,
    -2.50507602534068634195e-08,
    1.58969099521155010221e-10,
)
_COS = (
    4.16666666666666019037e-02,
    -1.38888888888741095749e-03,
    2.48015872894767294178e-05,
    -2.75573143513906633035e-07,
    2.08757232129817482790e-09,
    -1.13596475577881948265e-11,
)


def _horner(z: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    out = np.full_like(z, coefs[-1])
    for c in coefs[-2::-1]:
        out = out * z + c
    return out


def _quadrant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sin r, cos r, k mod 4) with x = k pi/2 + r, |r| <= pi/4 (Cody-Waite reduction)."""
    x = np.asarray(x, np.float64)
    if x.size and not np.abs(x).max() < 1.6e6:
        raise ValueError("portable sin/cos take |x| < 1.6e6 (and finite)")
    k = np.rint(x * (2 / np.pi))
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    z = r * r
    s = r + (r * z) * _horner(z, _SIN)
    c = (1.0 - 0.5 * z) + (z * z) * _horner(z, _COS)
    return s, c, k.astype(np.int64) & 3


def sin(x: np.ndarray | float) -> np.ndarray:
    """float64 sine to about 1 ulp for |x| < 1.6e6, identical on every CPU."""
    s, c, q = _quadrant(x)
    return np.choose(q, [s, c, -s, -c])


def cos(x: np.ndarray | float) -> np.ndarray:
    """float64 cosine to about 1 ulp for |x| < 1.6e6, identical on every CPU."""
    s, c, q = _quadrant(x)
    return np.choose(q, [c, -s, -c, s])


def exp(x: np.ndarray | float) -> np.ndarray:
    """float64 exp(x) to about 1 ulp, identical on every CPU."""
    x = np.clip(np.asarray(x, np.float64), -760.0, 710.0)
    k = np.rint(x * (1 / _LN2_HI))
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= 0.35: 14 Taylor terms leave < 1e-17
    p = np.ones_like(r)
    for j in range(14, 0, -1):
        p = 1.0 + p * r / j
    return np.ldexp(p, k.astype(np.int64))


def log(x: np.ndarray | float) -> np.ndarray:
    """float64 natural log of positive x to about 1 ulp, identical on every CPU."""
    x = np.asarray(x, np.float64)
    if x.size and not x.min() > 0:
        raise ValueError("portable log takes positive x only")
    m, e = np.frexp(x)
    low = m < 0.7071067811865476
    m = np.where(low, 2 * m, m)
    e = (e - low).astype(np.float64)
    f = (m - 1.0) / (m + 1.0)  # log m = 2 atanh f, |f| <= 0.172
    z = f * f
    series = np.full_like(z, 1 / 23)
    for j in range(21, 0, -2):
        series = 1 / j + series * z
    return e * _LN2_HI + (e * _LN2_LO + 2 * f * series)


def power(x: np.ndarray | float, p: float) -> np.ndarray:
    """x ** p for positive x."""
    return exp(p * log(x))


def tanh(x: np.ndarray | float) -> np.ndarray:
    """float64 tanh, identical on every CPU (absolute error below 1e-16)."""
    x = np.asarray(x, np.float64)
    t = exp(-2.0 * np.abs(x))
    return np.copysign((1.0 - t) / (1.0 + t), x)


def sinc(x: np.ndarray) -> np.ndarray:
    """sin(pi x) / (pi x), 1 at 0 (numpy's `sinc`)."""
    x = np.asarray(x, np.float64)
    arg = np.pi * np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, sin(arg) / arg)


def cosine_window(n: int, a0: float, periodic: bool = False) -> np.ndarray:
    """a0 - (1 - a0) cos(2 pi i / N): Hann for a0 = 0.5, Hamming for 0.54; symmetric (N = n-1,
    numpy's `hanning`/`hamming`) or periodic (N = n, scipy's `get_window` default)."""
    if n == 1:
        return np.ones(1)
    return a0 - (1 - a0) * cos(2 * np.pi * np.arange(n) / (n if periodic else n - 1))


def _bessel_i0(x: np.ndarray) -> np.ndarray:
    """Modified Bessel function I0 by its power series (converges fast for x <= 20)."""
    term = np.ones_like(x)
    total = np.ones_like(x)
    half = x / 2
    for k in range(1, 60):
        term = term * half / k
        total = total + term * term
    return total


def kaiser(n: int, beta: float) -> np.ndarray:
    """The symmetric Kaiser window (numpy's `kaiser`)."""
    alpha = (n - 1) / 2
    ratio = (np.arange(n) - alpha) / alpha
    arg = beta * np.sqrt(np.maximum(1.0 - ratio * ratio, 0.0))
    return _bessel_i0(arg) / _bessel_i0(np.array(float(beta)))


def lowpass_fir(up: int, down: int) -> np.ndarray:
    """The Kaiser(5) windowed-sinc anti-alias filter scipy's `resample_poly` designs by default."""
    max_rate = max(up, down)
    half = 10 * max_rate
    taps = np.arange(2 * half + 1) - half
    h = sinc(taps / max_rate) / max_rate * kaiser(2 * half + 1, 5.0)
    return h / h.sum()


def resample_poly(x: np.ndarray, up: int, down: int, axis: int = -1) -> np.ndarray:
    """scipy's `resample_poly` (polyphase, zero padding) with a portably designed filter."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    return signal.resample_poly(x, up, down, axis=axis, window=lowpass_fir(up, down).astype(dtype))


def butter_sos(order: int, cutoff: float, kind: str, fs: float = RATE) -> np.ndarray:
    """Butterworth low- or highpass as second-order sections (bilinear, prewarped cutoff).

    Closed-form per pole pair, so the coefficients come from portable arithmetic only.
    """
    if kind not in ("lowpass", "highpass"):
        raise ValueError(f"kind must be lowpass or highpass, not {kind!r}")
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff must lie in (0, {fs / 2}), got {cutoff}")
    arg = np.pi * cutoff / fs
    k = float(sin(arg) / cos(arg))  # tan: the bilinear transform's prewarp
    rows = []
    for i in range(order // 2):
        damp = 2 * float(sin(np.pi * (2 * i + 1) / (2 * order)))
        a0 = 1 + damp * k + k * k
        a = [1.0, 2 * (k * k - 1) / a0, (1 - damp * k + k * k) / a0]
        b = [k * k / a0, 2 * k * k / a0, k * k / a0]
        if kind == "highpass":
            b = [1 / a0, -2 / a0, 1 / a0]
        rows.append(b + a)
    if order % 2:
        a = [1.0, (k - 1) / (k + 1), 0.0]
        b = (
            [k / (k + 1), k / (k + 1), 0.0]
            if kind == "lowpass"
            else [1 / (k + 1), -1 / (k + 1), 0.0]
        )
        rows.append(b + a)
    return np.array(rows)


def complex_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b for complex arrays, one IEEE operation at a time (NumPy's SIMD complex product may
    fuse a multiply and an add, which rounds differently)."""
    re = a.real * b.real - a.imag * b.imag
    im = a.real * b.imag + a.imag * b.real
    out = np.empty(re.shape, np.result_type(a, b))
    out.real = re
    out.imag = im
    return out


def complex_abs(spec: np.ndarray) -> np.ndarray:
    """|spec| for a complex array as sqrt(re^2 + im^2), without NumPy's SIMD `abs`."""
    return np.sqrt(spec.real * spec.real + spec.imag * spec.imag)


def fft_convolve(x: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
    """Full linear convolution of x with the 1-D kernel h along `axis`, by FFT."""
    x = np.moveaxis(np.asarray(x), axis, -1)
    n = x.shape[-1] + len(h) - 1
    size = sfft.next_fast_len(n, real=True)
    spec = complex_product(sfft.rfft(x, size), sfft.rfft(np.asarray(h, x.dtype), size))
    return np.moveaxis(sfft.irfft(spec, size)[..., :n].astype(x.dtype), -1, axis)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in float64 whose bits do not depend on the BLAS kernel, its threads or the CPU.

    Each matrix is rounded to integers on a power-of-two grid scaled to its own peak (a
    relative precision of about 2**-21 to 2**-23), with few enough bits that every product and
    every partial sum is an integer below 2**53: exact in float64, so the order in which BLAS
    adds them cannot matter.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    depth = a.shape[-1]
    bits = (53 - (max(depth, 2) - 1).bit_length()) // 2
    ints, shifts = [], []
    for m in (a, b):
        peak = float(np.abs(m).max()) if m.size else 0.0
        shift = bits - int(np.frexp(peak)[1]) if peak > 0 else 0
        ints.append(np.rint(np.ldexp(m, shift)))
        shifts.append(shift)
    return np.ldexp(ints[0] @ ints[1], -(shifts[0] + shifts[1]))
