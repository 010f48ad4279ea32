"""`folder:PATH` benches: the manifest and subfolder layouts, their fingerprints, and every way a
user's folder can be malformed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from artifactbench.benches.base import ResolveError, SubsetInfo
from artifactbench.benches.folder import load_folder_bench


def touch(path: Path, data: bytes = b"RIFF-not-really") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_manifest(root: Path, *lines: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_error(root: Path) -> str:
    with pytest.raises(ValueError) as exc:
        load_folder_bench(root)
    message = str(exc.value)
    assert message and "\n" not in message
    return message


# --- manifest layout -----------------------------------------------------------------------------


def test_manifest_layout_builds_tracks_and_subsets(tmp_path: Path) -> None:
    root = tmp_path / "mybench"
    touch(root / "gen" / "a.wav", b"aaaa")
    touch(root / "gen" / "b.mp3", b"bbbbbb")
    touch(root / "human" / "c.flac", b"cc")
    write_manifest(
        root,
        "path,label,subset,generator,bench_origin,track_id,hard,notes",
        "gen/a.wav,ai,suno,suno-v3,train,,true,loud",
        "./gen/b.mp3,AI,suno,,,custom-id,,",
        "human/c.flac,real,fma,,test,,false,",
    )
    bench = load_folder_bench(root)

    assert bench.name == "folder:mybench"
    assert bench.source == {"kind": "folder", "path": str(root.resolve()), "layout": "manifest"}
    assert [t.track_id for t in bench] == ["gen/a.wav", "custom-id", "human/c.flac"]
    a, b, c = bench.tracks
    assert (a.bench, a.subset, a.label, a.generator, a.bench_origin) == (
        "folder:mybench",
        "suno",
        "ai",
        "suno-v3",
        "train",
    )
    assert a.extra == (("notes", "loud"),)
    assert (b.label, b.generator, b.bench_origin, b.extra) == ("ai", "unknown", "test", ())
    assert (c.label, c.generator, c.bench_origin) == ("real", "real", "test")
    assert Path(b.path) == root.resolve() / "gen" / "b.mp3"
    assert a.read_bytes() == b"aaaa" and b.read_bytes() == b"bbbbbb"
    assert bench.subsets == {
        "fma": SubsetInfo("fma", "real", False),
        "suno": SubsetInfo("suno", "ai", True),
    }
    assert [t.track_id for t in bench.select("train")] == ["gen/a.wav"]
    assert [t.track_id for t in bench.select("test")] == ["custom-id", "human/c.flac"]


def test_manifest_fingerprint_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    root = tmp_path / "b"
    audio = touch(root / "x.wav", b"first")
    manifest = write_manifest(root, "path,label,subset", "x.wav,ai,s")
    fingerprint = load_folder_bench(root).fingerprint
    assert fingerprint == "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()

    audio.write_bytes(b"different audio, same manifest")
    assert load_folder_bench(root).fingerprint == fingerprint
    write_manifest(root, "path,label,subset", "x.wav,ai,other")
    assert load_folder_bench(root).fingerprint != fingerprint


def test_missing_file_is_still_a_track_that_fails_to_resolve(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write_manifest(root, "path,label,subset", "gone.wav,real,r")
    (track,) = load_folder_bench(root).tracks
    assert track.track_id == "gone.wav"
    assert track.locator().startswith("missing:")
    with pytest.raises(ResolveError, match="gone.wav"):
        track.read_bytes()


def test_manifest_accepts_absolute_paths(tmp_path: Path) -> None:
    root = tmp_path / "b"
    inside = touch(root / "in" / "x.wav")
    outside = touch(tmp_path / "elsewhere" / "y.wav", b"yy")
    write_manifest(root, "path,label,subset", f"{inside},ai,s", f"{outside},ai,s")
    x, y = load_folder_bench(root).tracks
    assert x.track_id == "in/x.wav"
    assert y.track_id == outside.as_posix() and y.read_bytes() == b"yy"


def test_manifest_tolerates_bom_spacing_case_and_blank_lines(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / "manifest.csv").write_bytes(
        "\ufeff Path , LABEL ,Subset\r\n\r\n sub/../x.wav , Real , r \r\n,,\r\n".encode()
    )
    (track,) = load_folder_bench(root).tracks
    assert (track.track_id, track.label, track.subset) == ("x.wav", "real", "r")


@pytest.mark.parametrize("column", ["path", "label", "subset"])
def test_manifest_missing_required_column(tmp_path: Path, column: str) -> None:
    columns = [c for c in ("path", "label", "subset") if c != column]
    write_manifest(tmp_path, ",".join(columns), ",".join(["x"] * len(columns)))
    message = load_error(tmp_path)
    assert "row 1" in message and f"missing required column(s) {column}" in message


def test_manifest_with_a_repeated_column_is_an_error(tmp_path: Path) -> None:
    write_manifest(tmp_path, "path,label,subset,label", "a.wav,ai,s,real")
    assert load_error(tmp_path) == "manifest.csv row 1: duplicate column(s) label"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("x.wav,fake,s", "unknown label 'fake'"),
        ("x.wav,ai,s,,validation", "unknown bench_origin 'validation'"),
        ("x.wav,ai,s,,,,maybe", "hard must be true or false, not 'maybe'"),
        ("../x.wav,ai,s", "path '../x.wav' escapes the bench folder"),
        ("a/../../x.wav,ai,s", "escapes the bench folder"),
        (",ai,s", "empty path"),
        ("x.wav,,s", "empty label"),
        ("x.wav,ai", "empty subset"),
        ("x.wav,ai,s,g,test,id,true,surplus", "8 fields but the header has 7"),
    ],
)
def test_malformed_manifest_rows_name_their_row(tmp_path: Path, row: str, expected: str) -> None:
    write_manifest(
        tmp_path,
        "path,label,subset,generator,bench_origin,track_id,hard",
        "ok.wav,real,r",
        row,
    )
    message = load_error(tmp_path)
    assert message.startswith("manifest.csv row 3:")
    assert expected in message


def test_duplicate_track_id_names_both_rows(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        "path,label,subset,track_id",
        "a.wav,ai,s,one",
        "b.wav,ai,s,two",
        "c.wav,ai,s,one",
    )
    expected = "manifest.csv row 4: duplicate track_id 'one' (first at row 2)"
    assert load_error(tmp_path) == expected


def test_duplicate_default_track_id_from_the_same_path(tmp_path: Path) -> None:
    write_manifest(tmp_path, "path,label,subset", "d/a.wav,ai,s", "d/./a.wav,ai,s")
    assert "row 3: duplicate track_id 'd/a.wav'" in load_error(tmp_path)


def test_subset_mixing_labels_is_named(tmp_path: Path) -> None:
    write_manifest(tmp_path, "path,label,subset", "a.wav,ai,mixed", "b.wav,real,mixed")
    message = load_error(tmp_path)
    assert "subset 'mixed' mixes labels" in message and "row 2" in message and "row 3" in message


def test_subset_with_conflicting_hard_is_named(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        "path,label,subset,hard",
        "a.wav,ai,sa,true",
        "b.wav,ai,sa,",
        "c.wav,ai,sa,false",
    )
    assert "subset 'sa' mixes hard=true at row 2 and hard=false at row 4" in load_error(tmp_path)


def test_manifest_with_only_a_header_is_an_error(tmp_path: Path) -> None:
    write_manifest(tmp_path, "path,label,subset")
    assert "no tracks" in load_error(tmp_path)


def test_manifest_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_bytes(b"path,label,subset\n\xff\xfe.wav,ai,s\n")
    assert "not UTF-8" in load_error(tmp_path)


def test_manifest_wins_over_subfolders(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "ignored.wav")
    write_manifest(tmp_path, "path,label,subset", "ai/ignored.wav,real,listed")
    bench = load_folder_bench(tmp_path)
    assert bench.source["layout"] == "manifest"
    assert [(t.track_id, t.label) for t in bench] == [("ai/ignored.wav", "real")]


# --- subfolder layout ----------------------------------------------------------------------------


def test_flat_subfolders_give_ai_and_real_subsets(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for name in ("b.mp3", "a.WAV", "c.opus"):
        touch(root / "ai" / name)
    for name in ("z.flac", "y.m4a", "x.aac", "w.ogg"):
        touch(root / "real" / name)
    touch(root / "ai" / "cover.jpg")
    touch(root / "ai" / "notes.txt")
    touch(root / "ai" / "._a.wav")
    touch(root / "real" / ".hidden" / "h.wav")
    bench = load_folder_bench(root)

    assert bench.name == "folder:flat" and bench.source["layout"] == "subfolders"
    assert [t.track_id for t in bench] == [
        "ai/a.WAV",
        "ai/b.mp3",
        "ai/c.opus",
        "real/w.ogg",
        "real/x.aac",
        "real/y.m4a",
        "real/z.flac",
    ]
    assert {(t.subset, t.label, t.generator) for t in bench} == {
        ("ai", "ai", "unknown"),
        ("real", "real", "real"),
    }
    assert all(t.bench == "folder:flat" and t.bench_origin == "test" for t in bench)
    assert bench.subsets == {"ai": SubsetInfo("ai", "ai"), "real": SubsetInfo("real", "real")}
    assert bench.tracks[0].read_bytes() == b"RIFF-not-really"


def test_nested_subfolders_name_the_subsets(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "suno" / "v3" / "deep.wav")
    touch(tmp_path / "ai" / "suno" / "a.wav")
    touch(tmp_path / "ai" / "udio" / "b.flac")
    touch(tmp_path / "ai" / "loose.mp3")
    touch(tmp_path / "real" / "fma" / "c.mp3")
    bench = load_folder_bench(tmp_path)
    assert [(t.track_id, t.subset, t.generator) for t in bench] == [
        ("ai/loose.mp3", "ai", "unknown"),
        ("ai/suno/a.wav", "suno", "suno"),
        ("ai/suno/v3/deep.wav", "suno", "suno"),
        ("ai/udio/b.flac", "udio", "udio"),
        ("real/fma/c.mp3", "fma", "real"),
    ]
    assert sorted(bench.subsets) == ["ai", "fma", "suno", "udio"]
    assert bench.subsets["fma"].label == "real" and bench.subsets["suno"].label == "ai"


def test_only_one_label_folder_is_enough(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "only.wav")
    bench = load_folder_bench(tmp_path)
    assert list(bench.subsets) == ["real"] and len(bench.tracks) == 1


def test_subfolder_name_used_under_both_labels_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "shared" / "a.wav")
    touch(tmp_path / "real" / "shared" / "b.wav")
    message = load_error(tmp_path)
    assert "subset 'shared' mixes labels" in message


def test_subfolder_fingerprint_covers_names_and_sizes(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "a.wav", b"12345")
    touch(tmp_path / "real" / "r" / "b.wav", b"12")
    listing = "ai/a.wav\t5\nreal/r/b.wav\t2\n"
    fingerprint = load_folder_bench(tmp_path).fingerprint
    assert fingerprint == "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    assert load_folder_bench(tmp_path).fingerprint == fingerprint

    touch(tmp_path / "ai" / "a.wav", b"123456")
    resized = load_folder_bench(tmp_path).fingerprint
    assert resized != fingerprint
    touch(tmp_path / "ai" / "c.wav")
    assert load_folder_bench(tmp_path).fingerprint not in (fingerprint, resized)


def test_symlink_loops_are_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "g" / "a.wav")
    os.symlink(tmp_path / "ai", tmp_path / "ai" / "g" / "loop")
    assert [t.track_id for t in load_folder_bench(tmp_path)] == ["ai/g/a.wav"]


def test_dangling_link_is_a_track_that_fails_to_resolve(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "real" / "dangling.wav")
    (track,) = load_folder_bench(tmp_path).tracks
    with pytest.raises(ResolveError):
        track.read_bytes()


def test_label_folders_without_audio_are_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "ai" / "readme.txt")
    (tmp_path / "real").mkdir()
    message = load_error(tmp_path)
    assert "no audio files" in message and "manifest.csv" in message


# --- neither layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("contents", [[], ["song.wav", "other/track.mp3"]])
def test_folder_with_neither_layout_explains_both(tmp_path: Path, contents: list[str]) -> None:
    for name in contents:
        touch(tmp_path / name)
    message = load_error(tmp_path)
    assert "is not a bench folder" in message
    assert "manifest.csv" in message and "path,label,subset" in message
    assert "ai/ and real/ subfolders" in message


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path / "absent")
