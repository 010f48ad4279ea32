"""Deterministic synthesized multi-instrument music: the 'real' material of the demo bench.

Everything is drawn from one numpy Generator so a track is a pure function of its seed. Notes
are rendered one at a time with vectorised table lookups (no per-sample Python): a 14 s stereo
track costs about a tenth of a second of CPU, which is what lets the whole demo bench build in
well under a minute.

The same seed must give the same samples on every machine. NumPy picks SIMD kernels for
`sin`, `exp`, `tanh`, `power`, complex products and more by the CPU it runs on (AVX2, AVX-512 and
plain SSE round differently, e.g. a fused multiply-add in a complex product), and BLAS picks
matrix kernels and summation orders the same way, so the bench code uses none of them. The
functions in the first section below are built from operations that are exactly rounded on
every CPU (+, -, *, /, sqrt, rint, frexp, ldexp, NumPy's sums), plus scipy's FFT and filter loops,
which are compiled once and dispatch on nothing. `artifacts.py` shares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from scipy import signal

RATE = 44100

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


_TABLE = 8192  # wavetable length; nearest lookup keeps spurious partials near -70 dB
_SINE = sin(2 * np.pi * np.arange(_TABLE) / _TABLE).astype(np.float32)
_EXP_SPAN = 16.0  # the decay table covers exp(0) .. exp(-16)
_EXP = exp(-np.linspace(0.0, _EXP_SPAN, _TABLE)).astype(np.float32)
_MAX_NOTE = 8 * RATE  # longest single note; the shared ramps below are sliced, never rebuilt
_SAMPLES = np.arange(_MAX_NOTE, dtype=np.float32)
_SECONDS = np.arange(_MAX_NOTE) / RATE

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 2, 6, 4)),
}


@dataclass(frozen=True)
class Style:
    """Production choices that make a 'live' render differ from a 'studio' one beyond the notes."""

    name: str
    rt60: tuple[float, float]  # reverb decay time range, seconds
    wet: tuple[float, float]  # reverb send level range
    predelay: tuple[float, float]
    timing_jitter: float  # std of note onset error, seconds
    velocity_jitter: float
    detune_cents: float
    room_noise: float  # level of the room / audience bed relative to the mix peak
    families: tuple[str, ...]  # harmony / melody timbres this style draws from


STYLES = {
    "studio": Style(
        name="studio",
        rt60=(0.5, 1.3),
        wet=(0.10, 0.25),
        predelay=(0.005, 0.02),
        timing_jitter=0.0,
        velocity_jitter=0.08,
        detune_cents=4.0,
        room_noise=0.0,
        families=("pad", "organ", "epiano", "lead", "bell", "pluck"),
    ),
    "live": Style(
        name="live",
        rt60=(1.6, 2.8),
        wet=(0.30, 0.50),
        predelay=(0.02, 0.05),
        timing_jitter=0.012,
        velocity_jitter=0.25,
        detune_cents=9.0,
        room_noise=0.004,
        families=("organ", "epiano", "pluck", "lead"),
    ),
}


def midi_hz(note: float) -> float:
    return 440.0 * float(exp((float(note) - 69.0) / 12.0 * _LN2))


@lru_cache(maxsize=256)
def _wavetable(harmonics: tuple[float, ...], count: int) -> np.ndarray:
    """One cycle of the first `count` harmonics; cached because notes reuse few timbres."""
    amps = np.asarray(harmonics[:count], dtype=np.float64)
    k = np.arange(1, len(amps) + 1)
    phase = 2 * np.pi * np.outer(np.arange(_TABLE) / _TABLE, k)
    table = (sin(phase) * amps).sum(axis=1)  # not a BLAS product: identical on any CPU
    return (table / max(np.abs(table).max(), 1e-9)).astype(np.float32)


def _band_limited(harmonics: tuple[float, ...], freq: float) -> np.ndarray:
    """The table for `freq` keeps only harmonics below 18 kHz, so nothing aliases."""
    count = int(np.clip(18000.0 // max(freq, 1.0), 1, len(harmonics)))
    return _wavetable(harmonics, count)


def _lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    return table[(cycles * _TABLE).astype(np.int64) & (_TABLE - 1)]


def _decay(n: int, tau: float) -> np.ndarray:
    """exp(-t / tau) over n samples via a lookup table (np.exp on float32 is the slow part)."""
    pos = _SAMPLES[:n] * np.float32(_TABLE / (_EXP_SPAN * tau * RATE))
    return _EXP[np.minimum(pos, _TABLE - 1).astype(np.int32)]


def _adsr(n_on: int, n: int, a: float, d: float, s: float) -> np.ndarray:
    """Linear attack and decay to the sustain level while the gate is on (n_on samples), then a
    linear release to 0 from wherever the envelope was at note-off."""
    knots = [0, max(int(a * RATE), 1), max(int(a * RATE), 1) + max(int(d * RATE), 1)]
    held = np.interp(np.arange(n_on), knots, [0.0, 1.0, s])
    release = np.linspace(held[-1], 0.0, n - n_on)
    return np.concatenate([held, release]).astype(np.float32)


@dataclass(frozen=True)
class Voice:
    """A timbre: how one note of it is rendered."""

    family: str
    harmonics: tuple[float, ...]
    adsr: tuple[float, float, float, float]  # attack, decay, sustain level, release (s)
    fm_ratio: float = 0.0
    fm_index: float = 0.0
    vibrato: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rate Hz, depth (ratio), onset s
    detune: float = 0.0  # second oscillator detune, cents (chorus)
    ring: float = 1.0  # pluck decay time of the fundamental at 220 Hz, seconds

    def render(self, freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
        """One note of `seconds` gate time (plus release or ring-out) at `freq` Hz."""
        if self.family == "pluck":
            return self._pluck(freq, seconds)
        a, d, s, r = self.adsr
        n_on = min(max(int(seconds * RATE), 1), _MAX_NOTE // 2)
        n = n_on + min(int(r * RATE), _MAX_NOTE // 2)
        t = _SECONDS[:n]
        cycles = freq * t
        rate, depth, onset = self.vibrato
        if depth > 0:
            ramp = np.clip((t - onset) / 0.3, 0.0, 1.0)
            # integral of freq * depth * sin(2 pi rate t): phase modulation in closed form
            cycles = cycles + ramp * freq * depth * (1 - cos(2 * np.pi * rate * t)) / (
                2 * np.pi * rate
            )
        if self.fm_ratio > 0:
            mod = _lookup(_SINE, cycles * self.fm_ratio)
            index = self.fm_index * (0.3 + 0.7 * _decay(n, 0.25 + rng.uniform(0, 0.3)))
            tone = _lookup(_SINE, cycles + index * mod / (2 * np.pi))
        else:
            table = _band_limited(self.harmonics, freq)
            tone = _lookup(table, cycles)
            if self.detune:
                ratio = float(exp(self.detune / 1200 * _LN2))
                tone = 0.5 * (tone + _lookup(table, cycles * ratio + rng.uniform()))
        return tone * _adsr(n_on, n, a, d, s)

    def _pluck(self, freq: float, gate: float) -> np.ndarray:
        """Karplus-Strong in modal form: upper partials die faster than the fundamental.

        The string rings for up to four decay times or until damped half a second after the
        gate, whichever is first.
        """
        tau = float(np.clip(self.ring * np.sqrt(220.0 / freq), 0.15, 2.5))
        n = int(min(4 * tau, gate + 0.5) * RATE)
        cycles = freq * _SECONDS[:n]
        bright = _lookup(_band_limited(self.harmonics, freq), cycles)
        dull = _lookup(_band_limited(self.harmonics[:2], freq), cycles)
        out = bright * _decay(n, tau / 5) + 0.8 * dull * _decay(n, tau)
        edge = int(0.002 * RATE)
        out[:edge] *= np.linspace(0.0, 1.0, edge, dtype=np.float32)
        fade = min(int(0.05 * RATE), n)
        out[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return out


def _make_voice(family: str, rng: np.random.Generator, detune_cents: float) -> Voice:
    k = np.arange(1, 25)
    if family == "pad":
        harm = tuple(rng.uniform(0.6, 1.0) / power(k, 1.4))
        adsr = (rng.uniform(0.2, 0.6), 0.4, 0.8, rng.uniform(0.4, 1.0))
        return Voice(family, harm, adsr, detune=detune_cents * rng.uniform(1.0, 2.0))
    if family == "organ":
        draw = np.zeros(12)
        draw[[0, 1, 2, 3, 5, 7, 11]] = rng.uniform(0.1, 1.0, 7)
        return Voice(family, tuple(draw), (0.01, 0.05, 0.9, 0.08), detune=detune_cents * 0.5)
    if family == "epiano":
        return Voice(
            family, (1.0,), (0.003, 1.2, 0.2, 0.3), fm_ratio=1.0, fm_index=rng.uniform(1.0, 2.5)
        )
    if family == "bell":
        ratio = float(rng.choice([2.0, 3.5, 1.4]))
        return Voice(family, (1.0,), (0.002, 1.5, 0.0, 0.6), fm_ratio=ratio, fm_index=1.8)
    if family == "lead":
        harm = tuple(rng.uniform(0.7, 1.0) / power(k, rng.uniform(0.9, 1.4)))
        vib = (rng.uniform(4.5, 6.5), rng.uniform(0.003, 0.008), 0.15)
        return Voice(family, harm, (0.02, 0.1, 0.7, 0.15), vibrato=vib)
    if family == "bass":
        if rng.uniform() < 0.5:
            return Voice(family, (1.0,), (0.005, 0.3, 0.6, 0.06), fm_ratio=1.0, fm_index=1.2)
        return Voice(family, tuple(1 / power(k[:16], 1.1)), (0.005, 0.2, 0.7, 0.05))
    if family == "pluck":
        pos = rng.uniform(0.1, 0.3)
        harm = tuple(np.abs(sin(np.pi * k * pos)) / k)
        return Voice(family, harm, (0.0, 0.0, 0.0, 0.0), ring=rng.uniform(0.6, 1.6))
    raise ValueError(f"unknown voice family {family!r}")


@dataclass
class _Bus:
    """One instrument's mono buffer with its mix settings."""

    audio: np.ndarray
    gain: float
    pan: float  # -1 left .. +1 right
    send: float  # reverb send

    def add(self, start: float, note: np.ndarray) -> None:
        """Mix `note` in at `start` seconds; whatever falls outside the track is cut."""
        i = int(round(start * RATE))
        skip = max(0, -i)
        end = min(i + len(note), len(self.audio))
        if end > i + skip:
            self.audio[i + skip : end] += note[skip : end - i]


