"""Deterministic synthesized multi-instrument music: the 'real' material of the demo bench.

Everything is drawn from one numpy Generator so a track is a pure function of its seed. Notes
are rendered one at a time with vectorised table lookups (no per-sample Python): a 14 s stereo
track costs about a tenth of a second of CPU, which is what lets the whole demo bench build in
well under a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from scipy import signal

RATE = 44100
_TABLE = 8192  # wavetable length; nearest lookup keeps spurious partials near -70 dB
_SINE = np.sin(2 * np.pi * np.arange(_TABLE) / _TABLE).astype(np.float32)
_EXP_SPAN = 16.0  # the decay table covers exp(0) .. exp(-16)
_EXP = np.exp(-np.linspace(0.0, _EXP_SPAN, _TABLE)).astype(np.float32)
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
    return 440.0 * 2.0 ** ((float(note) - 69.0) / 12.0)


@lru_cache(maxsize=256)
def _wavetable(harmonics: tuple[float, ...], count: int) -> np.ndarray:
    """One cycle of the first `count` harmonics; cached because notes reuse few timbres."""
    amps = np.asarray(harmonics[:count], dtype=np.float64)
    k = np.arange(1, len(amps) + 1)
    phase = 2 * np.pi * np.outer(np.arange(_TABLE) / _TABLE, k)
    table = (np.sin(phase) * amps).sum(axis=1)  # not a BLAS product: identical on any thread count
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
            cycles = cycles + ramp * freq * depth * (1 - np.cos(2 * np.pi * rate * t)) / (
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
                ratio = 2 ** (self.detune / 1200)
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
        harm = tuple(rng.uniform(0.6, 1.0) / k**1.4)
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
        harm = tuple(rng.uniform(0.7, 1.0) / k ** rng.uniform(0.9, 1.4))
        vib = (rng.uniform(4.5, 6.5), rng.uniform(0.003, 0.008), 0.15)
        return Voice(family, harm, (0.02, 0.1, 0.7, 0.15), vibrato=vib)
    if family == "bass":
        if rng.uniform() < 0.5:
            return Voice(family, (1.0,), (0.005, 0.3, 0.6, 0.06), fm_ratio=1.0, fm_index=1.2)
        return Voice(family, tuple(1 / k[:16] ** 1.1), (0.005, 0.2, 0.7, 0.05))
    if family == "pluck":
        pos = rng.uniform(0.1, 0.3)
        harm = tuple(np.abs(np.sin(np.pi * k * pos)) / k)
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
    phase = 2 * np.pi * (f_lo * t + (f_hi - f_lo) * tau_f * (1 - np.exp(-t / tau_f)))
    kick = np.sin(phase) * np.exp(-t / rng.uniform(0.12, 0.25))
    kick[: int(0.002 * RATE)] *= np.linspace(0, 1, int(0.002 * RATE))

    ns = int(0.3 * RATE)
    ts = t[:ns]
    band = signal.butter(
        2, [rng.uniform(900, 1500), rng.uniform(5000, 8000)], "bandpass", fs=RATE, output="sos"
    )
    noise = signal.sosfilt(band, rng.standard_normal(ns))
    noise /= np.abs(noise).max()
    tone = np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.05)
    snare = 0.8 * noise * np.exp(-ts / rng.uniform(0.05, 0.11)) + 0.5 * tone

    hp = signal.butter(4, rng.uniform(6000, 9000), "highpass", fs=RATE, output="sos")
    hiss = signal.sosfilt(hp, rng.standard_normal(ns))
    hiss /= np.abs(hiss).max()
    hat = hiss * np.exp(-ts / rng.uniform(0.015, 0.035))
    open_hat = hiss * np.exp(-ts / rng.uniform(0.12, 0.2))
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
    envelope = np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir = rng.standard_normal((2, length)) * envelope
    for _ in range(6):  # a few early reflections
        tap = int(rng.uniform(0.003, 0.04) * RATE)
        ir[:, tap] += rng.uniform(0.5, 2.0, 2) * rng.choice([-1, 1], 2)
    delay = int(rng.uniform(*style.predelay) * RATE)
    ir = np.pad(ir, ((0, 0), (delay, 0)))
    ir /= np.sqrt((ir**2).sum(axis=1, keepdims=True))
    size = sfft.next_fast_len(len(send) + ir.shape[1] - 1, real=True)
    spec = sfft.rfft(send, size) * sfft.rfft(ir.astype(np.float32), size, axis=1)
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
        mix[0] += np.float32(b.gain * np.cos(angle)) * b.audio
        mix[1] += np.float32(b.gain * np.sin(angle)) * b.audio
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
    wow = rng.uniform(0.0004, 0.0012) * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * t)
    flutter = rng.uniform(0.00003, 0.0001) * np.sin(2 * np.pi * rng.uniform(5, 9) * t)
    warped = np.clip(t + wow + flutter, 0, t[-1]) * RATE
    moved = np.stack([np.interp(warped, np.arange(n), ch) for ch in audio])
    drive = rng.uniform(1.5, 3.0)
    saturated = np.tanh(drive * moved) / np.tanh(drive)
    lowpass = signal.butter(6, rng.uniform(8000, 11000), "lowpass", fs=RATE, output="sos")
    hiss = rng.uniform(0.002, 0.006) * rng.standard_normal((2, n))
    played = signal.sosfilt(lowpass, saturated + hiss, axis=1)
    return normalize(played, rng.uniform(0.75, 0.92))
