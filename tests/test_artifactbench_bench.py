"""ArtifactBench in each published form: hub and local shards, v1 and v2 manifests, binding."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifactbench.audio.decode import DecodeLimits
from artifactbench.audio.encode import encode_audio
from artifactbench.audio.pool import decode_track
from artifactbench.benches import BenchOptions
from artifactbench.benches import artifactbench as ab
from artifactbench.benches.artifactbench import binding
from artifactbench.benches.base import ResolveError, _row_group_audio
from tests.conftest import RATE, music

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _clip(seed: int) -> bytes:
    return encode_audio(music(seed, seconds=0.2), RATE, "flac")


def _shard_row(track_id: str, source: str, blob: bytes, label: str | None = None) -> dict:
    row = {
        "track_id": track_id,
        "audio": {"bytes": blob, "path": f"{track_id}.flac"},
        "source": source,
        "generator": f"gen-{source}",
        "format": "flac",
    }
    if label is not None:
        row["label"] = label
    return row


def _write_shard(path: Path, rows: list[dict], row_group: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {
        name: pa.array([r[name] for r in rows], type=AUDIO if name == "audio" else None)
        for name in rows[0]
    }
    pq.write_table(pa.table(columns), path, row_group_size=row_group)
    return path


def _options(*roots: Path, split: str | None = None) -> BenchOptions:
    return BenchOptions(audio_roots=tuple(roots), protocol_split=split)


def _manifest(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _v1_row(track_id: str, path: str, source: str, label: str, origin: str = "test") -> dict:
    return {
        "track_id": track_id,
        "path": path,
        "label": label,
        "source": source,
        "bench_origin": origin,
        "generator": "real" if label == "real" else source,
    }


# --- shards -----------------------------------------------------------------------------------


def test_local_shards_with_labels(tmp_path: Path) -> None:
    blobs = {f"t{i}": _clip(i) for i in range(4)}
    _write_shard(
        tmp_path / "data" / "test-00000-of-00002.parquet",
        [
            _shard_row("t0", "aime_stable_audio_v1", blobs["t0"], "ai"),
            _shard_row("t1", "sonics_chirp-v3", blobs["t1"], "ai"),
            _shard_row("t2", "fma_hardneg", blobs["t2"], "real"),
        ],
    )
    _write_shard(
        tmp_path / "data" / "test-00001-of-00002.parquet",
        [_shard_row("t3", "aime_stable_audio_v1", blobs["t3"], "ai")],
    )
    bench = ab.load_artifactbench(tmp_path, _options())

    assert [t.track_id for t in bench.tracks] == ["t0", "t1", "t2", "t3"]
    assert all(t.read_bytes() == blobs[t.track_id] for t in bench.tracks)
    t0 = bench.tracks[0]
    assert (t0.bench, t0.subset, t0.label, t0.generator) == (
        "artifactbench",
        "aime_stable_audio_v1",
        "ai",
        "gen-aime_stable_audio_v1",
    )
    assert dict(t0.extra) == {"format": "flac", "group": "AIME"}
    assert list(bench.subsets) == ["sonics_chirp-v3", "aime_stable_audio_v1", "fma_hardneg"]
    assert bench.subsets["aime_stable_audio_v1"].hard
    assert bench.subsets["aime_stable_audio_v1"].rule["bound"] == 0.60
    assert not bench.subsets["sonics_chirp-v3"].hard
    assert bench.subsets["fma_hardneg"].label == "real"
    src = bench.source
    assert src["form"] == "local-shards"
    assert (src["rows_read"], src["rows_filtered"], src["rows_bound"], src["rows_unbound"]) == (
        4,
        0,
        4,
        0,
    )
    assert [s["name"] for s in src["shards"]] == [
        "data/test-00000-of-00002.parquet",
        "data/test-00001-of-00002.parquet",
    ]
    assert bench.fingerprint == f"sha256:{src['shards_sha256']}"
    assert src["extra_subsets"] == []


def test_shard_fingerprint_follows_the_content(tmp_path: Path) -> None:
    shard = _write_shard(tmp_path / "a.parquet", [_shard_row("t0", "mom_yue", b"x" * 10, "ai")])
    first = ab.load_artifactbench(tmp_path, _options()).fingerprint
    assert ab.load_artifactbench(tmp_path, _options()).fingerprint == first
    _write_shard(shard, [_shard_row("t0", "mom_yue", b"y" * 10, "ai")])
    assert ab.load_artifactbench(tmp_path, _options()).fingerprint != first


def test_shards_without_label_take_it_from_the_catalog(tmp_path: Path) -> None:
    _write_shard(
        tmp_path / "a.parquet",
        [_shard_row("t0", "suno_extra", b"a"), _shard_row("t1", "mom_real", b"b")],
    )
    bench = ab.load_artifactbench(tmp_path, _options())
    assert [(t.subset, t.label) for t in bench.tracks] == [
        ("suno_extra", "ai"),
        ("mom_real", "real"),
    ]
    assert dict(bench.tracks[1].extra)["group"] == "MoM real"


def test_shards_without_label_refuse_a_source_outside_the_catalog(tmp_path: Path) -> None:
    shard = _write_shard(
        tmp_path / "a.parquet",
        [_shard_row("t0", "suno_extra", b"a"), _shard_row("t1", "brand_new_gen", b"b")],
    )
    with pytest.raises(ValueError, match=r"row 1 .*'brand_new_gen' is not in the ArtifactBench"):
        ab.load_artifactbench(tmp_path, _options())
    assert shard.exists()


def test_shards_accept_and_report_unknown_subsets_with_a_label(tmp_path: Path) -> None:
    _write_shard(
        tmp_path / "a.parquet",
        [
            _shard_row("t0", "brand_new_gen", b"a", "ai"),
            _shard_row("t1", "udio_extra", b"b", "ai"),
            _shard_row("t2", "brand_new_gen", b"c", "ai"),
        ],
    )
    bench = ab.load_artifactbench(tmp_path, _options())
    assert bench.source["extra_subsets"] == ["brand_new_gen"]
    assert list(bench.subsets) == ["udio_extra", "brand_new_gen"]
    assert dict(bench.tracks[0].extra)["group"] == ""


def test_shards_refuse_a_real_label_on_an_ai_catalog_subset(tmp_path: Path) -> None:
    _write_shard(tmp_path / "a.parquet", [_shard_row("t0", "aime_udio", b"a", "real")])
    with pytest.raises(ValueError, match=r"row 0 .*label 'real' contradicts subset 'aime_udio'"):
        ab.load_artifactbench(tmp_path, _options())


def test_corrupt_shard_fails_only_its_tracks(tmp_path: Path) -> None:
    good = _write_shard(
        tmp_path / "a.parquet",
        [_shard_row("g0", "mom_yue", _clip(1), "ai"), _shard_row("g1", "mom_yue", b"", "ai")],
    )
    bad = _write_shard(
        tmp_path / "b.parquet",
        [_shard_row(f"b{i}", "mom_udio", _clip(10 + i), "ai") for i in range(4)],
    )
    bench = ab.load_artifactbench(tmp_path, _options())
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # a download cut short
    _row_group_audio.cache_clear()

    by_id = {t.track_id: t for t in bench.tracks}
    assert by_id["g0"].read_bytes() == _clip(1)
    with pytest.raises(ResolveError, match="empty audio blob"):
        by_id["g1"].read_bytes()
    for i in range(4):
        with pytest.raises(ResolveError, match=str(bad)):
            by_id[f"b{i}"].read_bytes()
    stages = [decode_track(i, t, [], DecodeLimits()).stage for i, t in enumerate(bench.tracks)]
    assert stages == [None, "resolve", "resolve", "resolve", "resolve", "resolve"]
    assert good.exists()


def test_a_shard_whose_audio_is_not_bytes_fails_at_resolve(tmp_path: Path) -> None:
    table = pa.table({"track_id": ["t0"], "audio": ["not-bytes"], "source": ["mom_yue"]})
    pq.write_table(table, tmp_path / "a.parquet")
    (track,) = ab.load_artifactbench(tmp_path, _options()).tracks
    with pytest.raises(ResolveError, match="is str, not bytes"):
        track.read_bytes()


def test_reads_two_thousand_rows_one_by_one_with_one_row_group_in_memory(tmp_path: Path) -> None:
    """Structure only (few row groups held at once); the benchmark script measures memory."""
    for shard in range(4):
        rows = [
            _shard_row(f"s{shard}-{i:04d}", "sonics_udio-30s", f"blob{shard}-{i}".encode(), "ai")
            for i in range(500)
        ]
        _write_shard(tmp_path / f"part-{shard}.parquet", rows, row_group=100)
    bench = ab.load_artifactbench(tmp_path, _options())
    assert len(bench.tracks) == 2000
    _row_group_audio.cache_clear()
    for track in bench.tracks:
        shard, i = track.track_id[1:].split("-")
        assert track.read_bytes() == f"blob{shard}-{int(i)}".encode()
        assert _row_group_audio.cache_info().currsize <= 1
    assert _row_group_audio.cache_info().misses == 20  # each row group read exactly once


def test_protocol_split_on_shards_needs_the_column(tmp_path: Path) -> None:
    _write_shard(tmp_path / "a.parquet", [_shard_row("t0", "mom_yue", b"a", "ai")])
    with pytest.raises(ValueError, match="needs a v2 manifest or shards with a protocol_split"):
        ab.load_artifactbench(tmp_path, _options(split="test"))


def test_revision_does_not_apply_to_a_local_path(tmp_path: Path) -> None:
    _write_shard(tmp_path / "a.parquet", [_shard_row("t0", "mom_yue", b"a", "ai")])
    with pytest.raises(ValueError, match="--revision"):
        ab.load_artifactbench(tmp_path, BenchOptions(revision="v1.0"))


# --- v1 manifest -------------------------------------------------------------------------------


def test_v1_manifest_rebinds_foreign_absolute_paths_under_the_audio_root(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    (root / "fma_hardneg").mkdir(parents=True)
    (root / "fma_hardneg" / "123.flac").write_bytes(_clip(1))
    (root / "nested" / "youtube_hardneg").mkdir(parents=True)
    (root / "nested" / "youtube_hardneg" / "yt9.flac").write_bytes(_clip(2))
    (root / "mom" / "real").mkdir(parents=True)
    (root / "mom" / "real" / "r1.flac").write_bytes(_clip(3))
    rows = [
        _v1_row("fma-123", "/home/someone/data/fma_hardneg/123.flac", "fma_hardneg", "real"),
        # the authors' folder is not named like the source: found by the source folder
        _v1_row("yt-9", "/home/someone/raw/yt_dump/yt9.flac", "youtube_hardneg", "real"),
        _v1_row("mom-1", "mom/real/r1.flac", "mom_real", "real", "train"),
        _v1_row("gone", "/home/someone/data/fma_hardneg/404.flac", "fma_hardneg", "real"),
        _v1_row("gone-rel", "mom/real/404.flac", "mom_real", "real"),
    ]
    manifest = _manifest(
        tmp_path / "meta" / "artifactbench_v1.json",
        {"bench": rows, "metadata": {"version": "1.0", "n": 5, "sources": ["a"]}},
    )
    bench = ab.load_artifactbench(manifest, _options(root))

    by_id = {t.track_id: t for t in bench.tracks}
    assert by_id["fma-123"].read_bytes() == _clip(1)
    assert by_id["yt-9"].read_bytes() == _clip(2)
    assert by_id["mom-1"].read_bytes() == _clip(3)
    assert by_id["mom-1"].bench_origin == "train"
    with pytest.raises(ResolveError, match="404.flac does not exist here"):
        by_id["gone"].read_bytes()
    with pytest.raises(ResolveError, match="mom/real/404.flac not found under"):
        by_id["gone-rel"].read_bytes()
    src = bench.source
    assert src["form"] == "manifest-v1"
    assert src["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert bench.fingerprint == f"sha256:{src['manifest_sha256']}"
    assert (src["rows_read"], src["rows_bound"], src["rows_unbound"]) == (5, 3, 2)
    assert src["bound_by"] == {"path": 1, "rebound": 2}
    assert src["unbound"] == {"count": 2, "first": ["gone", "gone-rel"]}
    assert src["manifest_metadata"] == {"version": "1.0", "n": 5}
    assert list(bench.subsets) == ["mom_real", "fma_hardneg", "youtube_hardneg"]
    assert dict(by_id["yt-9"].extra) == {"group": "hard negatives"}


def test_v1_manifest_without_roots_uses_its_folder(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.flac").write_bytes(_clip(4))
    rows = [
        _v1_row("a", "clips/a.flac", "sonics_real", "real"),
        _v1_row("far", "/home/someone/data/sonics_real/b.flac", "sonics_real", "real"),
    ]
    manifest = _manifest(tmp_path / "v1.json", {"bench": rows, "metadata": {}})
    bench = ab.load_artifactbench(manifest, _options())
    assert bench.tracks[0].read_bytes() == _clip(4)
    with pytest.raises(ResolveError, match="pass --audio-root DIR"):
        bench.tracks[1].read_bytes()
    stage = decode_track(1, bench.tracks[1], [], DecodeLimits()).stage
    assert stage == "resolve"


def test_v1_manifest_many_unbound_rows_list_the_first_twenty(tmp_path: Path) -> None:
    rows = [_v1_row(f"m{i:02d}", f"x/{i}.mp3", "mom_udio", "ai") for i in range(30)]
    manifest = _manifest(tmp_path / "v1.json", {"bench": rows, "metadata": {}})
    bench = ab.load_artifactbench(manifest, _options())
    assert len(bench.tracks) == 30
    assert bench.source["unbound"] == {"count": 30, "first": [f"m{i:02d}" for i in range(20)]}


def test_a_directory_with_a_manifest_json(tmp_path: Path) -> None:
    _manifest(tmp_path / "manifest.json", {"bench": [_v1_row("a", "a.mp3", "aime_udio", "ai")]})
    bench = ab.load_artifactbench(tmp_path, _options())
    assert bench.source["form"] == "manifest-v1"


def test_a_directory_with_neither_shards_nor_manifest(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no \*\.parquet shards and no manifest.json.*other.json"):
        ab.load_artifactbench(tmp_path, _options())


# --- v2 manifest -------------------------------------------------------------------------------


def _v2_rows(blobs: dict[str, bytes]) -> list[dict]:
    splits = ["calibration", "validation", "test", "test"]
    rows = []
    for i, (track_id, blob) in enumerate(blobs.items()):
        real = track_id.startswith("real")
        source = "mom_real_wav" if real else "aime_stable_audio_v2"
        rows.append(
            {
                **_v1_row(track_id, f"{source}/{track_id}.flac", source, "real" if real else "ai"),
                "generator_family": "none" if real else "stable_audio",
                "generator_version": "" if real else "2.0",
                "protocol_split": splits[i % 4],
                "audio_sha256": hashlib.sha256(blob).hexdigest(),
                "audio_format": "flac",
                "lineage_id": f"lin-{i // 2}",
            }
        )
    return rows


def test_v2_manifest_binds_renamed_files_by_sha256(tmp_path: Path) -> None:
    blobs = {"real0": _clip(20), "ai1": _clip(21), "real2": _clip(22), "ai3": _clip(23)}
    root = tmp_path / "mine"
    for i, blob in enumerate(blobs.values()):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"renamed-{i}.flac").write_bytes(blob)
    (root / "unrelated.flac").write_bytes(_clip(99))
    manifest = _manifest(tmp_path / "v2.json", {"tracks": _v2_rows(blobs)})

    bench = ab.load_artifactbench(manifest, _options(root))
    assert [t.read_bytes() for t in bench.tracks] == list(blobs.values())
    assert bench.source["form"] == "manifest-v2"
    assert bench.source["bound_by"] == {"sha256": 4}
    ai1 = dict(bench.tracks[1].extra)
    assert ai1 == {
        "generator_family": "stable_audio",
        "generator_version": "2.0",
        "protocol_split": "validation",
        "lineage_id": "lin-0",
        "audio_format": "flac",
        "audio_sha256": hashlib.sha256(blobs["ai1"]).hexdigest(),
        "group": "AIME",
    }
    assert "generator_version" not in dict(bench.tracks[0].extra)  # empty values left out
    assert bench.subsets["aime_stable_audio_v2"].hard


def test_v2_sha_index_is_cached_between_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = {"real0": _clip(30), "ai1": _clip(31)}
    root = tmp_path / "mine"
    root.mkdir()
    for i, blob in enumerate(blobs.values()):
        (root / f"{i}.flac").write_bytes(blob)
    manifest = _manifest(tmp_path / "v2.json", {"tracks": _v2_rows(blobs)})
    hashed: list[Path] = []
    original = binding._sha256_file

    def counting(file: Path) -> str | None:
        hashed.append(file)
        return original(file)

    monkeypatch.setattr(binding, "_sha256_file", counting)
    ab.load_artifactbench(manifest, _options(root))
    assert len(hashed) == 2
    bench = ab.load_artifactbench(manifest, _options(root))
    assert len(hashed) == 2
    assert bench.source["rows_bound"] == 2
    (root / "1.flac").write_bytes(_clip(32))  # changed: rehashed, no longer matches
    bench = ab.load_artifactbench(manifest, _options(root))
    assert len(hashed) == 3
    with pytest.raises(ResolveError, match="no file under --audio-root has sha256"):
        bench.tracks[1].read_bytes()
    (root / "0.flac").unlink()
    ab.load_artifactbench(manifest, _options(root))
    index = json.loads((ab.default_cache() / "audio-sha256.json").read_text())
    assert sorted(Path(k).name for k in index) == ["1.flac"]  # gone files are dropped


def test_v2_sha_miss_says_when_the_path_holds_other_content(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "aime_stable_audio_v2").mkdir(parents=True)
    (root / "aime_stable_audio_v2" / "ai0.flac").write_bytes(_clip(40))
    rows = _v2_rows({"ai0": _clip(41)})
    manifest = _manifest(tmp_path / "v2.json", {"tracks": rows})
    bench = ab.load_artifactbench(manifest, _options(root))
    with pytest.raises(ResolveError, match="ai0.flac exists but its content differs"):
        bench.tracks[0].read_bytes()


def test_v2_sha_row_binds_an_existing_path_outside_the_roots_when_its_bytes_match(
    tmp_path: Path,
) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere" / "ai0.flac"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(_clip(42))
    rows = _v2_rows({"ai0": _clip(42), "ai1": _clip(43)})
    rows[0]["path"] = str(elsewhere)
    rows[1]["path"] = str(elsewhere)  # exists, but holds other bytes
    manifest = _manifest(tmp_path / "v2.json", {"tracks": rows})
    bench = ab.load_artifactbench(manifest, _options(root))
    assert bench.tracks[0].read_bytes() == _clip(42)
    assert bench.source["bound_by"] == {"path": 1}
    with pytest.raises(ResolveError, match="exists but its content differs"):
        bench.tracks[1].read_bytes()


def test_v2_sha_rows_are_hashed_only_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "a.flac").write_bytes(_clip(50))
    rows = [_v1_row("a", "a.flac", "udio_extra", "ai") | {"protocol_split": "test"}]
    manifest = _manifest(tmp_path / "v2.json", {"tracks": rows})
    monkeypatch.setattr(binding, "_hash_files", lambda *a: pytest.fail("hashed without need"))
    bench = ab.load_artifactbench(manifest, _options(root))
    assert bench.tracks[0].read_bytes() == _clip(50)


def test_v2_protocol_split_filter(tmp_path: Path) -> None:
    blobs = {f"{'real' if i % 2 else 'ai'}{i}": _clip(60 + i) for i in range(8)}
    manifest = _manifest(tmp_path / "v2.json", {"tracks": _v2_rows(blobs)})
    whole = ab.load_artifactbench(manifest, _options())
    bench = ab.load_artifactbench(manifest, _options(split="test"))
    assert [t.track_id for t in bench.tracks] == ["ai2", "real3", "ai6", "real7"]
    assert all(dict(t.extra)["protocol_split"] == "test" for t in bench.tracks)
    src = bench.source
    assert (src["rows_read"], src["rows_filtered"], src["protocol_split"]) == (8, 4, "test")
    assert bench.fingerprint == f"{whole.fingerprint};protocol_split=test"
    with pytest.raises(ValueError, match="unknown protocol split 'dev'.*calibration, validation"):
        ab.load_artifactbench(manifest, _options(split="dev"))


# --- refusals ------------------------------------------------------------------------------------


def _v1(**changes: Any) -> dict:
    return _v1_row("t1", "a/b.mp3", "aime_udio", "ai") | changes


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"bench": [_v1(), _v1(track_id="t2", label=None)]},
            r"row 1 \(track_id 't2'\): missing lab",
        ),
        ({"bench": [_v1(path=None)]}, r"row 0 \(track_id 't1'\): missing path"),
        ({"bench": [_v1(track_id="")]}, r"row 0 \(no track_id\): missing track_id"),
        ({"bench": [_v1(label="fake")]}, r"row 0 \(track_id 't1'\): unknown label 'fake'"),
        ({"bench": [_v1(bench_origin="dev")]}, r"row 0 .*unknown bench_origin 'dev'"),
        ({"bench": [_v1(), _v1()]}, r"row 1 \(track_id 't1'\): duplicate track_id .*row 0"),
        (
            {"bench": [_v1(label="real")]},
            r"row 0 .*'real' contradicts subset 'aime_udio' \(ai, from the catalog\)",
        ),
        ({"bench": [_v1(path="../../etc/x.mp3")]}, r"row 0 .*escapes the audio root"),
        ({"bench": ["t1"]}, r"row 0 \(no track_id\): expected an object"),
        (
            {
                "bench": [
                    _v1(source="new", label="ai"),
                    _v1(track_id="t2", source="new", label="real"),
                ]
            },
            r"row 1 .*label 'real' contradicts subset 'new' \(ai, from its first row\)",
        ),
        ({"tracks": [_v1(protocol_split="dev")]}, r"row 0 .*unknown protocol_split 'dev'"),
        ({"tracks": [_v1()]}, r"row 0 \(track_id 't1'\): missing protocol_split"),
        (
            {"tracks": [_v1(path=None, protocol_split="test")]},
            r"row 0 .*missing path or audio_sha256",
        ),
        (
            {"tracks": [_v1(protocol_split="test", audio_sha256="abc")]},
            r"row 0 .*audio_sha256 'abc' is not a sha256",
        ),
        ({"tracks": [], "bench": []}, "has both 'tracks'"),
        ({"rows": []}, "no list under 'bench' or 'tracks'"),
        ({"tracks": []}, "lists no tracks"),
    ],
)
def test_malformed_manifests_are_refused_in_one_line(
    tmp_path: Path, doc: dict, message: str
) -> None:
    manifest = _manifest(tmp_path / "m.json", doc)
    with pytest.raises(ValueError, match=message) as err:
        ab.load_artifactbench(manifest, _options())
    assert "\n" not in str(err.value)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="m.json is not a JSON manifest"):
        ab.load_artifactbench(path, _options())


def test_missing_audio_root_is_refused(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "m.json", {"bench": [_v1()]})
    with pytest.raises(ValueError, match="--audio-root folder not found"):
        ab.load_artifactbench(manifest, _options(tmp_path / "nope"))


# --- the hub -----------------------------------------------------------------------------------


class _LocalEntryNotFoundError(Exception):
    pass


def _fake_hub(monkeypatch: pytest.MonkeyPatch, populate: bool) -> list[dict]:
    """A stand-in `huggingface_hub`: it never touches the network."""
    calls: list[dict] = []

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        if not populate:
            raise _LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")
        snapshot = Path(kwargs["cache_dir"]) / "datasets--intrect--artifactbench"
        snapshot = snapshot / "snapshots" / COMMIT
        _write_shard(
            snapshot / "data" / "test-00000-of-00001.parquet",
            [_shard_row("h0", "aime_musicgen_small", b"blob", None)],
        )
        return str(snapshot)

    module = types.ModuleType("huggingface_hub")
    module.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


def test_fetch_offline_with_an_empty_cache_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_hub(monkeypatch, populate=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ab.FetchError) as err:
        ab.fetch_artifactbench(None, tmp_path / "cache")
    message = str(err.value)
    assert "`artifactbench fetch bench artifactbench`" in message
    assert "hub is reachable" in message and "HF_HUB_OFFLINE" in message
    assert calls == [
        {
            "repo_id": "intrect/artifactbench",
            "repo_type": "dataset",
            "revision": None,
            "allow_patterns": ["*.parquet", "*.json", "*.md"],
            "cache_dir": str(tmp_path / "cache" / "hub"),
            "local_files_only": True,
        }
    ]


def test_fetch_without_huggingface_hub_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ab.FetchError, match="pip install huggingface_hub"):
        ab.fetch_artifactbench("v1", tmp_path)


def test_load_before_fetch_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ab.FetchError, match=r"run `artifactbench fetch bench artifactbench` once"):
        ab.load_artifactbench(None, _options(), cache=tmp_path)
    with pytest.raises(ab.FetchError, match=r"fetch bench artifactbench --revision v2`"):
        ab.load_artifactbench(None, BenchOptions(revision="v2"), cache=tmp_path)


def test_fetch_then_load_the_hub_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_hub(monkeypatch, populate=True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    snapshot = ab.fetch_artifactbench(None, cache)
    assert snapshot.name == COMMIT and calls[0]["local_files_only"] is False
    record = json.loads((cache / "hub.json").read_text())
    assert record["revisions"]["main"]["resolved"] == COMMIT

    bench = ab.load_artifactbench(None, _options(), cache=cache)
    assert bench.fingerprint == f"hf:intrect/artifactbench@{COMMIT}"
    src = bench.source
    assert (src["form"], src["repo"], src["revision_requested"], src["revision_resolved"]) == (
        "hf-shards",
        "intrect/artifactbench",
        "main",
        COMMIT,
    )
    (track,) = bench.tracks
    assert (track.label, track.read_bytes()) == ("ai", b"blob")
    with pytest.raises(ab.FetchError, match="--revision v2"):
        ab.load_artifactbench(None, BenchOptions(revision="v2"), cache=cache)
