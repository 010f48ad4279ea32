"""The demo bench: HF-shaped shards, honest metadata, real codecs, surviving traces, determinism."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import signal

from artifactbench.audio import encode as codecs
from artifactbench.benches import demo
from artifactbench.benches.base import Bench, Track
from artifactbench.benches.demo import generate
from artifactbench.benches.demo.synth import RATE

SIZE = {"tracks_per_subset": 2, "seconds": (2.0, 3.0)}


ProgressLog = list[tuple[str, int, list[int]]]


def _recording(log: ProgressLog) -> demo.ProgressHook:
    """A progress hook that keeps (label, total, every advance) per bar it was asked for."""

    def hook(label: str, total: int):
        steps: list[int] = []
        log.append((label, total, steps))
        return steps.append

    return hook


@pytest.fixture(scope="module")
def progress_log() -> ProgressLog:
    return []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, progress_log: ProgressLog) -> Path:
    return demo.build_demo_bench(
        tmp_path_factory.mktemp("demo") / "bench",
        seed=0,
        workers=2,
        progress=_recording(progress_log),
        **SIZE,
    )


@pytest.fixture(scope="module")
def bench(built: Path) -> Bench:
    return demo.load_demo_bench(seed=0, root=built, **SIZE)


def _manifest(root: Path) -> dict:
    return json.loads((root / "bench.json").read_text())


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    """All samples as planar float [channels, n] at the stream's own rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        blocks = [
            out.to_ndarray()
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        blocks += [out.to_ndarray() for out in resampler.resample(None)]
        return np.concatenate(blocks, axis=1), stream.rate


def _track(bench: Bench, subset: str, index: int = 0) -> Track:
    return next(t for t in bench.tracks if t.track_id == f"demo/{subset}/{index:04d}")


def _rendered(subset: str, index: int = 0) -> np.ndarray:
    return demo.render_track(0, subset, index, SIZE["seconds"], None)[1]


def test_subset_catalogue() -> None:
    subsets = demo.DEMO_SUBSETS.values()
    labels = Counter(s.label for s in subsets)
    assert len(demo.DEMO_SUBSETS) >= 12 and labels["real"] >= 5 and labels["ai"] >= 6
    assert {s.name for s in subsets if s.hard} == {"ai_latent_bandlimited"}
    assert all(s.fmt in codecs.CODECS and s.generator for s in subsets)
    assert all(s.name.startswith(s.label) for s in subsets)
    ai_formats = {s.fmt for s in subsets if s.label == "ai"}
    assert "mp3" in ai_formats and ai_formats & {"wav", "flac"}  # shipped like generators ship


def test_shards_are_shaped_like_hugging_face_artifactbench(built: Path) -> None:
    manifest = _manifest(built)
    assert manifest["bench"] == "demo" and manifest["seed"] == 0
    assert manifest["generator_version"] == demo.GENERATOR_VERSION
    assert [s["name"] for s in manifest["subsets"]] == list(demo.DEMO_SUBSETS)
    assert sum(s["hard"] for s in manifest["subsets"]) == 1
    for shard in manifest["shards"]:
        path = built / shard["file"]
        assert shard["file"].startswith("data/test-") and path.suffix == ".parquet"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.field("audio").type == pa.struct(
            [("bytes", pa.binary()), ("path", pa.string())]
        )
        for name in ("track_id", "source", "generator", "format", "label", "bench_origin"):
            assert pf.schema_arrow.field(name).type == pa.string()
        assert pf.schema_arrow.field("duration").type == pa.float64()
        groups = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        assert max(groups) <= demo.ROW_GROUP and pf.metadata.num_row_groups >= 2
    leftovers = [p.name for p in built.parent.iterdir() if p.name != built.name]
    assert leftovers == []  # the temporary build directory was renamed away


def test_metadata_reads_back(bench: Bench, built: Path) -> None:
    n_subsets = len(demo.DEMO_SUBSETS)
    assert len(bench.tracks) == 2 * n_subsets
    assert len({t.track_id for t in bench.tracks}) == len(bench.tracks)
    assert bench.tracks[0].track_id == "demo/real_studio/0000"
    assert [t.subset for t in bench.tracks[:n_subsets]] == list(demo.DEMO_SUBSETS)  # interleaved
    for t in bench.tracks:
        spec = demo.DEMO_SUBSETS[t.subset]
        assert (t.bench, t.label, t.generator) == ("demo", spec.label, spec.generator)
        extra = dict(t.extra)
        assert extra["format"] == spec.fmt
        assert 2.0 <= float(extra["duration"]) <= 3.0
    for name in demo.DEMO_SUBSETS:
        assert sorted(t.bench_origin for t in bench.tracks if t.subset == name) == ["test", "train"]
    assert len(bench.select("train")) == len(bench.select("test")) == n_subsets
    assert bench.subsets["ai_latent_bandlimited"].hard
    assert bench.subsets["ai_latent_bandlimited"].rule["bound"] == 0.60
    assert bench.fingerprint == demo.fingerprint(_manifest(built))


