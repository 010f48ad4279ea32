"""Instrument voices: how one note of a timbre is rendered, by vectorised table lookups.

Notes are rendered one at a time with wavetable and decay-table lookups (no per-sample Python),
which is what keeps a whole track to about a tenth of a second of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from artifactbench.benches.demo.synth.portable import _LN2, RATE, cos, exp, power, sin

_TABLE = 8192  # wavetable length; nearest lookup keeps spurious partials near -70 dB
_SINE = sin(2 * np.pi * np.arange(_TABLE) / _TABLE).astype(np.float32)
_EXP_SPAN = 16.0  # the decay table covers exp(0) .. exp(-16)
_EXP = exp(-np.linspace(0.0, _EXP_SPAN, _TABLE)).astype(np.float32)
_MAX_NOTE = 8 * RATE  # longest single note; the shared ramps below are sliced, never rebuilt
_SAMPLES = np.arange(_MAX_NOTE, dtype=np.float32)
_SECONDS = np.arange(_MAX_NOTE) / RATE


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