def _chord_notes(root: int, scale: tuple[int, ...], degree: int, size: int) -> list[int]:
    """Diatonic stack of thirds on `degree` as MIDI notes."""
    notes = []
    for step in range(size):
        d = degree + 2 * step
        notes.append(root + scale[d % 7] + 12 * (d // 7))
    return notes


def _drum_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot samples rendered once per track: sine-sweep kick, noise+tone snare, hats."""
    n = int(0.45 * RATE)
    t = np.arange(n) / RATE
    f_hi, f_lo, tau_f = rng.uniform(120, 180), rng.uniform(42, 60), rng.uniform(0.02, 0.05)
    phase = 2 * np.pi * (f_lo * t + (f_hi - f_lo) * tau_f * (1 - exp(-t / tau_f)))
    kick = sin(phase) * exp(-t / rng.uniform(0.12, 0.25))
    kick[: int(0.002 * RATE)] *= np.linspace(0, 1, int(0.002 * RATE))

    ns = int(0.3 * RATE)
    ts = t[:ns]
    low, high = rng.uniform(900, 1500), rng.uniform(5000, 8000)
    band = np.concatenate([butter_sos(2, low, "highpass"), butter_sos(2, high, "lowpass")])
    noise = signal.sosfilt(band, rng.standard_normal(ns))
    noise /= np.abs(noise).max()
    tone = sin(2 * np.pi * rng.uniform(170, 230) * ts) * exp(-ts / 0.05)
    snare = 0.8 * noise * exp(-ts / rng.uniform(0.05, 0.11)) + 0.5 * tone

    hp = butter_sos(4, rng.uniform(6000, 9000), "highpass")
    hiss = signal.sosfilt(hp, rng.standard_normal(ns))
    hiss /= np.abs(hiss).max()
    hat = hiss * exp(-ts / rng.uniform(0.015, 0.035))
    open_hat = hiss * exp(-ts / rng.uniform(0.12, 0.2))
    return {
        "kick": kick.astype(np.float32),
        "snare": snare.astype(np.float32),
        "hat": hat.astype(np.float32),
        "open_hat": open_hat.astype(np.float32),
    }


def _reverb(send: np.ndarray, rng: np.random.Generator, style: Style) -> np.ndarray:
    """Stereo FFT convolution with exponentially decaying noise (one independent tail per ear)."""
    rt60 = rng.uniform(*style.rt60)
    length = int(min(rt60, 2.5) * RATE)
    t = np.arange(length) / RATE
    envelope = exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir = rng.standard_normal((2, length)) * envelope
    for _ in range(6):  # a few early reflections
        tap = int(rng.uniform(0.003, 0.04) * RATE)
        ir[:, tap] += rng.uniform(0.5, 2.0, 2) * rng.choice([-1, 1], 2)
    delay = int(rng.uniform(*style.predelay) * RATE)
    ir = np.pad(ir, ((0, 0), (delay, 0)))
    ir /= np.sqrt((ir * ir).sum(axis=1, keepdims=True))
    size = sfft.next_fast_len(len(send) + ir.shape[1] - 1, real=True)
    spec = complex_product(sfft.rfft(send, size), sfft.rfft(ir.astype(np.float32), size, axis=1))
    return sfft.irfft(spec, size, axis=1)[:, : len(send)].astype(np.float32)


@dataclass
class _Performance:
    """The shared grid of a track: tempo, harmony, and the player's timing/velocity habits."""

    rng: np.random.Generator
    style: Style
    n: int
    seconds: float
    beat: float
    density: float
    root: int
    scale: tuple[int, ...]
    degrees: list[int]
    chord_beats: int

    def onset(self, start: float) -> float:
        jitter = self.style.timing_jitter
        return start + (self.rng.normal(0.0, jitter) if jitter else 0.0)

    def vel(self, base: float) -> float:
        spread = self.rng.normal(0, self.style.velocity_jitter)
        return float(np.clip(base * (1 + spread), 0.05, 1.2))

    def degree_at(self, start: float) -> int:
        return self.degrees[min(int(start / (self.chord_beats * self.beat)), len(self.degrees) - 1)]

    def bus(self, gain: float, pan: float, send: float) -> _Bus:
        return _Bus(np.zeros(self.n, np.float32), gain, pan, send)

    def voice(self, family: str) -> Voice:
        return _make_voice(family, self.rng, self.style.detune_cents)


def _new_performance(rng: np.random.Generator, seconds: float, st: Style) -> _Performance:
    tempo = rng.uniform(84, 148)
    beat = 60.0 / tempo
    mode = "major" if rng.uniform() < 0.6 else "minor"
    progs = PROGRESSIONS[mode]
    prog = progs[rng.integers(len(progs))]
    chord_beats = 4 if rng.uniform() < 0.7 else 2
    n_beats = int(np.ceil(seconds / beat)) + 4
    degrees = [prog[(i // chord_beats) % len(prog)] for i in range(0, n_beats, chord_beats)]
    return _Performance(
        rng=rng,
        style=st,
        n=int(seconds * RATE),
        seconds=seconds,
        beat=beat,
        density=rng.uniform(0.3, 1.0),
        root=48 + int(rng.integers(12)),
        scale=MAJOR if mode == "major" else MINOR,
        degrees=degrees,
        chord_beats=chord_beats,
    )


def _bass(p: _Performance) -> _Bus:
    voice = p.voice("bass")
    out = p.bus(0.55, p.rng.uniform(-0.1, 0.1), 0.05)
    step = p.beat if p.density < 0.6 else p.beat / 2
    for i, start in enumerate(np.arange(0, p.seconds, step)):
        octave_jump = 12 if (i % 4 == 3 and p.density > 0.8) else 0
        note = p.root - 24 + p.scale[p.degree_at(start)] + octave_jump
        out.add(p.onset(start), p.vel(0.9) * voice.render(midi_hz(note), step * 0.85, p.rng))
    return out


def _harmony(p: _Performance) -> _Bus:
    families = p.style.families
    voice = p.voice(families[p.rng.integers(len(families))])
    out = p.bus(0.35, p.rng.uniform(-0.4, 0.4), 0.35)
    size = 4 if p.density > 0.6 else 3
    span = p.chord_beats * p.beat
    for j, degree in enumerate(p.degrees):
        if j * span >= p.seconds:
            break
        for note in _chord_notes(p.root, p.scale, degree, size):
            tone = voice.render(midi_hz(note), span * 0.95, p.rng)
            out.add(p.onset(j * span), p.vel(0.5) * tone)
    return out


def _melody(p: _Performance) -> _Bus:
    families = p.style.families
    voice = p.voice(families[p.rng.integers(len(families))])
    out = p.bus(0.4, p.rng.uniform(-0.3, 0.3), 0.3)
    step = p.beat / 2 if p.density > 0.5 else p.beat
    position = int(p.rng.integers(7, 11))  # a walk on scale steps around the upper octave
    t = 0.0
    while t < p.seconds:
        length = step * int(p.rng.choice([1, 1, 2, 2, 3, 4]))
        if p.rng.uniform() >= 0.15 + 0.3 * (1 - p.density):
            position = int(np.clip(position + p.rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), 3, 16))
            note = p.root + p.scale[position % 7] + 12 * (position // 7)
            out.add(p.onset(t), p.vel(0.7) * voice.render(midi_hz(note), length * 0.9, p.rng))
        t += length
    return out


def _arpeggio(p: _Performance) -> _Bus:
    voice = p.voice("pluck" if p.rng.uniform() < 0.7 else "bell")
    out = p.bus(0.22, p.rng.choice([-1, 1]) * p.rng.uniform(0.4, 0.8), 0.4)
    step = p.beat / 4 if p.density > 0.8 else p.beat / 2
    pattern = p.rng.permutation(4)
    for i, start in enumerate(np.arange(0, p.seconds, step)):
        notes = _chord_notes(p.root + 12, p.scale, p.degree_at(start), 4)
        tone = voice.render(midi_hz(notes[pattern[i % 4]]), step, p.rng)
        out.add(p.onset(start), p.vel(0.6) * tone)
    return out


def _drums(p: _Performance) -> list[_Bus]:
    """Kick on 1 and 3 (or four on the floor), snare on 2 and 4, hats at 8ths or 16ths."""
    kit = _drum_kit(p.rng)
    kick = p.bus(0.8, 0.0, 0.05)
    snare = p.bus(0.45, p.rng.uniform(-0.1, 0.1), 0.3)
    hats = p.bus(0.18, p.rng.uniform(0.2, 0.5), 0.1)
    four = p.rng.uniform() < 0.5
    hat_step = p.beat / 4 if p.density > 0.7 else p.beat / 2
    open_every = int(p.rng.choice([0, 4, 8]))
    for b, start in enumerate(np.arange(0, p.seconds, p.beat)):
        if four or b % 4 in (0, 2) or (b % 4 == 3 and p.rng.uniform() < 0.3):
            kick.add(p.onset(start), p.vel(1.0) * kit["kick"])
        if b % 2 == 1:
            snare.add(p.onset(start), p.vel(0.9) * kit["snare"])
    for h, start in enumerate(np.arange(0, p.seconds, hat_step)):
        is_open = open_every and h % open_every == open_every - 1
        shot = kit["open_hat"] if is_open else kit["hat"]
        hats.add(p.onset(start), p.vel(0.8 if h % 2 == 0 else 0.55) * shot)
    return [kick, snare, hats]


def synthesize(rng: np.random.Generator, seconds: float, style: str = "studio") -> np.ndarray:
    """A stereo track ([2, samples] float32 at 44.1 kHz, peak below 0.95) drawn from `rng`.

    Tempo, key, mode, progression, instruments, density and mix all come from `rng`, so the
    same generator state always yields the same samples.
    """
    st = STYLES[style]
    p = _new_performance(rng, seconds, st)
    buses = [_bass(p), _harmony(p), _melody(p)]
    if p.density > 0.45:
        buses.append(_arpeggio(p))
    if rng.uniform() < 0.9:
        buses.extend(_drums(p))

    send = np.zeros(p.n, np.float32)
    mix = np.zeros((2, p.n), np.float32)
    for b in buses:
        angle = (b.pan + 1) * np.pi / 4  # constant-power pan law
        mix[0] += np.float32(b.gain * float(cos(angle))) * b.audio
        mix[1] += np.float32(b.gain * float(sin(angle))) * b.audio
        send += np.float32(b.send) * b.audio
    mix += np.float32(3.0 * rng.uniform(*st.wet)) * _reverb(send, rng, st)
    if st.room_noise:
        bed = signal.lfilter([1.0], [1.0, -0.97], rng.standard_normal((2, p.n)), axis=1)
        level = st.room_noise * float(np.abs(mix).max()) / float(np.abs(bed).max())
        mix += (level * bed).astype(np.float32)
    return normalize(mix, rng.uniform(0.8, 0.94))


def normalize(audio: np.ndarray, peak: float) -> np.ndarray:
    """Scale to the given peak (kept below 0.95 so no codec or resampler can clip it)."""
    peak = min(peak, 0.95)
    top = float(np.abs(audio).max())
    if top <= 0 or not np.isfinite(top):
        raise ValueError("synthesized audio is silent or non-finite")
    return (audio * (peak / top)).astype(np.float32)


def tape_vintage(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An old analogue transfer: wow and flutter, tape saturation, hiss, 8-11 kHz roll-off.

    These are real-world degradations a detector must not mistake for generator traces.
    """
    n = audio.shape[1]
    t = np.arange(n) / RATE
    wow = rng.uniform(0.0004, 0.0012) * sin(2 * np.pi * rng.uniform(0.4, 0.9) * t)
    flutter = rng.uniform(0.00003, 0.0001) * sin(2 * np.pi * rng.uniform(5, 9) * t)
    warped = np.clip(t + wow + flutter, 0, t[-1]) * RATE
    moved = np.stack([np.interp(warped, np.arange(n), ch) for ch in audio])
    drive = rng.uniform(1.5, 3.0)
    saturated = tanh(drive * moved) / tanh(drive)
    lowpass = butter_sos(6, rng.uniform(8000, 11000), "lowpass")
    hiss = rng.uniform(0.002, 0.006) * rng.standard_normal((2, n))
    played = signal.sosfilt(lowpass, saturated + hiss, axis=1)
    return normalize(played, rng.uniform(0.75, 0.92))
