"""The decode protocol: every format to one 44.1 kHz mono float32 buffer, failures with reasons,
and the detector views cut from that buffer."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from artifactbench.audio.decode import (
    PROTOCOL_RATE,
    DecodeError,
    DecodeLimits,
    ViewSpec,
    chunk_starts,
    decode_audio,
    detector_view,
    resample,
)
from artifactbench.audio.encode import encode_audio

SR = PROTOCOL_RATE
TONE_HZ = 1000.0
SECONDS = 2.0
PRIMING_TOLERANCE = int(0.05 * SR)  # encoder delay and frame padding of the lossy codecs
LSB16 = 1.0 / 32768


def tone(
    freq: float = TONE_HZ, rate: int = SR, seconds: float = SECONDS, amp: float = 0.5
) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def dominant_hz(audio: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def band_energy_fraction(audio: np.ndarray, lo: float, hi: float, rate: int = SR) -> float:
    power = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(power[(freqs >= lo) & (freqs <= hi)].sum() / power.sum())


def assert_one_line_reason(exc: pytest.ExceptionInfo[DecodeError], pattern: str) -> None:
    message = str(exc.value)
    assert message.strip(), "a decode failure must say why"
    assert "\n" not in message and "\r" not in message, message
    assert exc.match(pattern)


# --- every format, from bytes and from a path -------------------------------------------------

LOSSLESS = {"wav16", "wav_float", "flac"}
LOSSY = {"mp3", "aac", "m4a", "vorbis", "opus"}
SUFFIX = {
    "wav16": ".wav",
    "wav_float": ".wav",
    "flac": ".flac",
    "mp3": ".mp3",
    "aac": ".aac",
    "m4a": ".m4a",
    "vorbis": ".ogg",
    "opus": ".opus",
}


@cache
def encoded(fmt: str) -> bytes:
    if fmt == "wav16":
        return encode_audio(tone(), SR, "wav")
    if fmt == "wav_float":
        return wav_bytes(tone(), subtype="FLOAT")
    return encode_audio(tone(), SR, fmt)


@pytest.mark.parametrize("fmt", sorted(LOSSLESS | LOSSY))
def test_every_format_decodes_from_bytes_and_path(fmt: str, tmp_path: Path) -> None:
    data = encoded(fmt)
    path = tmp_path / f"tone{SUFFIX[fmt]}"
    path.write_bytes(data)

    from_bytes = decode_audio(data)
    for source in (path, str(path)):
        np.testing.assert_array_equal(decode_audio(source), from_bytes)

    y = from_bytes
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.all(np.isfinite(y)) and y.min() >= -1.0 and y.max() <= 1.0
    src = tone()
    if fmt in LOSSLESS:
        assert len(y) == len(src)
        tolerance = 0.0 if fmt == "wav_float" else LSB16
        assert np.max(np.abs(y - src)) <= tolerance
    else:
        assert abs(len(y) - len(src)) <= PRIMING_TOLERANCE
        assert abs(dominant_hz(y) - TONE_HZ) < 2.0
        assert band_energy_fraction(y, TONE_HZ - 20, TONE_HZ + 20) > 0.95
        middle = y[len(y) // 4 : 3 * len(y) // 4]
        rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
        assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "DOUBLE"])
def test_other_wav_sample_formats_are_scaled_to_unit_range(subtype: str) -> None:
    src = tone()
    y = decode_audio(wav_bytes(src, subtype=subtype))
    step = 1 / 128 if subtype == "PCM_U8" else LSB16 / 256
    assert y.dtype == np.float32 and len(y) == len(src)
    assert np.max(np.abs(y - src)) <= step


# --- mono by mean --------------------------------------------------------------------------------


def test_stereo_is_mixed_to_mono_by_mean() -> None:
    left, right = tone(440.0, amp=0.4), tone(1000.0, amp=0.2)
    stereo = np.stack([left, right], axis=1)
    y = decode_audio(wav_bytes(stereo, subtype="FLOAT"))
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)

    lossless = decode_audio(encode_audio(stereo.T, SR, "flac"))
    assert np.max(np.abs(lossless - (left + right) / 2)) <= LSB16


def test_lossy_stereo_keeps_both_channels_at_half_level() -> None:
    left, right = tone(440.0, amp=0.4), tone(1000.0, amp=0.4)
    y = decode_audio(encode_audio(np.stack([left, right]), SR, "mp3", bitrate=192_000))
    assert band_energy_fraction(y, 420, 460) == pytest.approx(0.5, abs=0.05)
    assert band_energy_fraction(y, 980, 1020) == pytest.approx(0.5, abs=0.05)
    middle = y[len(y) // 4 : 3 * len(y) // 4].astype(np.float64)
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.2, rel=0.1)


def test_opposite_channels_cancel_to_digital_silence() -> None:
    x = tone()
    with pytest.raises(DecodeError) as exc:
        decode_audio(wav_bytes(np.stack([x, -x], axis=1), subtype="FLOAT"))
    assert_one_line_reason(exc, "silence")


@pytest.mark.parametrize("channels", [6, 8, 16])
def test_many_channels_are_averaged(channels: int) -> None:
    freqs = [300.0 + 150.0 * c for c in range(channels)]
    multi = np.stack([tone(f, amp=0.05) for f in freqs], axis=1)
    limits = DecodeLimits(max_channels=16)
    y = decode_audio(wav_bytes(multi, subtype="FLOAT"), limits)
    np.testing.assert_allclose(y, multi.mean(axis=1), atol=1e-7)


# --- resampling to the protocol rate ----------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 22050, 8000])
def test_input_rates_are_resampled_to_44k1_keeping_the_tone(rate: int) -> None:
    src = tone(rate=rate)
    y = decode_audio(wav_bytes(src, rate, subtype="FLOAT"))
    assert y.dtype == np.float32
    assert len(y) == round(len(src) * SR / rate)
    assert dominant_hz(y) == pytest.approx(TONE_HZ, abs=1.0)
    # Away from the edges the resampled buffer is the same tone sampled at 44.1 kHz.
    ideal = tone(rate=SR)[: len(y)]
    edge = SR // 20
    assert np.max(np.abs(y - ideal)[edge:-edge]) < 1e-4


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_lossy_48k_input_lands_at_44k1(fmt: str) -> None:
    y = decode_audio(encode_audio(tone(rate=48000), 48000, fmt))
    assert abs(len(y) - int(SECONDS * SR)) <= PRIMING_TOLERANCE
    assert dominant_hz(y) == pytest.approx(TONE_HZ, abs=2.0)


def test_resample_is_identity_at_equal_rates_and_keeps_frequency() -> None:
    x = tone()
    assert resample(x, SR, SR) is x
    y = resample(x, SR, 16000)
    assert y.dtype == np.float32 and len(y) == int(SECONDS * 16000)
    assert dominant_hz(y, 16000) == pytest.approx(TONE_HZ, abs=1.0)


# --- clipping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [SR, 48000])
def test_out_of_range_float_wav_is_clipped(rate: int) -> None:
    src = tone(rate=rate, amp=3.0)
    y = decode_audio(wav_bytes(src, rate, subtype="FLOAT"))
    assert y.min() == -1.0 and y.max() == 1.0
    if rate == SR:
        inside = np.abs(src) < 1.0
        np.testing.assert_array_equal(y[inside], src[inside])
        np.testing.assert_array_equal(y[~inside], np.sign(src[~inside]))


# --- the broken-file corpus ---------------------------------------------------------------------


def truncated(fmt: str) -> bytes:
    data = encoded(fmt)
    return data[: len(data) // 2]


def _with_nan() -> bytes:
    x = tone()
    x[1234] = np.nan
    return wav_bytes(x, subtype="FLOAT")


def _with_inf() -> bytes:
    x = tone()
    x[-10] = -np.inf
    return wav_bytes(x, subtype="FLOAT")


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated_mp3": (lambda: truncated("mp3"), r"^truncated: decoded .* of a declared"),
    "truncated_flac": (lambda: truncated("flac"), r"^(corrupt audio data|truncated)"),
    "truncated_wav": (lambda: truncated("wav16"), r"^truncated: the WAV header declares"),
    "zero_bytes": (lambda: b"", r"^empty file"),
    "nan_float_wav": (_with_nan, r"non-finite"),
    "inf_float_wav": (_with_inf, r"non-finite"),
    "one_sample": (lambda: wav_bytes(tone()[:1]), r"^too short: 1 samples"),
    "sixteen_channels": (
        lambda: wav_bytes(np.tile(tone()[:, None], (1, 16))),
        r"^16 channels exceeds the limit of 8",
    ),
    "rate_2k": (lambda: wav_bytes(tone(rate=2000), 2000), r"^sample rate 2000 Hz outside"),
    "rate_768k": (
        lambda: wav_bytes(tone(rate=768000, seconds=0.5), 768000),
        r"^sample rate 768000 Hz outside",
    ),
    "all_zero": (lambda: wav_bytes(np.zeros(SR, dtype=np.float32)), r"digital silence"),
    "random_bytes": (
        lambda: np.random.default_rng(7).bytes(8192),
        r"^not a decodable audio file",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_fail_with_a_one_line_reason(case: str, tmp_path: Path) -> None:
    build, pattern = BROKEN[case]
    data = build()
    path = tmp_path / "broken.bin"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(DecodeError) as exc:
            decode_audio(source)
        assert_one_line_reason(exc, pattern)


def test_text_file_renamed_wav_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("These are my liner notes, not a recording.\n" * 20)
    with pytest.raises(DecodeError) as exc:
        decode_audio(path)
    assert_one_line_reason(exc, r"^not a decodable audio file")


def test_missing_path_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_audio(tmp_path / "nowhere.flac")
    assert_one_line_reason(exc, r"^cannot read .*nowhere\.flac")


@pytest.mark.parametrize("fmt", ["wav16", "flac", "mp3", "vorbis", "opus"])
def test_too_long_is_rejected_unless_the_limit_is_lifted(fmt: str) -> None:
    data = encoded(fmt)
    with pytest.raises(DecodeError) as exc:
        decode_audio(data, DecodeLimits(max_seconds=1.0))
    assert_one_line_reason(exc, r"^too long: .*1 s limit")
    y = decode_audio(data, DecodeLimits(max_seconds=None))
    assert abs(len(y) - int(SECONDS * SR)) <= PRIMING_TOLERANCE
    assert len(decode_audio(data, DecodeLimits(max_seconds=3.0))) == len(y)


# --- detector views -----------------------------------------------------------------------------

CHUNK = 4 * SR


def ramp(n: int) -> np.ndarray:
    """Distinct, position-revealing samples: any misplaced crop shows up as a mismatch."""
    return np.linspace(-0.9, 0.9, n, dtype=np.float32)


def test_chunks_view_takes_seven_evenly_spaced_chunks() -> None:
    rng = np.random.default_rng(3)
    audio = rng.uniform(-0.5, 0.5, 30 * SR + 7).astype(np.float32)
    view = detector_view(audio, ViewSpec(crop="chunks", seconds=4, n_chunks=7))
    assert view.shape == (7, 176400) and view.dtype == np.float32
    starts = np.linspace(0, len(audio) - CHUNK, 7).astype(int)
    np.testing.assert_array_equal(chunk_starts(len(audio), CHUNK, 7), starts)
    assert starts[0] == 0 and starts[-1] == len(audio) - CHUNK
    for chunk, start in zip(view, starts, strict=True):
        np.testing.assert_array_equal(chunk, audio[start : start + CHUNK])


def test_chunks_view_of_a_short_track_is_end_padded_from_zero() -> None:
    audio = ramp(2 * SR + 11)
    view = detector_view(audio, ViewSpec(crop="chunks", seconds=4, n_chunks=7))
    assert view.shape == (7, CHUNK)
    np.testing.assert_array_equal(chunk_starts(len(audio), CHUNK, 7), np.zeros(7, dtype=int))
    for chunk in view:
        np.testing.assert_array_equal(chunk[: len(audio)], audio)
        assert not np.any(chunk[len(audio) :])


def test_chunks_view_of_exactly_one_chunk_repeats_it() -> None:
    audio = ramp(CHUNK)
    view = detector_view(audio, ViewSpec(crop="chunks", seconds=4, n_chunks=7))
    np.testing.assert_array_equal(view, np.tile(audio, (7, 1)))


def test_center_crop_takes_the_middle() -> None:
    audio = ramp(10 * SR + 3)
    target = 4 * SR
    view = detector_view(audio, ViewSpec(crop="center", seconds=4))
    start = (len(audio) - target) // 2
    np.testing.assert_array_equal(view, audio[start : start + target])
    left, right = start, len(audio) - start - target
    assert abs(left - right) <= 1


def test_start_crop_takes_the_beginning() -> None:
    audio = ramp(10 * SR)
    view = detector_view(audio, ViewSpec(crop="start", seconds=4))
    np.testing.assert_array_equal(view, audio[: 4 * SR])


@pytest.mark.parametrize("crop", ["start", "center"])
def test_short_audio_is_end_padded_only_when_asked(crop: str) -> None:
    audio = ramp(3 * SR)
    padded = detector_view(audio, ViewSpec(crop=crop, seconds=5))
    assert padded.shape == (5 * SR,)
    np.testing.assert_array_equal(padded[: len(audio)], audio)
    assert not np.any(padded[len(audio) :])
    kept = detector_view(audio, ViewSpec(crop=crop, seconds=5, pad=False))
    np.testing.assert_array_equal(kept, audio)


def test_view_without_seconds_is_the_whole_buffer() -> None:
    audio = ramp(3 * SR)
    np.testing.assert_array_equal(detector_view(audio, ViewSpec()), audio)


def test_view_resampled_to_16k_has_the_right_length_and_tone() -> None:
    audio = tone(seconds=10.0)
    whole = detector_view(audio, ViewSpec(rate=16000))
    assert whole.dtype == np.float32 and len(whole) == 10 * 16000
    assert dominant_hz(whole, 16000) == pytest.approx(TONE_HZ, abs=1.0)

    noise = np.random.default_rng(5).uniform(-0.5, 0.5, 10 * SR).astype(np.float32)
    centred = detector_view(noise, ViewSpec(rate=16000, seconds=5, crop="center"))
    assert centred.shape == (5 * 16000,)
    np.testing.assert_array_equal(centred, resample(noise, SR, 16000)[40000:120000])

    short = detector_view(tone(seconds=2.0), ViewSpec(rate=16000, seconds=5, crop="center"))
    assert short.shape == (80000,)
    assert np.any(short[:32000]) and not np.any(short[32000:])
