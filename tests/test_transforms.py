"""Robustness transforms on the protocol buffer: what each one does to real signals, that it is
deterministic per (seed, track), and that specs parse to one canonical, hashable chain."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from artifactbench.audio.decode import PROTOCOL_RATE
from artifactbench.audio.transforms import (
    FORMS,
    Demucs,
    Gain,
    Lowpass,
    Mp3Chain,
    Noise,
    Resample,
    TransformUnavailable,
    apply_chain,
    chain_hash,
    chain_spec,
    codec_chains,
    describe_chain,
    parse_transforms,
)

SR = PROTOCOL_RATE
EDGE = int(0.01 * SR)  # filter start-up and end transients of a tone cut off mid-cycle


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5, rate: int = SR) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def music(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """Harmonics, an envelope and a little noise: broadband enough for every transform to act."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) / k for k in range(1, 30))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + rng.normal(0, 0.05, t.size)
    return (0.4 * x / np.max(np.abs(x))).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def band_fraction_db(x: np.ndarray, above_hz: float) -> float:
    """Share of the signal's energy above `above_hz`, in dB."""
    spectrum = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spectrum[freqs > above_hz].sum() / spectrum.sum()))


def one(spec: str):
    (transform,) = parse_transforms([spec])
    return transform


@pytest.mark.parametrize(
    "spec", ["resample:16000", "lowpass:4000", "gain:-6", "noise:20", "mp3-chain:1"]
)
def test_keeps_length_dtype_range_and_is_deterministic(spec: str):
    x = music()
    x_odd = x[:12345]  # an odd length that no codec frame or resampling ratio divides
    before = x.copy()
    transform = one(spec)
    for audio in (x, x_odd):
        out = transform.apply(audio, SR, 7, "track-1")
        again = one(spec).apply(audio.copy(), SR, 7, "track-1")  # a fresh instance, too
        assert out.dtype == np.float32 and out.shape == audio.shape
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
        assert out.tobytes() == again.tobytes()
        assert not np.array_equal(out, audio)  # it did something
    np.testing.assert_array_equal(x, before)  # the input is never modified
    assert transform.apply(np.zeros(0, np.float32), SR, 7, "k").shape == (0,)


def test_noise_depends_on_seed_and_key_not_on_order():
    x = music()
    noise = one("noise:20")
    a = noise.apply(x, SR, 0, "a")
    assert not np.array_equal(a, noise.apply(x, SR, 0, "b"))
    assert not np.array_equal(a, noise.apply(x, SR, 1, "a"))
    assert not np.array_equal(a, one("noise:19").apply(x, SR, 0, "a"))  # the spec is seed material
    # Other tracks processed in between (another order, another run) change nothing for "a".
    for key in ("z", "y", "x"):
        noise.apply(music(seed=1), SR, 0, key)
    assert noise.apply(x, SR, 0, "a").tobytes() == a.tobytes()


def test_resample_removes_content_above_the_new_nyquist():
    resample = one("resample:16000")
    high, low = tone(12000), tone(1000)
    assert power_db(resample.apply(high, SR, 0, "")) - power_db(high) < -40
    assert abs(power_db(resample.apply(low, SR, 0, "")) - power_db(low)) < 0.5
    # A rate the buffer is already at or below changes nothing.
    np.testing.assert_array_equal(one("resample:44100").apply(low, SR, 0, ""), low)


def test_lowpass_is_steep_and_zero_phase():
    lowpass = one("lowpass:4000")
    high, low = tone(8000), tone(1000)
    out_high, out_low = lowpass.apply(high, SR, 0, ""), lowpass.apply(low, SR, 0, "")
    assert power_db(out_high) - power_db(high) < -40
    assert power_db(out_high[EDGE:-EDGE]) - power_db(high) < -80  # away from the cut ends
    assert abs(power_db(out_low) - power_db(low)) < 0.05
    # Zero-phase: the passband tone comes out sample-aligned, not delayed.
    assert np.abs(out_low - low)[EDGE:-EDGE].max() < 1e-3
    # At a lower buffer rate, a cutoff at or above its Nyquist frequency is a no-op.
    low_rate = tone(1000, rate=8000)
    np.testing.assert_array_equal(one("lowpass:4000").apply(low_rate, 8000, 0, ""), low_rate)


