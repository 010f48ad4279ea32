"""Signal transforms on the protocol buffer, for robustness runs.

A robustness run asks whether a detector still works once a track has been degraded or
"laundered" the way it might be before it reaches the detector: resampled, low-passed, re-encoded,
re-synthesised by a source separator. Each transform maps the decoded protocol buffer (mono
float32, normally at 44.1 kHz) to a buffer of the same length, dtype and range, so every detector
view downstream is unchanged.

Transforms are named by short spec strings (`resample:16000`, `noise:20`, ...) that
`parse_transforms` turns into a chain applied in order. Each spec has one canonical spelling, so
`chain_spec` / `chain_hash` identify the chain in run records whatever the user typed. Randomness
is drawn from a sha256 of (seed, track key, spec): a track gets the same noise in any process and
in any processing order.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artifactbench.audio.decode import (
    PROTOCOL_RATE,
    DecodeError,
    DecodeLimits,
    decode_audio,
    resample,
)
from artifactbench.audio.encode import CODECS as CONTAINERS
from artifactbench.audio.encode import EncodeError, encode_audio

if TYPE_CHECKING:
    from artifactbench.audio.separation import Separator

# Bump when a transform's implementation changes what it outputs: it is part of `chain_hash`.
TRANSFORMS_VERSION = "transforms-v1"
# The codec round trips of `artifactbench codec` (Table X): container/encoder and bitrate.
CODECS: dict[str, tuple[str, int | None]] = {
    "wav": ("wav", None),
    "mp3-128": ("mp3", 128000),
    "mp3-320": ("mp3", 320000),
    "aac-128": ("aac", 128000),
    "opus-128": ("opus", 128000),
    "opus-192": ("opus", 192000),
}

MIN_RATE, MAX_RATE = 4000, PROTOCOL_RATE
MIN_LOWPASS = 20.0
LOWPASS_ORDER = 8  # Butterworth order per pass; filtfilt runs it twice (16th-order magnitude)
MP3_BITRATE = 128000
# The encoded audio came from an accepted track: no length limits on the way back.
_REDECODE_LIMITS = DecodeLimits(max_seconds=None, min_seconds=0.0)


class TransformError(Exception):
    """A transform could not process a track (e.g. an encoder refused it); one-line message."""


class TransformUnavailable(TransformError):
    """What a transform needs (a package, model weights) is not on this machine; says what."""


class Transform(ABC):
    """One step of a chain. Subclasses implement `spec` and `_apply`; `apply` enforces the
    protocol's invariants (float32, same length, finite, in [-1, 1]) for all of them."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec string: equal specs mean equal processing."""

    @abstractmethod
    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        """The transform proper, on a non-empty finite 1-D float32 buffer."""

    def describe(self) -> dict[str, Any]:
        """What to record beside results (may load what the transform needs, and so raise
        `TransformUnavailable` early, before any track is processed)."""
        return {"spec": self.spec}

    def apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        """Transform one track's protocol buffer; `seed` and `key` (the track's identity) seed
        any randomness. The input is never modified."""
        x = _as_buffer(audio)
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        if x.size == 0:
            return x.copy()
        out = np.asarray(self._apply(x, int(rate), int(seed), str(key)), dtype=np.float32)
        if out.shape != x.shape:  # a guard on the implementations, not on the caller
            raise TransformError(f"{self.spec} changed the shape {x.shape} to {out.shape}")
        if not np.all(np.isfinite(out)):
            raise TransformError(f"{self.spec} produced non-finite samples")
        return np.clip(out, -1.0, 1.0)

    @property
    def seeded(self) -> bool:
        """Whether the output depends on the run seed (then so must any cache key of it)."""
        return False

    def __str__(self) -> str:
        return self.spec


