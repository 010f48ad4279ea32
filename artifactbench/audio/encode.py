"""In-memory encoding with PyAV: the real codecs behind demo hard negatives and robustness runs."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np


class EncodeError(Exception):
    """An encoder is missing or refused the audio (stage `encode`)."""


@dataclass(frozen=True)
class CodecSpec:
    container: str
    codec: str
    sample_format: str
    rates: tuple[int, ...] | None  # rates the encoder accepts; None = any


CODECS: dict[str, CodecSpec] = {
    "wav": CodecSpec("wav", "pcm_s16le", "s16", None),
    "flac": CodecSpec("flac", "flac", "s16", None),
    "mp3": CodecSpec("mp3", "libmp3lame", "fltp", (44100, 48000, 32000, 22050, 24000, 16000)),
    "aac": CodecSpec("adts", "aac", "fltp", None),
    "m4a": CodecSpec("ipod", "aac", "fltp", None),
    "opus": CodecSpec("ogg", "libopus", "flt", (48000, 24000, 16000, 12000, 8000)),
    "vorbis": CodecSpec("ogg", "vorbis", "fltp", None),
}


def encode_audio(audio: np.ndarray, rate: int, fmt: str, bitrate: int | None = None) -> bytes:
    """Encode float audio ([samples] or [channels, samples], in [-1, 1]) to `fmt` bytes.

    Opus only runs at 48 kHz and below: the caller's rate is kept when the encoder accepts
    it, else PyAV's resampler converts to the encoder's first accepted rate.
    """
    if fmt not in CODECS:
        raise EncodeError(f"unknown format {fmt!r}; choose from {', '.join(CODECS)}")
    spec = CODECS[fmt]
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    if fmt == "vorbis" and data.shape[0] == 1:
        data = np.repeat(data, 2, axis=0)  # FFmpeg's own Vorbis encoder takes stereo only
    channels = data.shape[0]
    out_rate = rate if spec.rates is None or rate in spec.rates else spec.rates[0]
    buf = io.BytesIO()
    try:
        # bitexact: the Ogg muxer otherwise draws a random stream serial, so the same audio
        # would encode to different bytes (and a different sha256) on every call.
        bitexact = {"fflags": "+bitexact"}
        with av.open(buf, mode="w", format=spec.container, container_options=bitexact) as container:
            stream = container.add_stream(spec.codec, rate=out_rate)
            stream.layout = "mono" if channels == 1 else "stereo"
            # The encoder's bitexact flag too: the AAC encoder otherwise writes its libavcodec
            # version string into the stream, so any FFmpeg update would change the bytes.
            options = {"flags": "+bitexact"}
            if spec.codec == "vorbis":  # FFmpeg's own Vorbis encoder is flagged experimental
                options["strict"] = "experimental"
            stream.codec_context.options = options
            if bitrate and spec.codec not in ("pcm_s16le", "flac"):
                stream.bit_rate = int(bitrate)
            resampler = av.AudioResampler(
                format=spec.sample_format, layout=stream.layout, rate=out_rate
            )
            frame_len = 4096
            clipped = np.clip(data, -1.0, 1.0)
            for start in range(0, clipped.shape[1], frame_len):
                block = np.ascontiguousarray(clipped[:, start : start + frame_len])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout.name)
                frame.sample_rate = rate
                frame.pts = None
                for rframe in resampler.resample(frame):
                    for packet in stream.encode(rframe):
                        container.mux(packet)
            for rframe in resampler.resample(None):
                for packet in stream.encode(rframe):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except (av.error.FFmpegError, av.codec.codec.UnknownCodecError, ValueError) as exc:
        raise EncodeError(f"{fmt} encode failed: {exc}") from exc
    return buf.getvalue()
