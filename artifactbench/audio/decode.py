"""The decode protocol: one 44.1 kHz mono float32 buffer per track, and each detector's view of it.

Every detector sees the same decoded buffer (decode once), then takes its own view: resample to
its rate, crop (centre | start) or cut evenly spaced chunks, end zero-pad. Anything that is not
real audio (empty, non-finite, undecodable, absurd rate or channel count, too long, truncated)
raises `DecodeError` with a one-line reason: it becomes a recorded failure, never silence.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import soxr

PROTOCOL_RATE = 44100
DECODE_PROTOCOL = "decode-v1:pyav:mean-mono:soxr-hq:44100:clip-1:float32"
_TRUNCATION_TOLERANCE = 0.02  # fraction of the declared duration that may go missing


class DecodeError(Exception):
    """The bytes are not usable audio; the message is one line saying why."""


@dataclass(frozen=True)
class DecodeLimits:
    """What counts as absurd input. `max_seconds=None` allows any length."""

    max_channels: int = 8
    min_rate: int = 4000
    max_rate: int = 384000
    max_seconds: float | None = 1800.0
    min_seconds: float = 0.1


@dataclass(frozen=True)
class ViewSpec:
    """How a detector looks at the protocol buffer.

    crop: `start` or `center` take one excerpt of `seconds`; `chunks` takes `n_chunks` excerpts
    of `seconds` at `linspace(0, len - chunk, n_chunks)` starts. `pad` zero-pads short audio at
    the end to the full excerpt length; without it short audio is returned as is.
    """

    rate: int = PROTOCOL_RATE
    seconds: float | None = None
    crop: Literal["start", "center", "chunks"] = "start"
    n_chunks: int = 1
    pad: bool = True


def decode_audio(
    source: bytes | str | os.PathLike, limits: DecodeLimits | None = None
) -> np.ndarray:
    """Decode any common format to the protocol buffer: mono by mean, 44.1 kHz, [-1, 1], float32."""
    limits = limits or DecodeLimits()
    data = source if isinstance(source, bytes) else _read_path(source)
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        mono, rate = _decode_mono(data, limits, exact=False)
    except _SumOverflow:
        mono, rate = _decode_mono(data, limits, exact=True)
    # min and max propagate NaN, so two reductions answer both checks without a mask array.
    lo, hi = float(mono.min()), float(mono.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DecodeError("non-finite samples (NaN or Inf) in the decoded audio")
    if lo == 0.0 and hi == 0.0:
        raise DecodeError("digital silence: every decoded sample is zero")
    if rate != PROTOCOL_RATE:
        mono = resample(mono, rate, PROTOCOL_RATE)
    elif lo >= -1.0 and hi <= 1.0:
        return mono  # clipping in-range samples changes no bits
    return np.clip(mono, -1.0, 1.0, out=mono)


def _read_path(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _decode_mono(data: bytes, limits: DecodeLimits, exact: bool) -> tuple[np.ndarray, int]:
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not a decodable audio file ({_short(exc)})") from exc
    with container:
        if not container.streams.audio:
            raise DecodeError("no audio stream in the file")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        channels = ctx.channels or 0
        rate = ctx.sample_rate or stream.rate or 0
        _check_format(channels, rate, limits)
        declared = container.duration / 1e6 if container.duration else None
        if limits.max_seconds is not None and declared and declared > limits.max_seconds * 1.01:
            raise DecodeError(
                f"too long: {declared:.0f} s exceeds the {limits.max_seconds:.0f} s limit"
            )
        mono, n = _decode_samples(container, stream, channels, rate, limits, exact)
    if n == 0:
        raise DecodeError("no audio samples decoded")
    seconds = n / rate
    if seconds < limits.min_seconds:
        raise DecodeError(f"too short: {n} samples ({seconds:.3f} s)")
    if (
        declared
        and _duration_is_exact(container.format.name, data)
        and (seconds < declared * (1 - _TRUNCATION_TOLERANCE) - 0.1)
    ):
        raise DecodeError(f"truncated: decoded {seconds:.2f} s of a declared {declared:.2f} s")
    missing = _wav_missing_bytes(data) if container.format.name == "wav" else 0
    if missing:
        raise DecodeError(f"truncated: the WAV header declares {missing} more bytes than it holds")
    return mono, rate


def _check_format(channels: int, rate: int, limits: DecodeLimits) -> None:
    if channels < 1 or rate <= 0:
        raise DecodeError("unreadable audio stream header (no channels or sample rate)")
    if channels > limits.max_channels:
        raise DecodeError(f"{channels} channels exceeds the limit of {limits.max_channels}")
    if not limits.min_rate <= rate <= limits.max_rate:
        raise DecodeError(f"sample rate {rate} Hz outside {limits.min_rate}-{limits.max_rate} Hz")


class _SumOverflow(Exception):
    """A float32 shortcut overflowed: only the float64 mean can say whether the sample is finite."""


# Sample formats read here, each converted to float32 exactly as libswresample converts it to
# `flt`: numpy dtype, planar, offset, scale (None: a plain cast, rounding to nearest). Others
# (s64, the rare planar u8 and float64) go through FFmpeg's own conversion.
_SAMPLE_FORMATS: dict[str, tuple[type[np.generic], bool, int, np.float32 | None]] = {
    "flt": (np.float32, False, 0, None),
    "fltp": (np.float32, True, 0, None),
    "dbl": (np.float64, False, 0, None),
    "s16": (np.int16, False, 0, np.float32(2.0**-15)),
    "s16p": (np.int16, True, 0, np.float32(2.0**-15)),
    "s32": (np.int32, False, 0, np.float32(2.0**-31)),
    "s32p": (np.int32, True, 0, np.float32(2.0**-31)),
    "u8": (np.uint8, False, 128, np.float32(2.0**-7)),
}
# PyAV finds a frame's planes by scanning for a null pointer, which runs past the end of the
# frame's eight inline data pointers when a planar frame fills all of them.
_MAX_PLANAR_CHANNELS = 7
_MAX_INITIAL_SAMPLES = 1 << 23

_Channels = tuple[list[np.ndarray], int, np.float32 | None]


def _decode_samples(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    channels: int,
    rate: int,
    limits: DecodeLimits,
    exact: bool,
) -> tuple[np.ndarray, int]:
    """Decode and mix down frame by frame into one preallocated float32 buffer.

    The protocol's mean is numpy's float64 `mean` over float32 samples, rounded to float32. With
    one or two channels the same bits come from float32 arithmetic: each frame stores its channel
    sum and `_finish_mean` adds +0.0 (numpy's sum starts there, turning -0.0 into +0.0) and
    halves. `exact` (and more channels) computes the float64 mean per frame instead.
    """
    max_samples = None if limits.max_seconds is None else int(limits.max_seconds * rate) + 1
    summing = channels <= 2 and not exact
    layout = stream.layout
    layout_name = layout.name
    buf = np.empty(_initial_capacity(container, rate, max_samples), dtype=np.float32)
    to_float: av.AudioResampler | None = None
    n = 0
    try:
        # Overflow: float64 samples beyond float32 range become inf, as in FFmpeg's conversion;
        # while summing it flags a sum that only the float64 mean keeps finite.
        with np.errstate(over="raise" if summing else "ignore"):
            for frame in container.decode(stream):
                if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                    raise DecodeError("sample rate or channel count changes mid-stream")
                k = frame.samples
                if n + k > len(buf):
                    buf = _grow(buf, n, n + k)
                source = (
                    _frame_channels(frame, channels) if frame.layout.name == layout_name else None
                )
                if source is not None:
                    _mix(source, buf[n : n + k], summing)
                    n += k
                else:
                    # Packed float: PyAV's planar `to_ndarray` crashes on frames of 8+ channels.
                    to_float = to_float or av.AudioResampler(format="flt", layout=layout, rate=rate)
                    for out in to_float.resample(frame):
                        m = out.samples
                        if n + m > len(buf):
                            buf = _grow(buf, n, n + m)
                        packed = out.to_ndarray().reshape(m, channels)
                        _mix(
                            ([packed[:, ch] for ch in range(channels)], 0, None),
                            buf[n : n + m],
                            summing,
                        )
                        n += m
                if max_samples is not None and n > max_samples:
                    raise DecodeError(f"too long: exceeds the {limits.max_seconds:.0f} s limit")
    except FloatingPointError as exc:
        raise _SumOverflow() from exc
    except av.error.FFmpegError as exc:
        at = n / rate if rate else 0.0
        raise DecodeError(f"corrupt audio data at {at:.2f} s ({_short(exc)})") from exc
    mono = buf[:n] if len(buf) - n <= n // 8 else buf[:n].copy()
    if summing:
        _finish_mean(mono, channels)
    return mono, n


def _initial_capacity(
    container: av.container.InputContainer, rate: int, max_samples: int | None
) -> int:
    """Room for the declared duration, so a well-formed file fills one buffer without growing."""
    declared = container.duration / 1e6 if container.duration else 0.0
    capacity = int(declared * rate * 1.01) + 8192 if declared > 0 else 1 << 18
    if max_samples is not None:
        capacity = min(capacity, max_samples + 8192)
    return max(min(capacity, _MAX_INITIAL_SAMPLES), 1)


def _grow(buf: np.ndarray, n: int, needed: int) -> np.ndarray:
    bigger = np.empty(max(needed, 2 * len(buf)), dtype=np.float32)
    bigger[:n] = buf[:n]
    return bigger


def _frame_channels(frame: av.AudioFrame, channels: int) -> _Channels | None:
    """Each channel of a frame as a 1-D array, or None for formats left to FFmpeg.

    Planar channels are zero-copy views. Packed integer or float64 frames of several channels
    are cast to float32 in one contiguous pass first (the same rounding as a per-channel cast),
    as strided casts are several times slower; offset and scale are still to be applied.
    """
    sample_format = _SAMPLE_FORMATS.get(frame.format.name)
    if sample_format is None:
        return None
    dtype, planar, offset, scale = sample_format
    k = frame.samples
    if planar:
        if channels > _MAX_PLANAR_CHANNELS:
            return None
        planes = frame.planes
        return (
            [np.frombuffer(planes[ch], dtype=dtype, count=k) for ch in range(channels)],
            offset,
            scale,
        )
    packed = np.frombuffer(frame.planes[0], dtype=dtype, count=k * channels)
    if channels == 1:
        return [packed], offset, scale
    if dtype is not np.float32:
        packed = packed.astype(np.float32)
    packed = packed.reshape(k, channels)
    return [packed[:, ch] for ch in range(channels)], offset, scale


def _mix(source: _Channels, out: np.ndarray, summing: bool) -> None:
    """One frame into `out`: the float32 channel sum when `summing`, else the protocol mean."""
    views, offset, scale = source
    if not summing:
        frames = np.empty((len(out), len(views)), dtype=np.float32)
        for ch, view in enumerate(views):
            _to_float(view, frames[:, ch], offset, scale)
        out[:] = frames.mean(axis=1, dtype=np.float64).astype(np.float32)
    elif len(views) == 1:
        _to_float(views[0], out, offset, scale)
    else:
        # Each channel is rounded to float32 before the add, as the conversion to `flt` does;
        # the offset and the power-of-two scale are exact on the sum.
        left, right = views
        if left.dtype == np.float32:
            np.add(left, right, out=out)
        else:
            np.add(left, right, out=out, dtype=np.float32, casting="unsafe")
        if offset:
            np.subtract(out, np.float32(2 * offset), out=out)
        if scale is not None:
            np.multiply(out, scale, out=out)


def _to_float(src: np.ndarray, out: np.ndarray, offset: int, scale: np.float32 | None) -> None:
    if src.dtype == np.float32 and scale is None:
        out[:] = src
    elif scale is None:
        np.copyto(out, src, casting="unsafe")
    elif offset:
        np.subtract(src, offset, out=out, dtype=np.float32, casting="unsafe")
        np.multiply(out, scale, out=out)
    else:
        np.multiply(src, scale, out=out, dtype=np.float32, casting="unsafe")


def _finish_mean(sums: np.ndarray, channels: int) -> None:
    """Turn float32 channel sums into numpy's float64 mean rounded to float32, in place."""
    sums += np.float32(0.0)
    if channels == 2:
        sums *= np.float32(0.5)


def _duration_is_exact(format_name: str, data: bytes) -> bool:
    """Whether the container's declared duration is a fact rather than a bitrate estimate."""
    if format_name in ("aac", "adts"):
        return False
    if format_name == "mp3":
        start = _id3v2_size(data)
        head = data[start : start + 4096]
        return any(tag in head for tag in (b"Xing", b"Info", b"VBRI"))
    return True


def _id3v2_size(data: bytes) -> int:
    """Length of a leading ID3v2 tag (cover art can make it large), 0 when there is none."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def _wav_missing_bytes(data: bytes) -> int:
    """Bytes a RIFF `data` chunk declares beyond the end of the file (0 for streamed WAVs)."""
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk_id == b"data":
            if size in (0, 0xFFFFFFFF):
                return 0
            return max(0, pos + 8 + size - len(data))
        pos += 8 + size + (size & 1)
    return 0


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\] ", "", text)[:160]


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr HQ), deterministic across platforms."""
    if src_rate == dst_rate:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio, dtype=np.float32), src_rate, dst_rate, "HQ")
    return np.asarray(out, dtype=np.float32)


def chunk_starts(length: int, chunk: int, n_chunks: int) -> np.ndarray:
    """Evenly spaced chunk starts, `linspace(0, length - chunk, n)`; all 0 when audio is short."""
    return np.linspace(0, max(length - chunk, 0), n_chunks).astype(np.int64)


def detector_view(audio: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """The detector's input from the protocol buffer: 1-D excerpt, or [n_chunks, chunk] chunks."""
    x = resample(audio, PROTOCOL_RATE, spec.rate)
    if spec.seconds is None:
        return x
    target = int(round(spec.seconds * spec.rate))
    if spec.crop == "chunks":
        padded = _end_pad(x, target)
        starts = chunk_starts(len(x), target, spec.n_chunks)
        return np.stack([padded[s : s + target] for s in starts])
    if len(x) > target:
        start = (len(x) - target) // 2 if spec.crop == "center" else 0
        return x[start : start + target]
    return _end_pad(x, target) if spec.pad else x


def _end_pad(x: np.ndarray, target: int) -> np.ndarray:
    if len(x) >= target:
        return x
    return np.concatenate([x, np.zeros(target - len(x), dtype=x.dtype)])