def _as_buffer(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono 1-D buffer, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("non-finite samples (NaN or Inf) in the input buffer")
    return x


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    """Trim or end-pad with zeros to `length` samples (codec and resampler round trips)."""
    if len(x) >= length:
        return x[:length]
    return np.concatenate([x, np.zeros(length - len(x), dtype=x.dtype)])


def _number(value: float) -> str:
    """Canonical spelling: integral values without a decimal point, others as Python's
    shortest round-trip repr (so "-6.0", "-6" and "-6e0" are all "-6")."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _rng(seed: int, key: str, spec: str) -> np.random.Generator:
    """A generator that depends only on (seed, key, spec), stably across processes (unlike
    Python's salted `hash`)."""
    digest = hashlib.sha256(json.dumps([seed, key, spec]).encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))


@dataclass(frozen=True)
class Resample(Transform):
    """Down to `rate` and back with soxr HQ: removes everything above `rate / 2` (the
    band-limit of a low-rate copy of the track). A no-op when `rate` is not below the input's."""

    rate: int

    @property
    def spec(self) -> str:
        return f"resample:{self.rate}"

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        if self.rate >= rate:
            return audio.copy()
        low = resample(audio, rate, self.rate)
        return _fit(resample(low, self.rate, rate), len(audio))


@cache
def _lowpass_sos(hz: float, rate: int) -> np.ndarray:
    from scipy.signal import butter  # half a second to import: only runs that low-pass pay it

    return butter(LOWPASS_ORDER, hz, btype="low", fs=rate, output="sos")


@dataclass(frozen=True)
class Lowpass(Transform):
    """Zero-phase Butterworth low-pass (order 8, run forward and backward with `sosfiltfilt`).

    Why Butterworth rather than an FFT brick wall: no ringing spread over the whole track from
    transients, and the roll-off of a real filter. Forward-backward makes it zero-phase (nothing
    shifts in time) and doubles the attenuation: `hz` is the -6 dB point, one octave above it is
    about -96 dB. A no-op when `hz` is at or above the input's Nyquist frequency.
    """

    hz: float

    @property
    def spec(self) -> str:
        return f"lowpass:{_number(self.hz)}"

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        if self.hz >= rate / 2:
            return audio.copy()
        sos = _lowpass_sos(float(self.hz), rate)
        # scipy's default edge padding, shortened for very short buffers it would not accept.
        zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        padlen = min(3 * (2 * len(sos) + 1 - zeros), len(audio) - 1)
        from scipy.signal import sosfiltfilt

        return sosfiltfilt(sos, audio.astype(np.float64), padlen=padlen)


@dataclass(frozen=True)
class Gain(Transform):
    """Scale by `db` decibels, then clip to [-1, 1] as the decode protocol does: a positive gain
    on a loud track is a clipping distortion, not a lossless rescaling."""

    db: float

    @property
    def spec(self) -> str:
        return f"gain:{_number(self.db)}"

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        return audio.astype(np.float64) * 10.0 ** (self.db / 20.0)


@dataclass(frozen=True)
class Noise(Transform):
    """Add white Gaussian noise `snr_db` below the buffer's mean power.

    The drawn noise is rescaled to exactly the target power, so the SNR does not wander with
    track length (before the final clip to [-1, 1]). A silent buffer stays silent: it has no
    power to be relative to.
    """

    snr_db: float

    @property
    def spec(self) -> str:
        return f"noise:{_number(self.snr_db)}"

    @property
    def seeded(self) -> bool:
        return True

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        x = audio.astype(np.float64)
        power = float(np.mean(x * x))
        if power == 0.0:
            return audio.copy()
        noise = _rng(seed, key, self.spec).standard_normal(len(x))
        target = power / 10.0 ** (self.snr_db / 10.0)
        return x + noise * math.sqrt(target / float(np.mean(noise * noise)))


@dataclass(frozen=True)
class Mp3Chain(Transform):
    """`generations` successive MP3 128 kbps encode/decode round trips (LAME via PyAV).

    The mono buffer is encoded as dual-mono stereo, as a 128 kbps stereo MP3 of the track would
    be: LAME then applies its ~17 kHz low-pass for that bitrate, whereas a mono stream at 128 kbps
    has twice the bits and keeps content up to ~20 kHz. FFmpeg removes the encoder delay on
    decoding; each generation is trimmed or zero-padded back to the input length.
    """

    generations: int

    @property
    def spec(self) -> str:
        return f"mp3-chain:{self.generations}"

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        x = audio
        for generation in range(1, self.generations + 1):
            if not np.any(x):  # MP3 keeps digital silence silent; decode_audio refuses it
                return np.zeros_like(audio)
            try:
                data = encode_audio(np.stack([x, x]), rate, "mp3", MP3_BITRATE)
                decoded = decode_audio(data, _REDECODE_LIMITS)
            except DecodeError as exc:
                if str(exc).startswith("digital silence"):  # a near-silent input quantised away
                    return np.zeros_like(audio)
                raise TransformError(f"{self.spec} generation {generation}: {exc}") from exc
            except EncodeError as exc:
                raise TransformError(f"{self.spec} generation {generation}: {exc}") from exc
            decoded = resample(decoded, PROTOCOL_RATE, rate)  # decode_audio gives 44.1 kHz
            x = _fit(decoded, len(audio))
        return x


@dataclass(frozen=True)
class Codec(Transform):
    """One encode/decode round trip of the mono buffer in memory (PyAV: 16-bit PCM WAV,
    libmp3lame, FFmpeg's aac, libopus), decoded by the protocol and trimmed or zero-padded back to
    the input length. A failure is a `TransformError` whose message starts with "encode"."""

    name: str

    @property
    def spec(self) -> str:
        return f"codec:{self.name}"

    def describe(self) -> dict[str, Any]:
        """The encoder and bitrate; raises `TransformUnavailable` when this PyAV build lacks
        the encoder, so a run stops before any track rather than failing every one."""
        import av

        fmt, bitrate = CODECS[self.name]
        encoder = CONTAINERS[fmt].codec
        try:
            av.codec.Codec(encoder, "w")
        except (av.codec.codec.UnknownCodecError, ValueError) as exc:
            raise TransformUnavailable(
                f"encode {self.name}: FFmpeg encoder {encoder!r} is not in this PyAV build"
            ) from exc
        return {"spec": self.spec, "encoder": encoder, "bitrate": bitrate, "pyav": av.__version__}

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        fmt, bitrate = CODECS[self.name]
        try:
            data = encode_audio(audio, rate, fmt, bitrate)
        except EncodeError as exc:
            raise TransformError(f"encode {self.name}: {exc}") from exc
        try:
            decoded = decode_audio(data, _REDECODE_LIMITS)
        except DecodeError as exc:
            if str(exc).startswith("digital silence"):  # silence (or near) stays silence
                return np.zeros_like(audio)
            raise TransformError(f"encode {self.name}: decoding it back failed: {exc}") from exc
        return _fit(resample(decoded, PROTOCOL_RATE, rate), len(audio))


def _codec(text: str, arg: str) -> Transform:
    if arg.lower() not in CODECS:
        raise _bad(text, f"NAME must be one of {', '.join(CODECS)}")
    return Codec(arg.lower())


@dataclass(frozen=True)
class Demucs(Transform):
    """The sum of the Demucs stems (`Separator.remix`): the track re-synthesised by the separator.

    The bag is loaded once per instance from `directory`, default `separation.demucs_dir()`
    (so `ARTIFACTBENCH_DEMUCS` is honoured). The spec stays `demucs`, free of paths, so run
    hashes do not depend on where the weights live; `describe()` records the files' sha256s.
    Audio at another rate than the bag's is resampled to it and back (soxr HQ).
    """

    directory: Path | None = None

    @property
    def spec(self) -> str:
        return "demucs"

    @cached_property
    def separator(self) -> Separator:
        """The loaded bag; raises `TransformUnavailable` with the reason when it cannot be."""
        from artifactbench.audio.separation import (
            DemucsUnavailable,
            demucs_available,
            load_separator,
        )

        reason = demucs_available(self.directory)
        if reason is not None:
            raise TransformUnavailable(f"demucs transform unavailable: {reason}")
        try:
            return load_separator(self.directory)
        except (DemucsUnavailable, ValueError, OSError) as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise TransformUnavailable(f"demucs transform unavailable: {lines[0]}") from exc

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "separator": self.separator.provenance()}

    def _apply(self, audio: np.ndarray, rate: int, seed: int, key: str) -> np.ndarray:
        sep = self.separator
        x = resample(audio, rate, sep.samplerate)
        remix = sep.remix(x[None, :])[0].detach().cpu().numpy().astype(np.float32)
        return _fit(resample(remix, sep.samplerate, rate), len(audio))