def test_every_track_decodes_to_its_duration(bench: Bench) -> None:
    for t in bench.tracks:
        audio, rate = _decode(t.read_bytes())
        assert audio.shape[0] == 2
        assert rate == (48000 if dict(t.extra)["format"] == "opus" else RATE)
        assert abs(audio.shape[1] / rate - float(dict(t.extra)["duration"])) < 0.1, t.track_id
        assert np.isfinite(audio).all() and 0.3 < np.abs(audio).max() < 1.0


def test_flac_is_bit_exact_at_16_bits(bench: Bench) -> None:
    for subset in ("real_studio", "real_live", "real_vintage"):
        decoded, _ = _decode(_track(bench, subset).read_bytes())
        source = _rendered(subset)
        assert decoded.shape == source.shape
        assert np.abs(decoded - source).max() <= 0.5 / 32768 + 1e-7


@pytest.mark.parametrize("subset", ["real_mp3", "real_aac"])
def test_lossy_real_subsets_are_lossy_copies_of_the_music(bench: Bench, subset: str) -> None:
    decoded, _ = _decode(_track(bench, subset).read_bytes())
    source = _rendered(subset)
    n = min(decoded.shape[1], source.shape[1])
    a, b = source[0, :n], decoded[0, :n]
    lags = signal.correlation_lags(n, n)
    corr = signal.correlate(b, a, method="fft")
    window = np.abs(lags) < 4096
    lag = int(lags[window][np.argmax(corr[window])])
    aligned = b[lag:] if lag >= 0 else np.pad(b, (-lag, 0))[:n]
    m = min(len(aligned), n)
    snr = 10 * np.log10((a[:m] ** 2).sum() / ((a[:m] - aligned[:m]) ** 2).sum())
    assert 8 < snr < 50  # the same music, but not the same samples