def test_gain_scales_then_clips():
    x = tone(440, amp=0.5)
    half = one("gain:-6").apply(x, SR, 0, "")
    ratio = np.abs(half).max() / np.abs(x).max()
    assert abs(ratio - 0.5) < 0.005
    loud = one("gain:+20").apply(x, SR, 0, "")
    assert loud.max() == 1.0 and loud.min() == -1.0
    small = np.abs(x) < 0.05  # samples that stay under full scale after x10
    np.testing.assert_allclose(loud[small], x[small] * 10, rtol=1e-5, atol=1e-7)


def test_noise_snr_is_the_requested_one():
    x = music(seconds=1.0)
    out = one("noise:20").apply(x, SR, 3, "track")
    snr = power_db(x) - power_db(out.astype(np.float64) - x)
    assert abs(snr - 20) < 0.5
    silent = np.zeros(1000, np.float32)
    np.testing.assert_array_equal(one("noise:20").apply(silent, SR, 0, "k"), silent)


def test_repeated_noise_steps_draw_independent_noise():
    """Two `noise:20` steps add powers (-3 dB SNR) rather than one noise twice (-6 dB)."""
    x = music(seconds=1.0)
    out = apply_chain(parse_transforms(["noise:20,noise:20"]), x, SR, 0, "k")
    snr = power_db(x) - power_db(out.astype(np.float64) - x)
    assert abs(snr - (20 - 10 * np.log10(2))) < 0.3
    # A chain's first occurrence of a step sees the track key itself.
    single = one("noise:20")
    chained = apply_chain([single], x, SR, 0, "k")
    assert chained.tobytes() == single.apply(x, SR, 0, "k").tobytes()


def test_mp3_chain_generations_and_lowpass():
    rng = np.random.default_rng(0)
    broadband = (rng.standard_normal(SR // 2) * 0.1).astype(np.float32)
    one_gen = one("mp3-chain:1").apply(broadband, SR, 0, "")
    two_gen = one("mp3-chain:2").apply(broadband, SR, 0, "")
    assert one_gen.shape == two_gen.shape == broadband.shape
    assert not np.array_equal(one_gen, two_gen)
    # White noise has ~23% of its energy above 17 kHz; LAME's 128 kbps low-pass removes it.
    assert band_fraction_db(broadband, 17000) > -7
    assert band_fraction_db(one_gen, 17000) < -40
    assert band_fraction_db(two_gen, 17000) < -40
    # Encoder delay is removed: the decoded music lines up with the original sample for sample.
    x = music()
    out = one("mp3-chain:1").apply(x, SR, 0, "")
    assert power_db(x) - power_db(out.astype(np.float64) - x) > 15


def test_mp3_chain_keeps_silence_silent():
    silent = np.zeros(5000, np.float32)
    np.testing.assert_array_equal(one("mp3-chain:2").apply(silent, SR, 0, ""), silent)


def test_parsing_canonicalises():
    assert one("gain:-6.0") == one("gain:-6") == one(" GAIN : -6e0 ") == Gain(-6)
    assert one("gain:-6.0").spec == "gain:-6"
    assert one("gain:+20").spec == "gain:20"
    assert one("gain:-0").spec == "gain:0"
    assert one("gain:-1.5").spec == "gain:-1.5"
    assert one("resample:16000.0") == Resample(16000) and one("resample:16e3").spec == (
        "resample:16000"
    )
    assert one("lowpass:4e3").spec == "lowpass:4000" and one("lowpass:3500.5").spec == (
        "lowpass:3500.5"
    )
    assert one("noise:20.0") == Noise(20)
    assert one("mp3-chain:2") == Mp3Chain(2)
    assert one("demucs") == Demucs() and one("demucs").spec == "demucs"
    assert isinstance(one("lowpass:4000"), Lowpass)

    chain = parse_transforms(["resample:16000.0, noise:20", "gain:-6.0"])
    assert chain_spec(chain) == "resample:16000,noise:20,gain:-6"
    assert parse_transforms("resample:16000,noise:20") == chain[:2]  # a bare string is one item
    same = parse_transforms(["resample:16000", "noise:20.0", "gain:-6"])
    assert chain_hash(chain) == chain_hash(same) and len(chain_hash(chain)) == 16
    assert chain_hash(chain) != chain_hash(chain[::-1])  # order is part of the chain
    assert chain_spec([]) == chain_hash([]) == "" and parse_transforms([]) == []
    assert describe_chain(chain) == [{"spec": t.spec} for t in chain]


def test_composition_order_matters():
    x = tone(440, amp=0.5)
    louder_first = apply_chain(parse_transforms(["gain:20,gain:-20"]), x, SR, 0, "")
    quieter_first = apply_chain(parse_transforms(["gain:-20", "gain:20"]), x, SR, 0, "")
    # Clipping at full scale in between: 0.5 x 10 clips to 1, then back down to 0.1.
    assert np.abs(louder_first).max() == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_allclose(quieter_first, x, atol=1e-6)
    assert apply_chain([], x, SR, 0, "").tobytes() == x.tobytes()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lopass:3000", "unknown transform 'lopass:3000'"),
        ("resample:3000", "RATE must be an integer from 4000 to 44100"),
        ("resample:48000", "RATE must be an integer from 4000 to 44100"),
        ("resample:16000.5", "RATE must be an integer"),
        ("resample:fast", "RATE must be a number"),
        ("lowpass:10", "HZ must be from 20 to below 22050"),
        ("lowpass:22050", "HZ must be from 20 to below 22050"),
        ("gain:nan", "DB must be finite"),
        ("gain:-inf", "DB must be finite"),
        ("gain:", "gain needs an argument"),
        ("gain", "gain needs an argument"),
        ("noise:loud", "SNR_DB must be a number"),
        ("mp3-chain:0", "N must be an integer >= 1"),
        ("mp3-chain:1.5", "N must be an integer >= 1"),
        ("demucs:/models", "demucs takes no argument"),
        ("gain:-6,,noise:20", "empty transform"),
        ("", "empty transform"),
    ],
)
def test_bad_specs_say_what_is_valid(spec: str, message: str):
    with pytest.raises(ValueError) as info:
        parse_transforms([spec])
    text = str(info.value)
    assert message in text and f"choose from: {FORMS}" in text and "\n" not in text