def _bad(text: str, why: str) -> ValueError:
    return ValueError(f"bad transform {text!r}: {why}; choose from: {FORMS}")


def _parse_number(text: str, arg: str, what: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise _bad(text, f"{what} must be a number") from None
    if not math.isfinite(value):
        raise _bad(text, f"{what} must be finite")
    return value


def _parse_int(text: str, arg: str, what: str, lo: int, hi: int | None) -> int:
    value = _parse_number(text, arg, what)
    if value != int(value) or value < lo or (hi is not None and value > hi):
        bounds = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise _bad(text, f"{what} must be an integer {bounds}")
    return int(value)


def _resample(text: str, arg: str) -> Transform:
    return Resample(_parse_int(text, arg, "RATE", MIN_RATE, MAX_RATE))


def _lowpass(text: str, arg: str) -> Transform:
    hz = _parse_number(text, arg, "HZ")
    nyquist = PROTOCOL_RATE / 2
    if not MIN_LOWPASS <= hz < nyquist:
        raise _bad(text, f"HZ must be from {_number(MIN_LOWPASS)} to below {_number(nyquist)}")
    return Lowpass(hz)


@dataclass(frozen=True)
class TransformForm:
    """How one transform is written: its argument's name (None: it takes none) and the parser
    of `(spec text, argument)`."""

    argument: str | None
    parse: Callable[[str, str], Transform]


# name -> form: every transform a spec may name, in the order errors list them.
TRANSFORMS: dict[str, TransformForm] = {
    "resample": TransformForm("RATE", _resample),
    "lowpass": TransformForm("HZ", _lowpass),
    "gain": TransformForm("DB", lambda text, arg: Gain(_parse_number(text, arg, "DB"))),
    "noise": TransformForm("SNR_DB", lambda text, arg: Noise(_parse_number(text, arg, "SNR_DB"))),
    "mp3-chain": TransformForm(
        "N", lambda text, arg: Mp3Chain(_parse_int(text, arg, "N", 1, None))
    ),
    "codec": TransformForm("NAME", _codec),
    "demucs": TransformForm(None, lambda text, arg: Demucs()),
}
FORMS = ", ".join(
    f"{name}:{form.argument}" if form.argument else name for name, form in TRANSFORMS.items()
)
# Why a transform without an argument was given one.
_NO_ARGUMENT = {"demucs": "set ARTIFACTBENCH_DEMUCS for its weights"}


def parse_transform(text: str) -> Transform:
    """One spec (`name:ARG`, or a name without argument); names are case-insensitive, spaces
    ignored."""
    name, colon, arg = text.strip().partition(":")
    name, arg = name.strip().lower(), arg.strip()
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {text.strip()!r}; choose from: {FORMS}")
    form = TRANSFORMS[name]
    if form.argument is None and colon:
        why = f" ({_NO_ARGUMENT[name]})" if name in _NO_ARGUMENT else ""
        raise _bad(text, f"{name} takes no argument{why}")
    if form.argument is not None and not arg:
        raise _bad(text, f"{name} needs an argument")
    return form.parse(text.strip(), arg)


def parse_transforms(specs: Sequence[str] | str) -> list[Transform]:
    """Specs as given on a command line, each possibly comma-separated, in application order:
    `["resample:16000,noise:20", "mp3-chain:2"]` is three steps. Nothing is loaded here."""
    items = [specs] if isinstance(specs, str) else list(specs)
    transforms = []
    for item in items:
        for part in item.split(","):
            if not part.strip():
                raise ValueError(f"empty transform in {item!r}; choose from: {FORMS}")
            transforms.append(parse_transform(part))
    return transforms


def chain_spec(transforms: Iterable[Transform]) -> str:
    """The canonical chain, comma-joined in order, for run records ("" for no transforms)."""
    return ",".join(t.spec for t in transforms)


def chain_hash(transforms: Iterable[Transform]) -> str:
    """16 hex digits of sha256 over the canonical chain and `TRANSFORMS_VERSION`, to fold into a
    protocol hash; "" for no transforms, so untransformed runs keep their existing hashes."""
    spec = chain_spec(transforms)
    if not spec:
        return ""
    return hashlib.sha256(f"{TRANSFORMS_VERSION}|{spec}".encode()).hexdigest()[:16]


def codec_chains(names: Iterable[str], prefix: Sequence[Transform] = ()) -> list[list[Transform]]:
    """One chain per codec round trip (`prefix` applied first), each codec once, in the order
    given; ValueError naming the codecs when one is unknown or none is given."""
    wanted = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in CODECS]
    if unknown or not wanted:
        given = unknown[0] if unknown else ",".join(names)
        raise ValueError(f"unknown codec {given!r}; choose from: {', '.join(CODECS)}")
    return [[*prefix, *parse_transforms(f"codec:{name}")] for name in wanted]


def describe_chain(transforms: Iterable[Transform]) -> list[dict[str, Any]]:
    """Each step's record (loading what it needs: call before a run to fail early)."""
    return [t.describe() for t in transforms]


def apply_chain(
    transforms: Sequence[Transform], audio: np.ndarray, rate: int, seed: int, key: str
) -> np.ndarray:
    """Apply the steps in order. A spec repeated in the chain gets `key` suffixed with its
    repeat count, so `noise:20,noise:20` adds two independent draws, while a step's first
    occurrence sees `key` itself (a one-step chain equals `Transform.apply`)."""
    x = np.clip(_as_buffer(audio), -1.0, 1.0)
    seen: dict[str, int] = {}
    for transform in transforms:
        repeat = seen.get(transform.spec, 0)
        seen[transform.spec] = repeat + 1
        x = transform.apply(x, rate, seed, key if repeat == 0 else f"{key}\x00{repeat}")
    return x
