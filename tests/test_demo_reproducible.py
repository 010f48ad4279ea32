"""The demo bench renders the same bits on any CPU, BLAS kernel or thread count: pinned hashes.

The encoded bytes are pinned for these encoders; libopus also picks SIMD kernels by CPU at run
time, so for Opus the pin is on what it is given to encode, and its bytes only where they match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from artifactbench.audio import encode as codecs
from artifactbench.benches import demo
from artifactbench.benches.demo.synth import RATE, synthesize

SECONDS = (2.0, 3.0)
CHEAP = [name for name in demo.DEMO_SUBSETS if name != "ai_rvq_deep"]  # its codec takes ~20 s

# sha256[:16] of (rendered float32 samples, encoded bytes) of track 0 of each subset at
# SECONDS, seed 0. The samples hold on every machine; the bytes also need these encoders.
PINNED = {
    "real_studio": ("44c1e4696ecdf1ef", "62258ba8e2b87835"),
    "real_live": ("b35ae58074f507fc", "a369e0ddc07ca9ee"),
    "real_mp3": ("b786b81f800ad2c1", "7d2af81746e74a06"),
    "real_aac": ("3ed8291de6e227ff", "4eaa9747a4fcd859"),
    "real_vintage": ("a41287b688f783bc", "fb9df43ae5603eaf"),
    "real_opus": ("dfd7ddb72c081931", "3a725abd4edba80b"),
    "ai_rvq_shallow": ("8b9f461cc6f3c598", "84357785cd759a44"),
    "ai_upsampler_x4": ("ff6c2f7aeb011891", "dfc13850cd5de80f"),
    "ai_upsampler_x8": ("1dc5c721151722ba", "33fe5a6661d52477"),
    "ai_griffinlim": ("e4643b3954255afd", "3b436fd028e7440f"),
    "ai_latent_bandlimited": ("19df42f6b5828b11", "134e81a81b10fede"),
}
PINNED_DEEP = ("f3e4bb91acc518a2", "39790d84851f600f")  # ai_rvq_deep, same recipe
# sha256[:16] of the 48 kHz float32 samples handed to libopus (track 0 of real_opus, as above).
PINNED_OPUS_INPUT = "01e63aaf71117e92"
OPUS = [name for name in CHEAP if demo.DEMO_SUBSETS[name].fmt == "opus"]
PINNED_ENCODERS = "av 18.1.0, libavcodec 62.28.102"
# The default demo bench (seed 0, 24 tracks per subset, 8-20 s) with these encoders.
FULL_FINGERPRINT = "a62a86c85d890526b840ef973f1d10a02271c68635ce030069e7b757382f1c0f"

# Renders tracks in a fresh interpreter and prints their hashes as JSON.
_RENDER = """
import hashlib, json, sys
import numpy as np
from artifactbench.benches import demo
from artifactbench.benches.demo.subsets import _fit_model
out = {}
for name in sys.argv[1].split(","):
    model = _fit_model(0, name)
    _, audio, _ = demo.render_track(0, name, 0, tuple(json.loads(sys.argv[2])), model)
    spec = demo.DEMO_SUBSETS[name]
    data = demo.encode_track(audio, spec)
    given, _ = demo.encoder_input(audio, spec)
    out[name] = (
        hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()[:16],
        hashlib.sha256(data).hexdigest()[:16],
        hashlib.sha256(np.ascontiguousarray(given).tobytes()).hexdigest()[:16],
    )
print(json.dumps(out))
"""


def _render(subsets: list[str], env: dict[str, str] | None = None) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _RENDER, ",".join(subsets), json.dumps(SECONDS)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _dispatched_cpu_features() -> list[str]:
    """The SIMD targets NumPy picks at run time on this CPU (beyond its compiled baseline)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    return [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]


def _encoders() -> str:
    """PyAV's wheel bundles FFmpeg, LAME and libopus: its version names all three."""
    major, minor, micro = av.library_versions["libavcodec"]
    return f"av {av.__version__}, libavcodec {major}.{minor}.{micro}"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[str]]:
    return _render(CHEAP)


def test_rendered_samples_match_the_pins(rendered: dict[str, list[str]]) -> None:
    assert {k: v[0] for k, v in rendered.items()} == {k: v[0] for k, v in PINNED.items()}