def test_bad_buffers_are_refused():
    with pytest.raises(ValueError, match="mono 1-D"):
        one("gain:-6").apply(np.zeros((2, 100), np.float32), SR, 0, "")
    with pytest.raises(ValueError, match="non-finite"):
        one("gain:-6").apply(np.array([0.1, np.nan], np.float32), SR, 0, "")


def test_demucs_without_weights_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("demucs")
    monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(tmp_path / "absent"))
    demucs = one("demucs")  # parsing loads nothing
    with pytest.raises(TransformUnavailable, match="absent does not exist"):
        demucs.apply(music(), SR, 0, "")

    monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(tmp_path))
    with pytest.raises(TransformUnavailable, match=r"no htdemucs\.yaml in"):
        describe_chain([one("demucs")])
    (tmp_path / "htdemucs.yaml").write_text('models: ["aaaa0000"]\n')
    with pytest.raises(TransformUnavailable, match=r"model aaaa0000 of htdemucs\.yaml"):
        one("demucs").apply(music(), SR, 0, "")


def test_demucs_is_the_separator_remix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("demucs")
    import torch

    from artifactbench.audio.separation import load_separator
    from tests.test_separation import save_safetensors, tiny_model, write_yaml

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's many small ops are slow when threads contend
    try:
        save_safetensors(tiny_model(0), tmp_path / "aaaa0000.safetensors")
        write_yaml(tmp_path, ["aaaa0000"])
        monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(tmp_path))
        x = music(seconds=1.2)
        demucs = one("demucs")
        out = demucs.apply(x, SR, 0, "track")
        expected = load_separator(tmp_path).remix(x[None, :])[0].numpy()
    finally:
        torch.set_num_threads(threads)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(expected, -1, 1), atol=1e-6, rtol=0)
    assert not np.allclose(out, x, atol=1e-3)  # a random model does not reproduce the track

    record = demucs.describe()
    assert record["spec"] == "demucs" and chain_spec([demucs]) == "demucs"  # no path in the spec
    files = record["separator"]["files"]
    for name in ("htdemucs.yaml", "aaaa0000.safetensors"):
        assert files[name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


def test_codec_chains_one_per_codec_in_order_after_the_prefix() -> None:
    """What `codec` and the codec recipe both score: each codec once, as given, after any
    prefix chain; a wrong name lists the codecs."""
    from artifactbench.audio.transforms import CODECS

    chains = codec_chains([" MP3-128", "wav", "mp3-128"], [Gain(-3.0)])
    assert [chain_spec(c) for c in chains] == [
        chain_spec([Gain(-3.0), *parse_transforms("codec:mp3-128")]),
        chain_spec([Gain(-3.0), *parse_transforms("codec:wav")]),
    ]
    for names in (["wav", "mp4"], [" ", ""]):
        with pytest.raises(ValueError, match=f"choose from: {', '.join(CODECS)}$"):
            codec_chains(names)
