"""`--bench sonics:PATH`: the SONICS release (Rahman et al., ICLR 2025) as the user holds it.

PATH is a folder in one of the two upstream layouts (the first wins when both are present):

- `train.csv`, `valid.csv`, `test.csv` (any of them), as SONICS' `data_split.py` writes them:
  each row is labelled by `target` (1 = fake) or, without it, by `label`; the file names the split.
- `fake_songs.csv` and/or `real_songs.csv` with a `split` column: the file names the label.

Audio sits at `fake_songs/<filename>.mp3` and `real_songs/<filename>.mp3` (any of
.mp3 .wav .flac .m4a .ogg .opus .aac; .mp3 preferred when several exist). Each folder is listed
once; `BenchOptions.audio_roots` may name further folders holding `fake_songs/` or `real_songs/`
(e.g. real songs downloaded to another disk), searched after PATH. A row whose file is absent
still becomes a track pointing where the file should be, so the runner records a `resolve`
failure instead of the bench silently shrinking; `Bench.source` counts them.

Subsets are `sonics_<algorithm>` for fakes (`sonics_unknown` without one) and `sonics_real`,
matching ArtifactBench's SONICS subsets. Column names are matched case-insensitively; other
columns are ignored. Rows are numbered as a spreadsheet shows them: the header is row 1. A row
empty in every column the bench reads is skipped. The fingerprint is a sha256 over each CSV's name
and sha256 (the audio is not read), so it changes exactly when a CSV does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from artifactbench.benches.base import Bench, BenchOptions, Label, SubsetInfo, Track

BENCH_NAME = "sonics"
SPLIT_CSVS = ("train.csv", "valid.csv", "test.csv")
RELEASE_CSVS: dict[str, Label] = {"fake_songs.csv": "ai", "real_songs.csv": "real"}
FOLDERS: dict[Label, str] = {"ai": "fake_songs", "real": "real_songs"}
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".ogg", ".opus", ".aac")
FAKE_TYPES = ("full fake", "half fake", "mostly fake")
COLUMNS = ("filename", "target", "label", "algorithm", "duration", "artist_overlap", "split")
REAL_SUBSET = "sonics_real"

_EXT_RANK = {ext: rank for rank, ext in enumerate(AUDIO_EXTENSIONS)}
_TARGETS = {"1": True, "1.0": True, "true": True, "0": False, "0.0": False, "false": False}
_SPLITS = {
    "train": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
}
_OVERLAP = {
    "seen": "seen",
    "true": "seen",
    "1": "seen",
    "unseen": "unseen",
    "false": "unseen",
    "0": "unseen",
}


@dataclass(frozen=True)
class _CsvSpec:
    """One CSV of the release and what its name fixes: the split (split layout) or the label."""

    name: str
    split: str | None = None
    label: Label | None = None

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        """Column groups a row needs to be labelled and located (one column of each group)."""
        if self.label is None:
            return (("filename",), ("target", "label"))
        return (("filename",), ("split",))


@dataclass
class _Counts:
    rows: int = 0
    ai: int = 0
    real: int = 0
    bound: int = 0
    missing: int = 0


def load_sonics_bench(path: Path, options: BenchOptions) -> Bench:
    """A Bench over a SONICS release folder; `ValueError` (one line) when it cannot be one."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"SONICS folder not found: {root}")
    specs, layout = _csv_specs(root)
    audio = {
        folder: _audio_index(
            [Path(base).expanduser() / folder for base in (root, *options.audio_roots)]
        )
        for folder in FOLDERS.values()
    }
    builder = _Builder(root, {folder: index for folder, (index, _) in audio.items()})
    fingerprint = hashlib.sha256()
    digests: dict[str, str] = {}
    for spec in specs:
        columns, digests[spec.name] = _read_csv(root / spec.name, spec)
        fingerprint.update(f"{spec.name}\0{digests[spec.name]}\n".encode())
        builder.add(spec, columns)
    if not builder.tracks:
        raise ValueError(f"no rows in {', '.join(digests)} ({root})")
    totals = builder.totals()
    return Bench(
        name=BENCH_NAME,
        fingerprint=f"sha256:{fingerprint.hexdigest()}",
        subsets=builder.subsets(),
        tracks=builder.tracks,
        source={
            "kind": "sonics",
            "path": str(root),
            "layout": layout,
            "csv": digests,
            "audio_folders": {folder: listed for folder, (_, listed) in audio.items()},
            "rows_read": totals.rows,
            "rows_bound": totals.bound,
            "rows_missing": totals.missing,
            "label_conflicts": builder.conflicts,
            "splits": {split: asdict(c) for split, c in sorted(builder.counts.items())},
        },
    )


