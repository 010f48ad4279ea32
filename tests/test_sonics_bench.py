"""`sonics:PATH` benches: both upstream layouts of the SONICS release, labels, subsets and
breakdown columns, absent audio as resolve failures, refusals naming file and row, fingerprints,
and a listing of the official test split's size."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifactbench.audio.encode import encode_audio
from artifactbench.benches import BenchOptions
from artifactbench.benches.base import Bench, ResolveError, SubsetInfo, Track, cohort
from artifactbench.benches.sonics import load_sonics_bench

# The columns of the release's split CSVs, in the order SONICS' data_split.py writes them.
UPSTREAM_COLUMNS = [
    "filename", "title", "artist", "year", "lyrics", "duration", "youtube_id", "label",
    "artist_overlap", "target", "skip_time", "no_vocal", "split", "filepath", "id", "algorithm",
    "style", "bit_rate", "source", "lyrics_feature", "topic", "genre", "mood",
]  # fmt: skip
LYRICS = '[Verse]\nA line, with a comma\n"quoted" words\n\n[Chorus]\nla la la'
RATE = 44100


def tone(freq: float, seconds: float = 0.3) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return encode_audio(
        (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, "mp3", 128000
    )


def write_csv(
    path: Path, rows: list[dict[str, str]], columns: list[str] = UPSTREAM_COLUMNS
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in columns} for row in rows)
    return path


def fake(filename: str, algorithm: str, split: str, fake_type: str = "full fake") -> dict[str, str]:
    return {
        "filename": filename,
        "title": f"Song {filename}",
        "lyrics": LYRICS,
        "duration": "120.5",
        "label": fake_type,
        "target": "1",
        "no_vocal": "False",
        "split": split,
        "filepath": f"../SONICS/fake_songs/{filename}.mp3",
        "algorithm": algorithm,
        "style": "pop, upbeat",
    }


def real(filename: str, split: str, overlap: str = "True") -> dict[str, str]:
    return {
        "filename": filename,
        "title": "A Real Song",
        "artist": "Someone",
        "year": "2001.0",
        "lyrics": LYRICS,
        "duration": "240.084",
        "youtube_id": "JYJ6QJqy92s",
        "label": "real",
        "artist_overlap": overlap,
        "target": "0",
        "no_vocal": "False",
        "split": split,
        "filepath": f"../SONICS/real_songs/{filename}.mp3",
    }


@pytest.fixture
def split_release(tmp_path: Path) -> Path:
    """train/valid/test CSVs, five fake MP3s, real songs partly downloaded (one as WAV)."""
    root = tmp_path / "SONICS"
    (root / "fake_songs").mkdir(parents=True)
    (root / "real_songs").mkdir()
    for i, name in enumerate(("fake_00001", "fake_00002", "fake_00003", "fake_00004", "fake_9")):
        (root / "fake_songs" / f"{name}.mp3").write_bytes(tone(220 + 40 * i))
    (root / "real_songs" / "real_00001.mp3").write_bytes(tone(330))
    (root / "real_songs" / "real_00002.wav").write_bytes(b"RIFF-wav")
    (root / "real_songs" / "real_00003.flac").write_bytes(b"fLaC")
    (root / "real_songs" / "real_00003.mp3").write_bytes(b"ID3-mp3")
    (root / "real_songs" / "notes.txt").write_text("not audio")
    write_csv(
        root / "train.csv",
        [fake("fake_00001", "chirp-v3", "train"), real("real_00001", "train")],
    )
    write_csv(root / "valid.csv", [fake("fake_9", "udio-30s", "valid", "half fake")])
    write_csv(
        root / "test.csv",
        [
            fake("fake_00002", "chirp-v3.5", "test", "mostly fake"),
            fake("fake_00003", "udio-120s", "test"),
            fake("fake_00004", "chirp-v2-xxl-alpha", "test"),
            real("real_00002", "test", "False"),
            real("real_00003", "test", ""),
            real("real_00004", "test"),
            real("real_00005", "test"),
        ],
    )
    return root


def load(root: Path, **options: Any) -> Bench:
    return load_sonics_bench(root, BenchOptions(**options))


def load_error(root: Path) -> str:
    with pytest.raises(ValueError) as exc:
        load(root)
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def extra(track: Track) -> dict[str, str]:
    return dict(track.extra)


# --- the split layout ----------------------------------------------------------------------------


def test_split_layout_labels_subsets_origins_and_extra(split_release: Path) -> None:
    bench = load(split_release)
    root = split_release.resolve()
    assert bench.name == "sonics"
    by_id = {t.track_id: t for t in bench}
    assert list(by_id) == [
        "fake_songs/fake_00001",
        "real_songs/real_00001",
        "fake_songs/fake_9",
        "fake_songs/fake_00002",
        "fake_songs/fake_00003",
        "fake_songs/fake_00004",
        "real_songs/real_00002",
        "real_songs/real_00003",
        "real_songs/real_00004",
        "real_songs/real_00005",
    ]
    f1, r1 = by_id["fake_songs/fake_00001"], by_id["real_songs/real_00001"]
    assert (f1.bench, f1.subset, f1.label, f1.generator, f1.bench_origin) == (
        "sonics",
        "sonics_chirp-v3",
        "ai",
        "chirp-v3",
        "train",
    )
    assert (r1.subset, r1.label, r1.generator, r1.bench_origin) == (
        "sonics_real",
        "real",
        "real",
        "train",
    )
    assert by_id["fake_songs/fake_9"].bench_origin == "valid"
    assert f1.extra == (
        ("fake_type", "full fake"),
        ("duration", "120.5"),
        ("filename", "fake_00001"),
    )
    assert r1.extra == (
        ("fake_type", "real"),
        ("duration", "240.084"),
        ("artist_overlap", "seen"),
        ("filename", "real_00001"),
    )
    assert extra(by_id["real_songs/real_00002"])["artist_overlap"] == "unseen"
    assert "artist_overlap" not in extra(by_id["real_songs/real_00003"])
    assert extra(by_id["fake_songs/fake_00002"])["fake_type"] == "mostly fake"
    assert extra(by_id["fake_songs/fake_9"])["fake_type"] == "half fake"
    assert bench.subsets == {
        name: SubsetInfo(name, label)
        for name, label in [
            ("sonics_chirp-v2-xxl-alpha", "ai"),
            ("sonics_chirp-v3", "ai"),
            ("sonics_chirp-v3.5", "ai"),
            ("sonics_real", "real"),
            ("sonics_udio-120s", "ai"),
            ("sonics_udio-30s", "ai"),
        ]
    }
    assert not any(s.hard for s in bench.subsets.values())
    assert [t.track_id for t in bench.select("train")] == list(by_id)[:2]
    assert len(bench.select("test")) == 7
    assert f1.path == str(root / "fake_songs" / "fake_00001.mp3")
    assert f1.read_bytes() == (root / "fake_songs" / "fake_00001.mp3").read_bytes()
    assert f1.read_bytes()[:3] in (b"ID3", b"\xff\xfb")


def test_other_extensions_are_found_and_mp3_preferred(split_release: Path) -> None:
    by_id = {t.track_id: t for t in load(split_release)}
    assert by_id["real_songs/real_00002"].read_bytes() == b"RIFF-wav"
    assert by_id["real_songs/real_00003"].read_bytes() == b"ID3-mp3"


def test_missing_audio_is_a_track_that_fails_to_resolve_and_is_counted(
    split_release: Path,
) -> None:
    bench = load(split_release)
    missing = [t for t in bench if t.track_id in ("real_songs/real_00004", "real_songs/real_00005")]
    assert len(missing) == 2
    for track in missing:
        assert track.path == str(
            split_release.resolve() / "real_songs" / f"{track.track_id[11:]}.mp3"
        )
        with pytest.raises(ResolveError):
            track.read_bytes()
    source = bench.source
    assert source["kind"] == "sonics" and source["layout"] == "splits"
    assert source["path"] == str(split_release.resolve())
    assert set(source["csv"]) == {"train.csv", "valid.csv", "test.csv"}
    assert source["csv"] == {
        name: hashlib.sha256((split_release / name).read_bytes()).hexdigest()
        for name in ("train.csv", "valid.csv", "test.csv")
    }
    assert (source["rows_read"], source["rows_bound"], source["rows_missing"]) == (10, 8, 2)
    assert source["splits"] == {
        "test": {"rows": 7, "ai": 3, "real": 4, "bound": 5, "missing": 2},
        "train": {"rows": 2, "ai": 1, "real": 1, "bound": 2, "missing": 0},
        "valid": {"rows": 1, "ai": 1, "real": 0, "bound": 1, "missing": 0},
    }


def test_audio_folders_may_be_absent(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    write_csv(root / "test.csv", [fake("f1", "chirp-v3", "test"), real("r1", "test")])
    bench = load(root)
    assert bench.source["rows_missing"] == 2
    assert bench.source["audio_folders"] == {"fake_songs": [], "real_songs": []}


def test_audio_roots_add_folders_searched_after_the_release(
    split_release: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    (other / "real_songs").mkdir(parents=True)
    (other / "real_songs" / "real_00004.ogg").write_bytes(b"OggS")
    (other / "real_songs" / "real_00001.mp3").write_bytes(b"shadowed")
    bench = load(split_release, audio_roots=(other,))
    by_id = {t.track_id: t for t in bench}
    assert by_id["real_songs/real_00004"].read_bytes() == b"OggS"
    assert by_id["real_songs/real_00001"].read_bytes() != b"shadowed"
    assert bench.source["rows_missing"] == 1
    assert bench.source["audio_folders"]["real_songs"] == [
        str(split_release.resolve() / "real_songs"),
        str(other / "real_songs"),
    ]


def test_target_wins_over_label_and_label_alone_labels(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "test.csv").write_text(
        "Filename, Label ,TARGET,Algorithm,extra column\n"
        "f1,full fake,0,chirp-v3,x\n"
        "f2,Full_Fake,,Udio-30s,\n"
        "r1,REAL,,,\n",
        encoding="utf-8",
    )
    bench = load(root)
    f1, f2, r1 = bench.tracks
    assert (f1.label, f1.subset, extra(f1)["fake_type"]) == ("real", "sonics_real", "full fake")
    assert f1.track_id == "real_songs/f1"
    assert (f2.label, f2.subset, f2.generator, extra(f2)["fake_type"]) == (
        "ai",
        "sonics_udio-30s",
        "udio-30s",
        "full fake",
    )
    assert (r1.label, r1.subset, extra(r1)) == (
        "real",
        "sonics_real",
        {"fake_type": "real", "filename": "r1"},
    )
    assert bench.source["label_conflicts"] == 1


def test_fake_without_algorithm_is_its_own_subset(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    write_csv(root / "test.csv", [fake("f1", "", "test")])
    (track,) = load(root).tracks
    assert (track.subset, track.generator) == ("sonics_unknown", "unknown")


def test_blank_lines_are_skipped_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "test.csv").write_text(
        'filename,target,lyrics\nf1,1,"two\nlines"\n\n,,\nf2,7,x\n', encoding="utf-8"
    )
    assert load_error(root) == "test.csv row 5: unknown target '7'; expected 1 (fake) or 0 (real)"


# --- the release layout (fake_songs.csv + real_songs.csv with a split column) --------------------


@pytest.fixture
def csv_release(tmp_path: Path) -> Path:
    root = tmp_path / "sonics"
    (root / "fake_songs").mkdir(parents=True)
    (root / "fake_songs" / "fake_a.mp3").write_bytes(tone(500))
    fake_columns = [c for c in UPSTREAM_COLUMNS if c not in ("target", "artist_overlap")]
    write_csv(
        root / "fake_songs.csv",
        [
            fake("fake_a", "chirp-v3.5", "train"),
            fake("fake_b", "udio-120s", "Test", "half fake"),
            fake("fake_c", "chirp-v3", "valid"),
        ],
        columns=fake_columns,
    )
    real_columns = [c for c in UPSTREAM_COLUMNS if c != "target"]
    write_csv(
        root / "real_songs.csv",
        [real("real_a", "test", "False"), real("real_b", "train")],
        columns=real_columns,
    )
    return root


def test_release_layout_labels_by_file_and_splits_by_column(csv_release: Path) -> None:
    bench = load(csv_release)
    assert [(t.track_id, t.label, t.subset, t.bench_origin) for t in bench] == [
        ("fake_songs/fake_a", "ai", "sonics_chirp-v3.5", "train"),
        ("fake_songs/fake_b", "ai", "sonics_udio-120s", "test"),
        ("fake_songs/fake_c", "ai", "sonics_chirp-v3", "valid"),
        ("real_songs/real_a", "real", "sonics_real", "test"),
        ("real_songs/real_b", "real", "sonics_real", "train"),
    ]
    fake_b, real_a = bench.tracks[1], bench.tracks[3]
    assert extra(fake_b) == {"fake_type": "half fake", "duration": "120.5", "filename": "fake_b"}
    assert extra(real_a)["artist_overlap"] == "unseen"
    assert bench.tracks[0].read_bytes()[:3] in (b"ID3", b"\xff\xfb")
    source = bench.source
    assert source["layout"] == "release"
    assert set(source["csv"]) == {"fake_songs.csv", "real_songs.csv"}
    assert (source["rows_read"], source["rows_bound"], source["rows_missing"]) == (5, 1, 4)
    assert source["splits"]["test"] == {"rows": 2, "ai": 1, "real": 1, "bound": 0, "missing": 2}


def test_split_csvs_win_over_the_release_csvs(csv_release: Path) -> None:
    write_csv(csv_release / "test.csv", [fake("fake_a", "chirp-v3.5", "test")])
    bench = load(csv_release)
    assert bench.source["layout"] == "splits" and list(bench.source["csv"]) == ["test.csv"]
    assert [t.track_id for t in bench] == ["fake_songs/fake_a"]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("test.csv", "title,target\nx,1\n", "test.csv row 1: missing column(s) filename; need"),
        ("test.csv", "filename,title\nx,t\n", "test.csv row 1: missing column(s) target or label"),
        ("test.csv", "filename,Label,label\nx,real,real\n", "test.csv row 1: column 'label'"),
        ("fake_songs.csv", "filename,label\nx,full fake\n", "fake_songs.csv row 1: missing column"),
        ("test.csv", "filename,label\nx,real\ny,fake-ish\n", "test.csv row 3: unknown label"),
        ("test.csv", "filename,target\nx,2\n", "test.csv row 2: unknown target '2'"),
        ("test.csv", "filename,target,label\nx,,\n", "test.csv row 2: empty target and label"),
        ("test.csv", "filename,target\n,1\n", "test.csv row 2: empty filename"),
        ("test.csv", "filename,target\n../../etc/x,1\n", "test.csv row 2: filename '../../etc/x'"),
        ("test.csv", "filename,target\na/b,0\n", "test.csv row 2: filename 'a/b' escapes real"),
        ("test.csv", "filename,target\n..,0\n", "test.csv row 2: filename '..' escapes"),
        ("test.csv", "filename,target\nx,1\ny,0\nx,1\n", "test.csv row 4: duplicate filename 'x'"),
        ("test.csv", "filename,target,split\nx,1,train\n", "test.csv row 2: split 'train' in"),
        ("test.csv", "filename,target,algorithm\nx,1,real\n", "test.csv row 2: algorithm 'real'"),
        ("real_songs.csv", "filename,split,target\nx,test,1\n", "real_songs.csv row 2: a fake"),
        ("fake_songs.csv", "filename,split,label\nx,test,real\n", "fake_songs.csv row 2: a real"),
        ("fake_songs.csv", "filename,split\nx,dev\n", "fake_songs.csv row 2: unknown split 'dev'"),
        ("fake_songs.csv", "filename,split\nx,\n", "fake_songs.csv row 2: empty split"),
        ("test.csv", 'filename,target\nx,"1\n', "test.csv is not a readable CSV"),
        ("test.csv", "filename,target\n", "no rows in test.csv"),
    ],
)
def test_refusals_name_the_file_and_row(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / name).write_text(text, encoding="utf-8")
    assert load_error(root).startswith(expected)


def test_duplicates_are_per_label_folder_across_csvs(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    write_csv(root / "train.csv", [fake("same", "chirp-v3", "train"), real("same", "train")])
    assert len(load(root).tracks) == 2
    write_csv(root / "test.csv", [real("other", "test"), fake("same", "udio-30s", "test")])
    message = load_error(root)
    assert message == (
        "test.csv row 3: duplicate filename 'same' in fake_songs/ (first at train.csv row 2)"
    )


def test_not_a_release_and_not_utf8(tmp_path: Path) -> None:
    assert load_error(tmp_path / "absent").startswith("SONICS folder not found")
    (tmp_path / "empty").mkdir()
    assert "is not a SONICS release" in load_error(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test.csv").write_bytes(b"filename,target\n\xff\xfe,1\n")
    assert load_error(bad).startswith("test.csv is not UTF-8 text")


# --- fingerprint and cohort ----------------------------------------------------------------------


def test_fingerprint_follows_the_csvs_not_the_audio(split_release: Path) -> None:
    first = load(split_release).fingerprint
    assert first.startswith("sha256:")
    (split_release / "real_songs" / "real_00004.mp3").write_bytes(tone(600))
    (split_release / "fake_songs" / "fake_00001.mp3").write_bytes(b"changed")
    assert load(split_release).fingerprint == first
    test_csv = split_release / "test.csv"
    original = test_csv.read_bytes()
    test_csv.write_bytes(original.replace(b"120.5", b"120.6", 1))
    assert load(split_release).fingerprint != first
    test_csv.write_bytes(original)
    assert load(split_release).fingerprint == first


def test_cohort_is_stable_across_loads(split_release: Path) -> None:
    tracks = load(split_release).tracks
    picked = cohort(tracks, 1, seed=7)
    again = cohort(load(split_release).tracks, 1, seed=7)
    assert picked == again
    assert sorted(t.subset for t in picked) == sorted({t.subset for t in tracks})
    assert [t.track_id for t in picked] == [t.track_id for t in tracks if t in picked]
    assert len(cohort(tracks, 2, seed=7)) == 7  # five fakes alone in their subsets, two reals


# --- the official test split's size --------------------------------------------------------------


def test_official_test_split_size_lists_fast(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    algorithms = ("chirp-v2-xxl-alpha", "chirp-v3", "chirp-v3.5", "udio-30s", "udio-120s")
    lines = ["filename,duration,label,artist_overlap,target,split,algorithm"]
    lines += [f"real_{i:05d},200.0,real,{i % 2 == 0},0,test," for i in range(10510)]
    lines += [f"fake_{i:05d},120.0,full fake,,1,test,{algorithms[i % 5]}" for i in range(12778)]
    (root / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = time.perf_counter()
    bench = load(root)
    elapsed = time.perf_counter() - start
    assert len(bench.tracks) == 23288
    assert sum(t.label == "ai" for t in bench) == 12778
    assert len(bench.select("test")) == 23288
    assert bench.source["splits"] == {
        "test": {"rows": 23288, "ai": 12778, "real": 10510, "bound": 0, "missing": 23288}
    }
    assert len(bench.subsets) == 6
    assert elapsed < 5.0
