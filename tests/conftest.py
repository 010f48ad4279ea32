"""Shared fixtures: an isolated cache, the test detector plugin, and a small bench of real files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from platformdirs import user_cache_dir

from artifactbench.audio.encode import encode_audio
from artifactbench.benches.base import Bench, SubsetInfo, Track
from tests.hub_server import hub  # noqa: F401 - the `hub` fixture, for every test module

PLUGINS = Path(__file__).parent / "plugins"
RATE = 44100


def upstream_fixtures() -> Path:
    """The upstream-format checkpoints with the authors' outputs (`shared/fixtures` beside the
    checkout, or `ARTIFACTBENCH_FIXTURES`). Missing: skipped locally, an error in CI."""
    env = os.environ.get("ARTIFACTBENCH_FIXTURES")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    if not path.is_dir():
        if os.environ.get("CI"):
            raise RuntimeError(f"upstream fixtures not found at {path}")
        pytest.skip(
            f"upstream fixtures not found at {path} (set ARTIFACTBENCH_FIXTURES)",
            allow_module_level=True,
        )
    return path


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own cache and sees the counting test detector."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("ARTIFACTBENCH_CACHE", str(cache))
    monkeypatch.delenv("ARTIFACTBENCH_DEMUCS", raising=False)
    monkeypatch.setenv("ARTIFACTBENCH_CARDS", str(PLUGINS / "cards"))
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    monkeypatch.syspath_prepend(str(PLUGINS))
    return cache


def music(seed: int, seconds: float = 3.0) -> np.ndarray:
    """Harmonic tones with an envelope and a little noise: a stand-in for a real recording."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(110, 440)
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)) + rng.normal(0, 0.02, t.size)
    return (0.25 * x / np.max(np.abs(x))).astype(np.float32)


def upsampled(x: np.ndarray, factor: int = 4, seed: int = 0) -> np.ndarray:
    """A real transposed-convolution upsampler: decimate, zero-stuff (plus the layer's bias),
    short fixed kernel. The bias makes content-independent images at multiples of fs / factor."""
    rng = np.random.default_rng(seed)
    low = x[::factor]
    stuffed = np.zeros(low.size * factor, dtype=np.float64)
    stuffed[::factor] = low + 0.05
    kernel = np.hanning(2 * factor + 1) + 0.3 * rng.standard_normal(2 * factor + 1)
    y = np.convolve(stuffed, kernel, mode="same")[: x.size]
    y -= y.mean()
    return (0.25 * y / np.max(np.abs(y))).astype(np.float32)


def _track(root: Path, name: str, data: bytes, label: str, subset: str, origin: str) -> Track:
    path = root / name
    path.write_bytes(data)
    return Track(name, "files", subset, label, subset, origin, path=str(path))  # type: ignore[arg-type]


def make_file_bench(root: Path, n_per_class: int = 4) -> Bench:
    """Real and upsampled tracks (train and test), plus quiet, loud, broken and missing ones."""
    root.mkdir(parents=True, exist_ok=True)
    tracks = []
    for i in range(n_per_class):
        origin = "train" if i % 2 == 0 else "test"
        real = encode_audio(music(i), RATE, "flac")
        fake = encode_audio(upsampled(music(100 + i), seed=i), RATE, "flac")
        tracks.append(_track(root, f"real{i}.flac", real, "real", "real_tones", origin))
        tracks.append(_track(root, f"ai{i}.flac", fake, "ai", "ai_upsampled", origin))
    quiet = encode_audio(music(50) * 1e-3, RATE, "wav")
    loud = encode_audio(np.sign(music(51)) * 0.95, RATE, "wav")
    tracks.append(_track(root, "quiet.wav", quiet, "real", "real_tones", "test"))
    tracks.append(_track(root, "loud.wav", loud, "ai", "ai_upsampled", "test"))
    tracks.append(
        _track(root, "garbage.mp3", b"not audio at all" * 64, "ai", "ai_upsampled", "test")
    )
    tracks.append(Track("missing.flac", "files", "real_tones", "real", "real_tones", "test",
                        path=str(root / "missing.flac")))  # fmt: skip
    subsets = {
        "real_tones": SubsetInfo("real_tones", "real"),
        "ai_upsampled": SubsetInfo("ai_upsampled", "ai", hard=True),
    }
    return Bench("files", "fingerprint-files-v1", subsets, tracks)


@pytest.fixture
def file_bench(tmp_path: Path) -> Bench:
    return make_file_bench(tmp_path / "audio")


def python_cli() -> list[str]:
    return [sys.executable, "-m", "artifactbench"]


# The cache the default demo bench is generated into and reused from, read before any test
# changes ARTIFACTBENCH_CACHE.
USER_CACHE = Path(os.environ.get("ARTIFACTBENCH_CACHE") or user_cache_dir("artifactbench"))


def link_default_demo_bench(cache: Path) -> None:
    """The default demo bench, generated once into the user's cache (minutes, on first use) and
    linked into `cache`, so tests that run the README's commands on it do not each regenerate
    it; its generation is tested on its own (tests/test_demo_bench.py)."""
    from artifactbench.benches.demo import default_root, load_demo_bench

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTBENCH_CACHE", str(USER_CACHE))
        mp.setenv("ARTIFACTBENCH_CARDS", "")
        load_demo_bench()
        root = default_root()
    (cache / root.name).symlink_to(root, target_is_directory=True)
