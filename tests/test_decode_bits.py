"""`decode_audio` gives the documented protocol's exact float32 bits on every decode path.

The reference below is the protocol written out plainly: PyAV decode, every frame converted to
packed float32 by FFmpeg, mean of the channels in float64 rounded to float32, soxr HQ to 44.1 kHz
when the rate differs, clip to [-1, 1]. Bits are compared as uint32, so -0.0 against +0.0 fails.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from artifactbench.audio.decode import PROTOCOL_RATE, DecodeError, DecodeLimits, decode_audio
from artifactbench.audio.encode import encode_audio

WIDE = DecodeLimits(max_channels=8, min_seconds=0.0)


def reference_mono(data: bytes) -> tuple[np.ndarray, int]:
    """The protocol's decode and mix down, step by step, with no shortcuts."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.channels
        to_flt = av.AudioResampler(format="flt", layout=stream.layout, rate=rate)
        blocks = [
            out.to_ndarray().reshape(-1, channels)
            for frame in container.decode(stream)
            for out in to_flt.resample(frame)
        ]
    samples = np.concatenate(blocks)
    assert samples.dtype == np.float32
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32), rate


def reference_decode(data: bytes) -> np.ndarray:
    """The whole protocol: decode, mix down, soxr HQ to 44.1 kHz if needed, clip."""
    mono, rate = reference_mono(data)
    if rate != PROTOCOL_RATE:
        mono = soxr.resample(mono, rate, PROTOCOL_RATE, "HQ")
    return np.clip(mono, -1.0, 1.0)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32 and expected.dtype == np.float32
    assert actual.ndim == 1 and actual.shape == expected.shape
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32))