def _csv_specs(root: Path) -> tuple[list[_CsvSpec], str]:
    splits = [_CsvSpec(n, split=n.removesuffix(".csv")) for n in SPLIT_CSVS if (root / n).is_file()]
    if splits:
        return splits, "splits"
    release = [_CsvSpec(n, label=lab) for n, lab in RELEASE_CSVS.items() if (root / n).is_file()]
    if release:
        return release, "release"
    raise ValueError(
        f"{root} is not a SONICS release: expected {', '.join(SPLIT_CSVS)} "
        f"or {' + '.join(RELEASE_CSVS)} (with a split column), beside fake_songs/ and real_songs/"
    )


def _audio_index(folders: Iterable[Path]) -> tuple[dict[str, str], list[str]]:
    """Stem -> audio path over `folders` (earlier folders win, then the preferred extension),
    listing each folder once instead of testing one path per row; and the folders listed."""
    index: dict[str, str] = {}
    listed: list[str] = []
    for folder in folders:
        best: dict[str, tuple[int, str]] = {}
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise ValueError(f"cannot list {folder}: {exc.strerror or exc}") from exc
        with entries:
            for entry in entries:
                stem, ext = os.path.splitext(entry.name)
                rank = _EXT_RANK.get(ext.lower())
                if rank is None or stem.startswith(".") or not entry.is_file():
                    continue
                if stem not in best or rank < best[stem][0]:
                    best[stem] = (rank, entry.path)
        listed.append(str(folder))
        for stem, (_, file_path) in best.items():
            index.setdefault(stem, file_path)
    return index, listed


def _column_key(header: str) -> str:
    return "_".join(header.strip().lower().replace("-", " ").split())


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what it hands out, so the fingerprint is of the bytes parsed."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self._raw.readinto(buffer) or 0
        self.digest.update(memoryview(buffer)[:n])
        return n


def _read_csv(path: Path, spec: _CsvSpec) -> tuple[dict[str, list[str]], str]:
    """The bench's columns of one CSV as lists of stripped strings (list index k is row k + 2),
    and the file's sha256. The file is streamed once and only the bench's columns are kept:
    the release carries full lyrics on every row."""
    name = spec.name
    try:
        with open(path, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), [])
        with open(path, "rb", buffering=0) as raw:
            stream = _HashingReader(raw)
            positions = _column_positions(spec, header)
            order = sorted(positions.values())
            frame = pd.read_csv(
                stream,
                encoding="utf-8-sig",
                dtype=str,
                na_filter=False,
                usecols=order,
                index_col=False,
                skip_blank_lines=False,
            )
            while stream.read(1 << 20):
                pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise ValueError(f"{name} row 1: {exc}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{name} is not a readable CSV: {str(exc).splitlines()[0]}") from exc
    columns = {
        key: frame.iloc[:, order.index(pos)].str.strip().tolist() for key, pos in positions.items()
    }
    return columns, stream.digest.hexdigest()


def _column_positions(spec: _CsvSpec, header: list[str]) -> dict[str, int]:
    """Where each column the bench reads sits; refuses a header that cannot label and locate."""
    positions: dict[str, int] = {}
    for pos, key in enumerate(map(_column_key, header)):
        if key not in COLUMNS:
            continue
        if key in positions:
            raise ValueError(f"{spec.name} row 1: column {key!r} appears twice (names ignore case)")
        positions[key] = pos
    missing = [" or ".join(group) for group in spec.required if not positions.keys() & set(group)]
    if missing:
        needed = ", ".join(" or ".join(group) for group in spec.required)
        raise ValueError(
            f"{spec.name} row 1: missing column(s) {', '.join(missing)}; need {needed}"
        )
    return positions


