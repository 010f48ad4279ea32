"""The demo bench's subsets: each one's recipe, and the rendering of one track from it.

A subset is a style of synthesized music, a process (none, a real-world chain, or an AI-generator
mechanism from `artifacts.py`) with its fixed model, and an encoder. Every track is a pure
function of (seed, subset, index): `render_track` draws it and `encode_track` stores it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from artifactbench.audio import encode as codecs
from artifactbench.benches.base import Label, SubsetInfo
from artifactbench.benches.demo import artifacts
from artifactbench.benches.demo.synth import (
    RATE,
    normalize,
    resample_poly,
    synthesize,
    tape_vintage,
)

Model = Any  # a subset's fixed "weights": codebooks, a kernel, a filterbank, or None
Process = Callable[[np.ndarray, np.random.Generator, Model], np.ndarray]


def _no_model(rng: np.random.Generator) -> None:
    return None


def _as_is(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    return audio


def _vintage(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    return tape_vintage(audio, rng)


def _rvq_model(stages: int, size: int, frame: int = 64) -> Callable[[np.random.Generator], Model]:
    """A codec 'trained' once per subset: k-means RVQ fitted on a corpus of studio renders."""

    def fit(rng: np.random.Generator) -> np.ndarray:
        corpus = [synthesize(rng, 6.0, "studio") for _ in range(4)]
        vectors = np.concatenate(
            [artifacts.mdct_frames(a, frame).reshape(-1, frame) for a in corpus]
        )
        sample = vectors[rng.permutation(len(vectors))[:16384]]
        return artifacts.fit_rvq(sample, stages, size, rng)

    return fit


def _rvq(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    return artifacts.rvq_bottleneck(audio, model)


def _upsampler_model(factor: int) -> Callable[[np.random.Generator], Model]:
    def make(rng: np.random.Generator) -> tuple[int, np.ndarray, float]:
        return factor, artifacts.tconv_kernel(factor, rng), float(rng.uniform(0.3, 0.5))

    return make


def _upsampler(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    factor, kernel, bias = model
    return artifacts.upsampler_generator(audio, factor, kernel, bias)


def _griffin_lim(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    return artifacts.mel_griffin_lim(
        audio, RATE, rng, n_fft=1024, hop=256, n_mels=128, iterations=16
    )


def _latent_model(latent_rate: int) -> Callable[[np.random.Generator], Model]:
    def make(rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        bank = artifacts.decoder_filterbank(latent_rate, rng)
        gains = rng.uniform(0.8, 1.2, len(bank))
        drives = rng.uniform(0.8, 2.0, len(bank))
        return latent_rate, bank, gains, drives

    return make


def _latent(audio: np.ndarray, rng: np.random.Generator, model: Model) -> np.ndarray:
    latent_rate, bank, gains, drives = model
    return artifacts.latent_decoder(audio, RATE, latent_rate, bank, gains, drives)


@dataclass(frozen=True)
class DemoSubset:
    """One sanity unit of the demo bench and the recipe that renders its tracks."""

    name: str
    label: Label
    fmt: str
    generator: str
    style: str = "studio"
    process: Process = _as_is
    make_model: Callable[[np.random.Generator], Model] = _no_model
    bitrate: int | None = None
    hard: bool = False
    costly_model: bool = False  # fitted while the first tracks render, not before

    @property
    def info(self) -> SubsetInfo:
        return SubsetInfo(self.name, self.label, self.hard)


_SUBSET_LIST = [
    DemoSubset("real_studio", "real", "flac", "synth studio mix, lossless FLAC"),
    DemoSubset(
        "real_live",
        "real",
        "flac",
        "synth live take: big room, loose timing, room noise; FLAC",
        style="live",
    ),
    DemoSubset("real_mp3", "real", "mp3", "synth studio mix, LAME MP3 128 kb/s", bitrate=128_000),
    DemoSubset("real_aac", "real", "m4a", "synth studio mix, AAC 128 kb/s in MP4", bitrate=128_000),
    DemoSubset(
        "real_vintage",
        "real",
        "flac",
        "synth mix through tape: wow/flutter, 8-11 kHz roll-off, saturation, hiss; FLAC",
        process=_vintage,
    ),
    DemoSubset(
        "real_opus",
        "real",
        "opus",
        "synth live take, Opus 96 kb/s (48 kHz) in Ogg",
        style="live",
        bitrate=96_000,
    ),
    DemoSubset(
        "ai_rvq_deep",
        "ai",
        "wav",
        "RVQ codec: MDCT-64 frames, 8 residual k-means stages x 1024 codes; WAV",
        process=_rvq,
        make_model=_rvq_model(8, 1024),
        costly_model=True,
    ),
    DemoSubset(
        "ai_rvq_shallow",
        "ai",
        "flac",
        "RVQ codec: MDCT-64 frames, 3 residual k-means stages x 64 codes; FLAC",
        process=_rvq,
        make_model=_rvq_model(3, 64),
        costly_model=True,
    ),
    DemoSubset(
        "ai_upsampler_x4",
        "ai",
        "flac",
        "transposed-conv decoder from 11.025 kHz (stride 4, learned kernel + bias); FLAC",
        process=_upsampler,
        make_model=_upsampler_model(4),
    ),
    DemoSubset(
        "ai_upsampler_x8",
        "ai",
        "mp3",
        "transposed-conv decoder from 5.5125 kHz (stride 8), shipped as MP3 320 kb/s",
        process=_upsampler,
        make_model=_upsampler_model(8),
        bitrate=320_000,
    ),
    DemoSubset(
        "ai_griffinlim",
        "ai",
        "flac",
        "mel vocoder: 128-mel STFT(1024/256), pseudo-inverse, 16 fast Griffin-Lim iters; FLAC",
        process=_griffin_lim,
    ),
    DemoSubset(
        "ai_latent_bandlimited",
        "ai",
        "flac",
        "latent decoder at 32 kHz: learned filterbank + tanh, band-limited to 16 kHz; FLAC",
        process=_latent,
        make_model=_latent_model(32000),
        hard=True,
    ),
]
DEMO_SUBSETS: dict[str, DemoSubset] = {s.name: s for s in _SUBSET_LIST}


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def track_rng(seed: int, subset: str, index: int) -> np.random.Generator:
    """The one generator a track is drawn from (stream 1; stream 2 is the subset's model)."""
    return np.random.default_rng([seed, _key(subset), 1, index])


def model_rng(seed: int, subset: str) -> np.random.Generator:
    return np.random.default_rng([seed, _key(subset), 2])


def _fit_model(seed: int, name: str) -> Model:
    return DEMO_SUBSETS[name].make_model(model_rng(seed, name))


def render_track(
    seed: int, subset: str, index: int, seconds: tuple[float, float], model: Model
) -> tuple[np.ndarray, np.ndarray, float]:
    """(source music, audio handed to the encoder, duration s) of one track, before encoding.

    Exposed so tests can compare what was stored with what was rendered.
    """
    spec = DEMO_SUBSETS[subset]
    rng = track_rng(seed, subset, index)
    n = int(rng.uniform(*seconds) * RATE)
    music = synthesize(rng, n / RATE, spec.style)
    out = spec.process(music, rng, model)
    if out is not music:
        out = normalize(out, rng.uniform(0.8, 0.94))
    return music, out, n / RATE


def encode_track(audio: np.ndarray, spec: DemoSubset) -> bytes:
    """The stored bytes of a rendered track.

    An encoder that does not take 44.1 kHz (Opus) gets the audio already resampled here, by the
    portable polyphase filter, rather than by FFmpeg's resampler, whose SIMD kernels round
    differently from CPU to CPU.
    """
    audio, rate = encoder_input(audio, spec)
    return codecs.encode_audio(audio, rate, spec.fmt, spec.bitrate)


def encoder_input(audio: np.ndarray, spec: DemoSubset) -> tuple[np.ndarray, int]:
    """The samples and rate a subset's encoder is given: portable, whatever the encoder does."""
    rates = codecs.CODECS[spec.fmt].rates
    rate = RATE if rates is None or RATE in rates else rates[0]
    if rate != RATE:
        g = math.gcd(rate, RATE)
        audio = resample_poly(audio, rate // g, RATE // g, axis=1)
    return audio, rate
