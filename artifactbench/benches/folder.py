"""`--bench folder:PATH`: a user's own directory of audio, described by a manifest or by folders.

Two layouts are accepted (a `manifest.csv` wins when both are present):

- `manifest.csv` with columns `path` (relative to the folder, or absolute), `label` (ai | real),
  `subset`, and optionally `generator`, `bench_origin` (train | test, default test), `track_id`
  (default: the normalised relative path) and `hard` (true | false). Any other column is kept
  on the track as `extra`. Rows are numbered as a spreadsheet shows them: the header is row 1.
- `ai/` and `real/` subfolders of audio files, searched recursively. Files directly inside give
  subsets `ai` and `real`; files under `ai/<name>/` or `real/<name>/` give subset `<name>`.

Loading reads no audio: a manifest row whose file is missing still becomes a track, so that the
runner records it as a `resolve` failure instead of the bench silently shrinking.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import cast

from artifactbench.benches.base import LABELS, Bench, Label, SubsetInfo, Track

MANIFEST = "manifest.csv"
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")
REQUIRED_COLUMNS = ("path", "label", "subset")
OPTIONAL_COLUMNS = ("generator", "bench_origin", "track_id", "hard")
ORIGINS = ("train", "test")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")
_LAYOUTS = (
    f"give it a {MANIFEST} (columns {','.join(REQUIRED_COLUMNS)} and optionally "
    f"{','.join(OPTIONAL_COLUMNS)}) or ai/ and real/ subfolders of audio files "
    f"({' '.join(AUDIO_EXTENSIONS)})"
)


def load_folder_bench(path: Path) -> Bench:
    """A Bench over a user's folder; `ValueError` (one line) when the folder cannot be a bench."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"bench folder not found: {root}")
    manifest = root / MANIFEST
    if manifest.is_file():
        data = manifest.read_bytes()
        tracks = _manifest_tracks(root, data)
        fingerprint = hashlib.sha256(data).hexdigest()
        layout = "manifest"
    elif (root / "ai").is_dir() or (root / "real").is_dir():
        tracks, fingerprint = _subfolder_tracks(root)
        layout = "subfolders"
    else:
        raise ValueError(f"{root} is not a bench folder: {_LAYOUTS}")
    return Bench(
        name=_bench_name(root),
        fingerprint=f"sha256:{fingerprint}",
        subsets=_subsets(tracks, layout),
        tracks=[t for t, _ in tracks],
        source={"kind": "folder", "path": str(root), "layout": layout},
    )


def _bench_name(root: Path) -> str:
    return f"folder:{root.name or root.as_posix()}"


# A track paired with how its subset was declared: (hard or None when unstated, where).
_Declared = tuple[Track, tuple[bool | None, str]]


def _manifest_tracks(root: Path, data: bytes) -> list[_Declared]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{MANIFEST} is not UTF-8 text ({exc.reason})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{MANIFEST} row 1: missing required column(s) {', '.join(missing)}; "
            f"expected {','.join(REQUIRED_COLUMNS)} and optionally {','.join(OPTIONAL_COLUMNS)}"
        )
    duplicated = sorted({h for h in header if h and header.count(h) > 1})
    if duplicated:
        raise ValueError(f"{MANIFEST} row 1: duplicate column(s) {', '.join(duplicated)}")
    bench = _bench_name(root)
    seen: dict[str, int] = {}
    tracks: list[_Declared] = []
    for row_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise ValueError(
                f"{MANIFEST} row {row_no}: {len(values)} fields but the header has {len(header)}"
            )
        row = {h: v.strip() for h, v in zip(header, values, strict=False)}
        track, hard = _manifest_row(root, bench, row, row_no)
        if track.track_id in seen:
            raise ValueError(
                f"{MANIFEST} row {row_no}: duplicate track_id {track.track_id!r} "
                f"(first at row {seen[track.track_id]})"
            )
        seen[track.track_id] = row_no
        tracks.append((track, (hard, f"row {row_no}")))
    if not tracks:
        raise ValueError(f"{MANIFEST} has a header but no tracks")
    return tracks