class _Builder:
    """Turns the rows of every CSV into tracks, refusing what cannot be labelled or located."""

    def __init__(self, root: Path, audio: dict[str, dict[str, str]]) -> None:
        self.root = root
        self.audio = audio
        self.tracks: list[Track] = []
        self.counts: dict[str, _Counts] = {}
        self.conflicts = 0
        self._seen: dict[tuple[str, str], str] = {}
        self._labels: dict[str, Label] = {}

    def add(self, spec: _CsvSpec, columns: dict[str, list[str]]) -> None:
        blank: Iterable[str] = repeat("")
        rows = zip(
            columns["filename"],
            *(columns.get(c, blank) for c in COLUMNS[1:]),
            strict=False,
        )
        for i, (filename, target, label, algorithm, duration, overlap, split) in enumerate(rows):
            if filename or target or label or algorithm or duration or overlap or split:
                self._row(spec, i + 2, filename, target, label, algorithm, duration, overlap, split)

    def _row(
        self,
        spec: _CsvSpec,
        row_no: int,
        filename: str,
        target: str,
        label_text: str,
        algorithm: str,
        duration: str,
        overlap: str,
        split_text: str,
    ) -> None:
        def fail(reason: str) -> ValueError:
            return ValueError(f"{spec.name} row {row_no}: {reason}")

        fake_type = _fake_type(label_text) if label_text else None
        if label_text and fake_type is None:
            expected = ", ".join(("real", *FAKE_TYPES))
            raise fail(f"unknown label {label_text!r}; expected {expected}")
        if target:
            is_fake = _TARGETS.get(target.lower())
            if is_fake is None:
                raise fail(f"unknown target {target!r}; expected 1 (fake) or 0 (real)")
            label: Label = "ai" if is_fake else "real"
            if fake_type is not None and (fake_type == "real") != (label == "real"):
                self.conflicts += 1
        elif fake_type is not None:
            label = "real" if fake_type == "real" else "ai"
        elif spec.label is not None:
            label = spec.label
        else:
            raise fail("empty target and label")
        if spec.label is not None and label != spec.label:
            raise fail(f"a {'fake' if label == 'ai' else 'real'} song listed in {spec.name}")
        split = _SPLITS.get(split_text.lower()) if split_text else None
        if split_text and split is None:
            raise fail(f"unknown split {split_text!r}; expected train, valid or test")
        if spec.split is not None:
            if split is not None and split != spec.split:
                raise fail(f"split {split_text!r} in {spec.name}")
            split = spec.split
        elif split is None:
            raise fail("empty split; expected train, valid or test")
        folder = FOLDERS[label]
        if not filename:
            raise fail("empty filename")
        if "/" in filename or "\\" in filename or filename in (".", ".."):
            raise fail(f"filename {filename!r} escapes {folder}/; expected a name without folders")
        first = self._seen.get((folder, filename))
        if first is not None:
            raise fail(f"duplicate filename {filename!r} in {folder}/ (first at {first})")
        self._seen[folder, filename] = f"{spec.name} row {row_no}"
        if label == "real":
            subset, generator = REAL_SUBSET, "real"
            fake_type = fake_type or "real"
        else:
            subset, generator = _fake_subset(algorithm)
            if subset == REAL_SUBSET:
                raise fail("algorithm 'real' on a fake song")
        self._labels.setdefault(subset, label)
        file_path = self.audio[folder].get(filename)
        counts = self.counts.setdefault(split, _Counts())
        counts.rows += 1
        if label == "ai":
            counts.ai += 1
        else:
            counts.real += 1
        if file_path is None:
            counts.missing += 1
            file_path = f"{self.root}{os.sep}{folder}{os.sep}{filename}.mp3"
        else:
            counts.bound += 1
        extra: list[tuple[str, str]] = []
        if fake_type is not None:
            extra.append(("fake_type", fake_type))
        if duration:
            extra.append(("duration", duration))
        if overlap:
            extra.append(("artist_overlap", _artist_overlap(overlap)))
        extra.append(("filename", filename))
        self.tracks.append(
            Track(
                track_id=f"{folder}/{filename}",
                bench=BENCH_NAME,
                subset=subset,
                label=label,
                generator=generator,
                bench_origin=split,
                path=file_path,
                extra=tuple(extra),
            )
        )

    def totals(self) -> _Counts:
        total = _Counts()
        for counts in self.counts.values():
            for key, value in vars(counts).items():
                setattr(total, key, getattr(total, key) + value)
        return total

    def subsets(self) -> dict[str, SubsetInfo]:
        return {name: SubsetInfo(name, label) for name, label in sorted(self._labels.items())}


@lru_cache(maxsize=64)
def _fake_type(text: str) -> str | None:
    """`real` or a SONICS fake type, tolerating case, `_` and `-`; None when it is neither."""
    value = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    return value if value == "real" or value in FAKE_TYPES else None


@lru_cache(maxsize=256)
def _fake_subset(algorithm: str) -> tuple[str, str]:
    generator = algorithm.lower() or "unknown"
    return f"sonics_{generator}", generator


@lru_cache(maxsize=64)
def _artist_overlap(text: str) -> str:
    """`seen` / `unseen` (the release writes True / False for real songs); other values kept."""
    return _OVERLAP.get(text.lower(), text)