def music(channels: int, rate: int, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """[channels, samples] float32: a different chord and some noise in each channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    chans = [
        0.25 * np.sin(2 * np.pi * (220.0 + 55.0 * c) * t)
        + 0.15 * np.sin(2 * np.pi * (1250.0 + 330.0 * c) * t)
        + 0.05 * rng.standard_normal(len(t))
        for c in range(channels)
    ]
    return np.clip(np.stack(chans), -1.0, 1.0).astype(np.float32)


def pyav_encode(
    audio: np.ndarray, rate: int, container: str, codec: str, sample_format: str, layout: str
) -> bytes:
    """Encode [channels, samples] float audio with any PyAV codec and sample format."""
    buf = io.BytesIO()
    options = {"flags": "+bitexact"}
    if codec == "vorbis":
        options["strict"] = "experimental"
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        stream.format = sample_format
        stream.codec_context.options = options
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
        for start in range(0, audio.shape[1], 4096):
            block = np.ascontiguousarray(audio[:, start : start + 4096].T).reshape(1, -1)
            # Packed input: PyAV cannot build planar frames of eight or more channels.
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout=layout)
            frame.sample_rate = rate
            for converted in resampler.resample(frame):
                converted.pts = None
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            converted.pts = None
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return buf.getvalue()


def wav_bytes(frames: np.ndarray, rate: int, subtype: str) -> bytes:
    """[samples, channels] written exactly as given (float subtypes keep every bit)."""
    buf = io.BytesIO()
    sf.write(buf, frames, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def decoded_format(data: bytes) -> str:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(audio=0)).format.name


# (container, codec, encoder sample format, layout, rate, the decoder's sample format)
CODEC_CASES = {
    "wav-s16-mono-44k": ("wav", "pcm_s16le", "s16", "mono", 44100, "s16"),
    "wav-s16-stereo-48k": ("wav", "pcm_s16le", "s16", "stereo", 48000, "s16"),
    "wav-u8-stereo-22k": ("wav", "pcm_u8", "u8", "stereo", 22050, "u8"),
    "wav-s24-stereo-44k": ("wav", "pcm_s24le", "s32", "stereo", 44100, "s32"),
    "wav-s32-mono-48k": ("wav", "pcm_s32le", "s32", "mono", 48000, "s32"),
    "wav-s32-stereo-44k": ("wav", "pcm_s32le", "s32", "stereo", 44100, "s32"),
    "wav-f32-3ch-44k": ("wav", "pcm_f32le", "flt", "3.0", 44100, "flt"),
    "wav-f64-stereo-44k": ("wav", "pcm_f64le", "dbl", "stereo", 44100, "dbl"),
    "wav-s64-stereo-44k": ("wav", "pcm_s64le", "s64", "stereo", 44100, "s64"),
    "wav-s16-7.1-44k": ("wav", "pcm_s16le", "s16", "7.1", 44100, "s16"),
    "wav-adpcm-stereo-44k": ("wav", "adpcm_ima_wav", "s16p", "stereo", 44100, "s16p"),
    "alac-s16-stereo-44k": ("caf", "alac", "s16p", "stereo", 44100, "s16p"),
    "alac-s32-mono-48k": ("caf", "alac", "s32p", "mono", 48000, "s32p"),
    "flac-s16-stereo-48k": ("flac", "flac", "s16", "stereo", 48000, "s16"),
    "flac-s32-5.1-44k": ("flac", "flac", "s32", "5.1", 44100, "s32"),
    "mp3-mono-22k": ("mp3", "libmp3lame", "fltp", "mono", 22050, "fltp"),
    "mp3-stereo-44k": ("mp3", "libmp3lame", "fltp", "stereo", 44100, "fltp"),
    "mp3-stereo-48k": ("mp3", "libmp3lame", "fltp", "stereo", 48000, "fltp"),
    "vorbis-stereo-44k": ("ogg", "vorbis", "fltp", "stereo", 44100, "fltp"),
    "opus-stereo-48k": ("ogg", "libopus", "flt", "stereo", 48000, "fltp"),
    "opus-7.1-48k": ("ogg", "libopus", "flt", "7.1", 48000, "fltp"),
    "aac-5.1-44k": ("adts", "aac", "fltp", "5.1", 44100, "fltp"),
    "aac-7.1-48k": ("adts", "aac", "fltp", "7.1", 48000, "fltp"),
    "ac3-5.1-48k": ("ac3", "ac3", "fltp", "5.1(side)", 48000, "fltp"),
}


@pytest.mark.parametrize("case", sorted(CODEC_CASES))
def test_every_codec_format_and_layout_matches_the_reference_bits(case: str) -> None:
    container, codec, sample_format, layout, rate, decoder_format = CODEC_CASES[case]
    channels = av.AudioLayout(layout).nb_channels
    data = pyav_encode(music(channels, rate), rate, container, codec, sample_format, layout)
    assert decoded_format(data) == decoder_format  # the decode path this case exercises
    assert_same_bits(decode_audio(data, WIDE), reference_decode(data))


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_full_precision_wav_samples_round_like_ffmpeg(channels: int, subtype: str) -> None:
    # float64 noise: PCM_32 and DOUBLE samples carry more bits than float32 holds, so the
    # rounding of each channel before the mean shows.
    noise = np.random.default_rng(channels).uniform(-0.99, 0.99, (8000, channels))
    data = wav_bytes(noise, PROTOCOL_RATE, subtype)
    assert_same_bits(decode_audio(data), reference_decode(data))


def edge_values(channels: int, seed: int) -> np.ndarray:
    """[samples, channels] float64 full of values whose float32 mean is easy to get wrong."""
    rng = np.random.default_rng(seed)
    n = 6000
    x = 0.4 * rng.standard_normal((n, channels))
    pick = rng.random((n, channels))
    tiny = np.float32(1e-45) * rng.integers(-3, 4, (n, channels))  # float32 subnormals
    x = np.where(pick < 0.2, tiny, x)
    x = np.where((pick >= 0.2) & (pick < 0.35), -0.0, x)
    x = np.where((pick >= 0.35) & (pick < 0.4), 3.0 * np.sign(x), x)  # clipped later
    x[:300] = -0.0
    x[300:310] = 0.0
    return x


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_signed_zeros_subnormals_and_overs_keep_the_reference_bits(
    channels: int, rate: int, subtype: str
) -> None:
    data = wav_bytes(edge_values(channels, seed=channels), rate, subtype)
    assert_same_bits(decode_audio(data), reference_decode(data))


def test_negative_zero_becomes_positive_zero_but_a_halved_subnormal_keeps_its_sign() -> None:
    smallest = float(np.float32(1e-45))
    stereo = np.array([[-0.0, -0.0], [-smallest, 0.0], [0.5, -0.0], [-0.0, 0.25]] * 2000)
    y = decode_audio(wav_bytes(stereo, PROTOCOL_RATE, "FLOAT"))
    assert np.signbit(y[0::4]).sum() == 0  # mean of two -0.0 is +0.0
    assert np.all(y[1::4] == 0.0) and np.all(np.signbit(y[1::4]))  # -2**-150 rounds to -0.0
    np.testing.assert_array_equal(y[2::4], 0.25)
    np.testing.assert_array_equal(y[3::4], 0.125)

    mono = stereo[:, :1]
    y = decode_audio(wav_bytes(mono, PROTOCOL_RATE, "FLOAT"))
    assert not np.any(np.signbit(y[0::4]))
    assert np.all(np.signbit(y[1::4])) and np.all(y[1::4] == -smallest)


def test_a_float32_overflowing_channel_sum_takes_the_float64_mean() -> None:
    x = music(2, PROTOCOL_RATE).T.astype(np.float64)
    x[::50] = 3.0e38  # left + right overflows float32; their mean does not
    data = wav_bytes(x, PROTOCOL_RATE, "FLOAT")
    y = decode_audio(data)
    assert_same_bits(y, reference_decode(data))
    np.testing.assert_array_equal(y[::50], 1.0)


def test_float64_samples_beyond_float32_range_are_non_finite() -> None:
    x = music(2, PROTOCOL_RATE).T.astype(np.float64)
    x[1000, 1] = 1e300
    data = wav_bytes(x, PROTOCOL_RATE, "DOUBLE")
    assert not np.all(np.isfinite(reference_mono(data)[0]))
    with pytest.raises(DecodeError, match="^non-finite samples"):
        decode_audio(data)


@pytest.mark.parametrize(("channels", "subtype"), [(1, "PCM_16"), (2, "PCM_16"), (2, "FLOAT")])
def test_a_file_of_one_frame(channels: int, subtype: str) -> None:
    data = wav_bytes(music(channels, PROTOCOL_RATE, seconds=0.09).T, PROTOCOL_RATE, subtype)
    with av.open(io.BytesIO(data)) as container:
        assert len(list(container.decode(audio=0))) == 1
    assert_same_bits(decode_audio(data, WIDE), reference_decode(data))


def test_a_stream_longer_than_its_declared_duration_is_decoded_whole() -> None:
    # FFmpeg's Vorbis muxing declares a fraction of the real length at 48 kHz.
    rate = 48000
    data = encode_audio(music(2, rate, seconds=4.0), rate, "vorbis")
    with av.open(io.BytesIO(data)) as container:
        assert container.duration / 1e6 < 2.0
    y = decode_audio(data)
    assert abs(len(y) - 4 * PROTOCOL_RATE) < PROTOCOL_RATE // 10
    assert_same_bits(y, reference_decode(data))


@pytest.mark.parametrize(
    ("codec", "sample_format"), [("pcm_s16le", "s16"), ("pcm_f32le", "flt"), ("pcm_s64le", "s64")]
)
def test_max_seconds_is_enforced_while_decoding(codec: str, sample_format: str) -> None:
    # Declared 1.0 s is within 1% of the 0.995 s limit, so only the count of decoded samples
    # can refuse it; s64 goes through FFmpeg's conversion instead of the direct one.
    data = pyav_encode(music(2, 44100, 1.0), 44100, "wav", codec, sample_format, "stereo")
    with pytest.raises(DecodeError, match=r"^too long: exceeds the 1 s limit$"):
        decode_audio(data, DecodeLimits(max_seconds=0.995))
    assert len(decode_audio(data, DecodeLimits(max_seconds=1.0))) == 44100


def test_corrupt_data_reports_how_far_decoding_got() -> None:
    data = bytearray(encode_audio(music(2, PROTOCOL_RATE, seconds=2.0), PROTOCOL_RATE, "mp3"))
    middle = len(data) // 2
    data[middle : middle + 200] = np.random.default_rng(0).integers(0, 256, 200, np.uint8).tobytes()
    decoded = 0
    with av.open(io.BytesIO(bytes(data))) as container, pytest.raises(av.error.FFmpegError):
        for frame in container.decode(audio=0):
            decoded += frame.samples
    assert decoded > 0
    with pytest.raises(DecodeError, match=rf"^corrupt audio data at {decoded / 44100:.2f} s \("):
        decode_audio(bytes(data))


def test_a_wav_with_no_samples_is_refused() -> None:
    data = wav_bytes(np.zeros((0, 2), dtype=np.float32), PROTOCOL_RATE, "PCM_16")
    with pytest.raises(DecodeError, match="^no audio samples decoded$"):
        decode_audio(data)


def test_the_buffer_is_a_fresh_array_each_call() -> None:
    data = wav_bytes(music(2, 48000).T, 48000, "PCM_16")
    first = decode_audio(data)
    first[:] = 7.0
    again = decode_audio(data)
    assert again.flags.writeable and again.flags.c_contiguous
    assert_same_bits(again, reference_decode(data))