def _manifest_row(
    root: Path, bench: str, row: dict[str, str], row_no: int
) -> tuple[Track, bool | None]:
    def fail(reason: str) -> ValueError:
        return ValueError(f"{MANIFEST} row {row_no}: {reason}")

    for column in REQUIRED_COLUMNS:
        if not row.get(column):
            raise fail(f"empty {column}")
    label = row["label"].lower()
    if label not in LABELS:
        raise fail(f"unknown label {row['label']!r}; use ai or real")
    origin = (row.get("bench_origin") or "test").lower()
    if origin not in ORIGINS:
        raise fail(f"unknown bench_origin {row['bench_origin']!r}; use train or test")
    hard_text = row.get("hard", "").lower()
    if hard_text not in _TRUE + _FALSE:
        raise fail(f"hard must be true or false, not {row['hard']!r}")
    file_path, default_id = _resolve_manifest_path(root, row["path"], fail)
    extra = tuple(
        (k, v) for k, v in row.items() if k not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and k and v
    )
    track = Track(
        track_id=row.get("track_id") or default_id,
        bench=bench,
        subset=row["subset"],
        label=cast(Label, label),
        generator=row.get("generator") or _default_generator(label),
        bench_origin=origin,
        path=str(file_path),
        extra=extra,
    )
    return track, (hard_text in _TRUE) if hard_text else None


def _resolve_manifest_path(
    root: Path, text: str, fail: Callable[[str], ValueError]
) -> tuple[Path, str]:
    """The file a manifest path names, and its default track_id (relative where possible)."""
    if os.path.isabs(text):
        absolute = Path(os.path.normpath(text))
        inside = absolute.is_relative_to(root)
        return absolute, absolute.relative_to(root).as_posix() if inside else absolute.as_posix()
    relative = posixpath.normpath(text.replace(os.sep, "/"))
    if relative == ".." or relative.startswith("../"):
        raise fail(f"path {text!r} escapes the bench folder")
    return root / relative, relative


def _default_generator(label: str, name: str | None = None) -> str:
    if label == "real":
        return "real"
    return name or "unknown"


def _subfolder_tracks(root: Path) -> tuple[list[_Declared], str]:
    bench = _bench_name(root)
    tracks: list[_Declared] = []
    listing = hashlib.sha256()
    for label in LABELS:
        for file_path in _audio_files(root / label):
            relative = file_path.relative_to(root).as_posix()
            parts = relative.split("/")
            name = parts[1] if len(parts) > 2 else None
            track = Track(
                track_id=relative,
                bench=bench,
                subset=name or label,
                label=cast(Label, label),
                generator=_default_generator(label, name),
                bench_origin="test",
                path=str(file_path),
            )
            tracks.append((track, (None, f"{label}/")))
            listing.update(f"{relative}\t{_size(file_path)}\n".encode())
    if not tracks:
        raise ValueError(f"no audio files under {root}/ai or {root}/real: {_LAYOUTS}")
    return tracks, listing.hexdigest()


def _size(file_path: Path) -> str:
    """The size for the fingerprint; a dangling link is listed, not fatal (it fails at resolve)."""
    try:
        return str(file_path.stat().st_size)
    except OSError:
        return "missing"


def _audio_files(top: Path) -> list[Path]:
    """Audio files under `top`, recursively, sorted; hidden entries (e.g. `._x.wav`) skipped."""
    found: list[Path] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlink loop or a directory linked twice
            dirnames.clear()
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            Path(dirpath, f)
            for f in filenames
            if not f.startswith(".") and f.lower().endswith(AUDIO_EXTENSIONS)
        )
    return sorted(found, key=lambda p: p.as_posix())


def _subsets(tracks: list[_Declared], layout: str) -> dict[str, SubsetInfo]:
    """One SubsetInfo per subset; a subset must have one label and one stated `hard`."""
    labels: dict[str, tuple[Label, str]] = {}
    hard: dict[str, tuple[bool, str]] = {}
    for track, (is_hard, where) in tracks:
        first = labels.setdefault(track.subset, (track.label, where))
        if first[0] != track.label:
            raise ValueError(
                f"subset {track.subset!r} mixes labels: {first[0]} at {first[1]}, "
                f"{track.label} at {where} ({layout} layout)"
            )
        if is_hard is None:
            continue
        stated = hard.setdefault(track.subset, (is_hard, where))
        if stated[0] != is_hard:
            raise ValueError(
                f"subset {track.subset!r} mixes hard={str(stated[0]).lower()} at {stated[1]} "
                f"and hard={str(is_hard).lower()} at {where}"
            )
    return {
        name: SubsetInfo(name, label, hard.get(name, (False, ""))[0])
        for name, (label, _) in sorted(labels.items())
    }
