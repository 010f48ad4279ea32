"""A whole track: tempo, harmony and parts played by voices, drums, mix, reverb, mastering.

Also the one real-world degradation the demo's real subsets use besides codecs and rooms: an
old analogue tape transfer (`tape_vintage`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import signal

from artifactbench.benches.demo.synth.portable import (
    RATE,
    butter_sos,
    complex_product,
    cos,
    exp,
    sin,
    tanh,
)
from artifactbench.benches.demo.synth.voices import Voice, _make_voice, midi_hz

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