def _mean_spectrum(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signal.welch(audio.mean(axis=0), RATE, nperseg=8192)


def test_latent_decoder_band_limit_survives_storage(bench: Bench) -> None:
    def above(subset: str) -> float:
        freqs, power = _mean_spectrum(_decode(_track(bench, subset).read_bytes())[0])
        return float(power[freqs > 16200].sum() / power.sum())

    assert above("ai_latent_bandlimited") < 1e-7
    assert above("real_studio") > 1e-5


@pytest.mark.parametrize("subset", ["ai_upsampler_x4", "ai_upsampler_x8"])
def test_upsampler_tones_survive_storage(bench: Bench, subset: str) -> None:
    factor = 4 if subset.endswith("x4") else 8

    def prominence(audio: np.ndarray, freq: float) -> float:
        freqs, power = _mean_spectrum(audio)
        level = 10 * np.log10(power + 1e-30)
        i = int(np.argmin(np.abs(freqs - freq)))
        return float(level[i] - np.median(np.r_[level[i - 40 : i - 3], level[i + 4 : i + 41]]))

    ai = _decode(_track(bench, subset).read_bytes())[0]
    real = _decode(_track(bench, "real_studio").read_bytes())[0]
    for k in range(1, factor // 2):
        assert prominence(ai, k * RATE / factor) > 12
        assert prominence(real, k * RATE / factor) < 6


def test_build_is_deterministic_whatever_the_workers(built: Path, tmp_path: Path) -> None:
    again = demo.build_demo_bench(tmp_path / "again", seed=0, workers=1, **SIZE)
    assert _manifest(again)["shards"] == _manifest(built)["shards"]
    assert _manifest(again)["tracks"] == _manifest(built)["tracks"]
    assert _manifest(again)["fingerprint"] == _manifest(built)["fingerprint"]


def test_build_advances_progress_once_per_track(built: Path, progress_log: ProgressLog) -> None:
    total = SIZE["tracks_per_subset"] * len(demo.DEMO_SUBSETS)
    assert progress_log == [("generating the demo bench", total, [1] * total)]


def test_load_passes_progress_to_a_generation_only(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = []

    def fake_build(root: Path, seed: int, progress: demo.ProgressHook | None, **kw: object) -> Path:
        hooks.append(progress)
        shutil.copytree(built, root)
        return root

    monkeypatch.setattr(demo, "build_demo_bench", fake_build)
    log: ProgressLog = []
    hook = _recording(log)
    root = tmp_path / "demo"
    first = demo.load_demo_bench(0, root=root, progress=hook, **SIZE)
    assert hooks == [hook]
    again = demo.load_demo_bench(0, root=root, progress=hook, **SIZE)  # cached: no generation
    assert hooks == [hook] and log == [] and again.fingerprint == first.fingerprint
    monkeypatch.setenv("ARTIFACTBENCH_CACHE", str(tmp_path / "cache"))
    demo.load_demo_bench(0, **SIZE)  # the hook is optional
    assert hooks == [hook, None]


def _rewrite_shards(root: Path, **parquet_options: object) -> None:
    """Write every shard again with other parquet settings, and record the new files."""
    manifest = _manifest(root)
    for shard in manifest["shards"]:
        path = root / shard["file"]
        pq.write_table(pq.read_table(path, schema=demo.SCHEMA), path, **parquet_options)
        shard["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        shard["bytes"] = path.stat().st_size
    (root / "bench.json").write_text(json.dumps(manifest))


def test_fingerprint_follows_content_not_parquet_bytes(
    built: Path, bench: Bench, tmp_path: Path
) -> None:
    """Another pyarrow writes other shard bytes (its version is in the footer) for the same
    tracks: the fingerprint must not move. One changed audio byte must move it."""
    copy = shutil.copytree(built, tmp_path / "copy")
    _rewrite_shards(copy, compression="none", row_group_size=5, write_statistics=False)
    assert _manifest(copy)["shards"] != _manifest(built)["shards"]
    assert demo.load_demo_bench(seed=0, root=copy, **SIZE).fingerprint == bench.fingerprint
    assert demo.content_records(copy) == _manifest(built)["tracks"]

    path = copy / _manifest(copy)["shards"][0]["file"]
    table = pq.read_table(path, schema=demo.SCHEMA).to_pylist()
    table[1]["audio"]["bytes"] += b"\0"
    pq.write_table(pa.Table.from_pylist(table, demo.SCHEMA), path)
    records = demo.content_records(copy)
    assert [r != t for r, t in zip(records, _manifest(built)["tracks"], strict=True)].count(
        True
    ) == 1
    assert demo.fingerprint({"tracks": records}) != bench.fingerprint


def test_manifest_records_the_shards_content(built: Path, bench: Bench) -> None:
    manifest = _manifest(built)
    assert demo.content_records(built) == manifest["tracks"]
    assert [t["track_id"] for t in manifest["tracks"]] == [t.track_id for t in bench.tracks]
    assert manifest["fingerprint"] == bench.fingerprint == demo.fingerprint(manifest)
    for track in bench.tracks[:3]:
        record = manifest["tracks"][bench.tracks.index(track)]
        assert record["audio_sha256"] == hashlib.sha256(track.read_bytes()).hexdigest()


def test_build_refuses_a_non_empty_target(built: Path) -> None:
    with pytest.raises(FileExistsError):
        demo.build_demo_bench(built, seed=0, **SIZE)


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_on_third(self: generate._ShardWriter, row: dict) -> None:
        calls.append(row["track_id"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, row)

    original = generate._ShardWriter.add
    monkeypatch.setattr(generate._ShardWriter, "add", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        demo.build_demo_bench(tmp_path / "bench", seed=0, workers=2, **SIZE)
    assert list(tmp_path.iterdir()) == []


def test_load_generates_in_the_cache_once(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTBENCH_CACHE", str(tmp_path))
    assert demo.default_root(0) == tmp_path / f"demo-v{demo.GENERATOR_VERSION}-seed0"
    assert demo.default_root(0, workers=7) == demo.default_root(0)
    root = demo.default_root(0, **SIZE)
    assert root.parent == tmp_path and root.name.startswith(
        f"demo-v{demo.GENERATOR_VERSION}-seed0-"
    )
    shutil.copytree(built, root)  # as if a first load had generated it

    def no_rebuild(*args: object, **kwargs: object) -> Path:
        raise AssertionError("an existing bench was regenerated")

    monkeypatch.setattr(demo, "build_demo_bench", no_rebuild)
    loaded = demo.load_demo_bench(0, **SIZE)
    assert loaded.fingerprint == demo.fingerprint(_manifest(built))
    assert loaded.source["root"] == str(root)
    assert (
        loaded.tracks[5].read_bytes() == demo.load_demo_bench(0, root=built).tracks[5].read_bytes()
    )


def test_load_refuses_a_bench_built_differently(built: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        demo.load_demo_bench(seed=3, root=built)
    with pytest.raises(ValueError, match="tracks_per_subset"):
        demo.load_demo_bench(seed=0, root=built, tracks_per_subset=5)


def test_load_notices_a_damaged_shard(built: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(built, tmp_path / "copy")
    shard = copy / _manifest(copy)["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match="missing or changed size"):
        demo.load_demo_bench(seed=0, root=copy)