def test_encoded_bytes_match_the_pins(rendered: dict[str, list[str]]) -> None:
    if _encoders() != PINNED_ENCODERS:
        pytest.skip(f"pins made with {PINNED_ENCODERS}, not {_encoders()}: other encoders")
    portable = [name for name in CHEAP if name not in OPUS]
    assert {k: rendered[k][1] for k in portable} == {k: PINNED[k][1] for k in portable}


def test_opus_is_given_the_pinned_samples(rendered: dict[str, list[str]]) -> None:
    """Opus bytes follow libopus's kernel choice on this CPU; what it encodes must not move."""
    assert OPUS == ["real_opus"]
    assert rendered["real_opus"][2] == PINNED_OPUS_INPUT


def test_rendering_ignores_simd_dispatch_blas_kernel_and_threads(
    rendered: dict[str, list[str]],
) -> None:
    """As if on another CPU: NumPy held to its baseline kernels, another OpenBLAS kernel, more
    threads. The rendered samples and the encoded bytes must not move."""
    env = {
        "NPY_DISABLE_CPU_FEATURES": " ".join(_dispatched_cpu_features()),
        "OPENBLAS_CORETYPE": "Prescott",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
    }
    assert _render(CHEAP, env) == rendered


@pytest.mark.slow
def test_deep_rvq_codec_matches_its_pins() -> None:
    """The 8 x 1024 codec takes ~20 s to fit: its k-means must be exact to the last bit."""
    samples, data, _ = _render(["ai_rvq_deep"])["ai_rvq_deep"]
    assert samples == PINNED_DEEP[0]
    if _encoders() == PINNED_ENCODERS:
        assert data == PINNED_DEEP[1]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ARTIFACTBENCH_FULL_DEMO"),
    reason="renders the whole default demo bench (4-8 min on 2 cores): ARTIFACTBENCH_FULL_DEMO=1",
)
def test_default_demo_bench_fingerprint(tmp_path: Path) -> None:
    if _encoders() != PINNED_ENCODERS:
        pytest.skip(f"pinned with {PINNED_ENCODERS}, not {_encoders()}: other encoders")
    opus = _render(["real_opus"])["real_opus"][1]
    if opus != PINNED["real_opus"][1]:
        pytest.skip(f"libopus encodes other bytes on this CPU ({opus}): another fingerprint")
    root = demo.build_demo_bench(tmp_path / "demo", seed=0, workers=os.cpu_count() or 2)
    assert demo.load_demo_bench(seed=0, root=root).fingerprint == FULL_FINGERPRINT


def test_aac_carries_no_encoder_version_string() -> None:
    audio = synthesize(np.random.default_rng(0), 1.0)
    for fmt in ("m4a", "aac", "mp3", "flac", "opus", "wav"):
        data = codecs.encode_audio(audio, RATE, fmt, None if fmt in ("flac", "wav") else 96_000)
        assert not re.search(rb"Lav[cf]\d", data), fmt


def test_opus_is_resampled_before_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's resampler rounds by CPU: the demo hands Opus 48 kHz audio already."""
    seen = []
    original = codecs.encode_audio

    def spy(audio: np.ndarray, rate: int, fmt: str, bitrate: int | None = None) -> bytes:
        seen.append((rate, audio.shape[1]))
        return original(audio, rate, fmt, bitrate)

    monkeypatch.setattr(codecs, "encode_audio", spy)
    audio = synthesize(np.random.default_rng(0), 1.0)
    data = demo.encode_track(audio, demo.DEMO_SUBSETS["real_opus"])
    assert seen == [(48000, 48000)] and data[:4] == b"OggS"


def test_track_record_covers_bytes_and_metadata() -> None:
    row = {
        "track_id": "demo/x/0000",
        "audio": {"bytes": b"abc", "path": "x_0000.flac"},
        "source": "x",
        "generator": "g",
        "format": "flac",
        "label": "real",
        "bench_origin": "train",
        "duration": 2.5,
    }
    base = demo.track_record(row)
    assert base["audio_sha256"] == hashlib.sha256(b"abc").hexdigest()
    changed_bytes = demo.track_record({**row, "audio": {"bytes": b"abd", "path": "x_0000.flac"}})
    changed_meta = demo.track_record({**row, "generator": "h"})
    assert changed_bytes["audio_sha256"] != base["audio_sha256"]
    assert changed_bytes["row_sha256"] != base["row_sha256"]
    assert changed_meta["audio_sha256"] == base["audio_sha256"]
    assert changed_meta["row_sha256"] != base["row_sha256"]
    manifest = {"tracks": [base]}
    assert demo.fingerprint(manifest) != demo.fingerprint({"tracks": [changed_meta]})
