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
    mono, rate = _decode_mono(data, limits)
    if not np.all(np.isfinite(mono)):
        raise DecodeError("non-finite samples (NaN or Inf) in the decoded audio")
    if not np.any(mono):
        raise DecodeError("digital silence: every decoded sample is zero")
    if rate != PROTOCOL_RATE:
        mono = resample(mono, rate, PROTOCOL_RATE)
    return np.clip(mono, -1.0, 1.0, out=mono)


def _read_path(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _decode_mono(data: bytes, limits: DecodeLimits) -> tuple[np.ndarray, int]:
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
        blocks, n = _decode_blocks(container, stream, channels, rate, limits)
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
    return np.concatenate(blocks), rate


def _check_format(channels: int, rate: int, limits: DecodeLimits) -> None:
    if channels < 1 or rate <= 0:
        raise DecodeError("unreadable audio stream header (no channels or sample rate)")
    if channels > limits.max_channels:
        raise DecodeError(f"{channels} channels exceeds the limit of {limits.max_channels}")
    if not limits.min_rate <= rate <= limits.max_rate:
        raise DecodeError(f"sample rate {rate} Hz outside {limits.min_rate}-{limits.max_rate} Hz")


def _decode_blocks(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    channels: int,
    rate: int,
    limits: DecodeLimits,
) -> tuple[list[np.ndarray], int]:
    max_samples = None if limits.max_seconds is None else int(limits.max_seconds * rate) + 1
    # Packed float: PyAV's planar `to_ndarray` crashes the process on frames of 8+ channels.
    to_float = av.AudioResampler(format="flt", layout=stream.layout, rate=rate)
    blocks: list[np.ndarray] = []
    n = 0
    try:
        for frame in container.decode(stream):
            if frame.sample_rate != rate or len(frame.layout.channels) != channels:
                raise DecodeError("sample rate or channel count changes mid-stream")
            for out in to_float.resample(frame):
                frames = out.to_ndarray().reshape(-1, channels)
                block = frames.mean(axis=1, dtype=np.float64).astype(np.float32)
                blocks.append(block)
                n += block.shape[0]
            if max_samples is not None and n > max_samples:
                raise DecodeError(f"too long: exceeds the {limits.max_seconds:.0f} s limit")
    except av.error.FFmpegError as exc:
        at = n / rate if rate else 0.0
        raise DecodeError(f"corrupt audio data at {at:.2f} s ({_short(exc)})") from exc
    return blocks, n


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
