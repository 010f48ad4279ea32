"""ArtifactBench (Intrect, CC BY-NC 4.0) in each form it is published in.

`Bench.source["form"]` says which form a bench was read from:

- `hf-shards`: the Hugging Face dataset `intrect/artifactbench`, parquet shards with the audio
  embedded, fetched once (`artifactbench fetch bench artifactbench`) into the harness cache and
  read offline from then on. Its fingerprint is the resolved commit.
- `local-shards`: a directory of such shards (`--bench artifactbench:DIR`).
- `manifest-v1`: `{"bench": [...], "metadata": {...}}`, rows of path, label, source, track_id,
  bench_origin and generator.
- `manifest-v2`: `{"tracks": [...]}`, the v1 fields plus generator_family, generator_version,
  protocol_split, audio_sha256, audio_format and lineage_id.

The real sources are not redistributed, so manifest rows are bound to local files: by
audio_sha256 under the `--audio-root` folders where a row has one, else by path (relative to the
audio roots, or to the manifest's folder without roots; a foreign absolute path is re-bound
under the roots by its trailing folders). With roots, a row's audio_sha256 is binding: a file
found by path must hold those bytes. Without roots it is not checked at load, since that would
read every file. A row that binds to nothing still becomes a track whose read fails at the
`resolve` stage, and is listed in `source["unbound"]`: the bench never shrinks silently.
`source["rows_filtered"]` counts the rows a `--protocol-split` filter left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from artifactbench.benches import catalog
from artifactbench.benches.base import (
    LABELS,
    Bench,
    BenchOptions,
    Label,
    ResolveError,
    SubsetInfo,
    Track,
)
from artifactbench.benches.shards import read_shard_dir
from artifactbench.paths import cache_dir, hub_offline
from artifactbench.util import sha256_file, write_atomic

BENCH_NAME = "artifactbench"
REPO_ID = "intrect/artifactbench"
LICENSE = "CC BY-NC 4.0"
FETCH_COMMAND = "artifactbench fetch bench artifactbench"
ALLOW_PATTERNS = ["*.parquet", "*.json", "*.md"]
DEFAULT_REVISION = "main"
MANIFEST = "manifest.json"
ORIGINS = ("train", "test")
PROTOCOL_SPLITS = ("calibration", "validation", "test")
V2_FIELDS = (
    "generator_family",
    "generator_version",
    "protocol_split",
    "lineage_id",
    "audio_format",
    "audio_sha256",
)
V1_REQUIRED = ("track_id", "path", "label", "source", "bench_origin")
V2_REQUIRED = ("track_id", "label", "source", "protocol_split")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff")
EDGE_BYTES = 1 << 20
UNBOUND_LISTED = 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class FetchError(ValueError):
    """The hub snapshot is not fetched, or cannot be: the message says the command to run."""


@dataclass(frozen=True)
class UnboundTrack(Track):
    """A manifest row with no local audio: kept in the bench so its read fails as `resolve`."""

    reason: str = "no local audio file"

    def read_bytes(self) -> bytes:
        raise ResolveError(self.reason)


def default_cache() -> Path:
    """Where the hub snapshot, its revision record and the audio sha256 index live."""
    return cache_dir() / BENCH_NAME


# ---------------------------------------------------------------------------------------------
# The hub


def _fetch_hint(revision: str | None) -> str:
    return FETCH_COMMAND + (f" --revision {revision}" if revision else "")


def fetch_artifactbench(revision: str | None, cache: Path) -> Path:
    """Download the dataset's shards and cards into `cache` and record the resolved commit.

    Only `*.parquet`, `*.json` and `*.md` are fetched; the audio stays embedded and undecoded.
    With `HF_HUB_OFFLINE` set, only an already cached snapshot is accepted.
    """
    offline = hub_offline()
    requested = revision or DEFAULT_REVISION
    try:
        import huggingface_hub
    except ImportError as exc:
        raise FetchError(
            "fetching ArtifactBench needs the huggingface_hub package: "
            f"pip install huggingface_hub, then run `{_fetch_hint(revision)}`"
        ) from exc
    try:
        snapshot = huggingface_hub.snapshot_download(
            repo_id=REPO_ID,
            repo_type="dataset",
            revision=revision,
            allow_patterns=ALLOW_PATTERNS,
            cache_dir=str(cache / "hub"),
            local_files_only=offline,
        )
    except Exception as exc:  # the hub's errors vary by version; each is reported the same way
        if offline:
            raise FetchError(
                f"{REPO_ID}@{requested} is not in the cache ({cache}) and HF_HUB_OFFLINE is set: "
                f"run `{_fetch_hint(revision)}` where the Hugging Face hub is reachable "
                "(HF_HUB_OFFLINE unset)"
            ) from exc
        reason = " ".join(str(exc).split())
        raise FetchError(
            f"cannot fetch {REPO_ID}@{requested}: {type(exc).__name__}: {reason}; the Hugging "
            f"Face hub must be reachable: rerun `{_fetch_hint(revision)}`"
        ) from exc
    path = Path(snapshot)
    resolved = path.name if _COMMIT.fullmatch(path.name) else None
    if resolved is None and not offline:
        try:
            resolved = huggingface_hub.HfApi().dataset_info(REPO_ID, revision=revision).sha
        except Exception as exc:  # as above
            raise FetchError(
                f"fetched {REPO_ID}@{requested} but cannot resolve its commit: {exc}; rerun "
                f"`{_fetch_hint(revision)}` while the Hugging Face hub is reachable"
            ) from exc
    _record_revision(cache, requested, resolved, path)
    return path


def _record_file(cache: Path) -> Path:
    return cache / "hub.json"


def _read_record(cache: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_file(cache).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _record_revision(cache: Path, requested: str, resolved: str | None, snapshot: Path) -> None:
    record = _read_record(cache)
    revisions = record.setdefault("revisions", {})
    where = snapshot.resolve()
    base = cache.resolve()
    revisions[requested] = {
        "resolved": resolved,
        "path": where.relative_to(base).as_posix() if where.is_relative_to(base) else str(where),
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record["repo"] = REPO_ID
    _write_json(_record_file(cache), record)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=1, sort_keys=True)))


def _fetched_snapshot(cache: Path, revision: str | None) -> tuple[Path, str | None]:
    """The fetched snapshot for `revision` and its commit; FetchError with the command if none."""
    requested = revision or DEFAULT_REVISION
    entry = _read_record(cache).get("revisions", {}).get(requested)
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        path = cache / entry["path"]
        if any(path.rglob("*.parquet")):
            return path, entry.get("resolved")
    raise FetchError(
        f"ArtifactBench ({REPO_ID}@{requested}) is not fetched into {cache}: run "
        f"`{_fetch_hint(revision)}` once (the Hugging Face hub must be reachable), or pass "
        "--bench artifactbench:PATH for a local copy"
    )


# ---------------------------------------------------------------------------------------------
# Loading


def load_artifactbench(
    path: Path | None, options: BenchOptions, cache: Path | None = None
) -> Bench:
    """ArtifactBench from the fetched hub snapshot (`path` None), a shard directory, or a v1/v2
    manifest (a `.json` file, or a directory holding `manifest.json` and no shards).

    Raises a one-line ValueError for anything a run would otherwise miscount.
    """
    cache = cache if cache is not None else default_cache()
    split = options.protocol_split
    if split is not None and split not in PROTOCOL_SPLITS:
        raise ValueError(
            f"unknown protocol split {split!r}; choose from {', '.join(PROTOCOL_SPLITS)}"
        )
    if path is None:
        snapshot, resolved = _fetched_snapshot(cache, options.revision)
        provenance = {
            "form": "hf-shards",
            "repo": REPO_ID,
            "revision_requested": options.revision or DEFAULT_REVISION,
            "revision_resolved": resolved,
            "path": str(snapshot),
        }
        fingerprint = f"hf:{REPO_ID}@{resolved or options.revision or DEFAULT_REVISION}"
        return _shard_bench(snapshot, split, fingerprint, provenance)
    if options.revision is not None:
        raise ValueError(f"--revision selects a hub revision; it does not apply to {path}")
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return _manifest_bench(path, options, cache)
    if not path.is_dir():
        raise ValueError(f"ArtifactBench path not found: {path}")
    shard_files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if shard_files:
        digest, files = _shards_digest(path, shard_files)
        provenance = {
            "form": "local-shards",
            "path": str(path),
            "shards": files,
            "shards_sha256": digest,
        }
        return _shard_bench(path, split, f"sha256:{digest}", provenance)
    if (path / MANIFEST).is_file():
        return _manifest_bench(path / MANIFEST, options, cache)
    found = sorted(p.name for p in path.glob("*.json"))
    hint = f"; pass one of its JSON files directly: {', '.join(found[:5])}" if found else ""
    raise ValueError(f"{path} holds no *.parquet shards and no {MANIFEST}{hint}")


def _with_split(fingerprint: str, split: str | None) -> str:
    return fingerprint if split is None else f"{fingerprint};protocol_split={split}"


class _Taxonomy:
    """The subsets rows declare: catalog ones keep the catalog's label and hard flag; any other
    source is accepted with the label its first row gives, and reported as an extra subset."""

    def __init__(self) -> None:
        self.seen: dict[str, SubsetInfo] = {}
        self.extra: set[str] = set()

    def subset_of(self, source: str, label: str | None) -> SubsetInfo:
        if not isinstance(source, str) or not source:
            raise ValueError(f"empty or non-text source {source!r}")
        info = self.seen.get(source)
        if info is None:
            if source in catalog.AI_SUBSETS or source in catalog.REAL_SUBSETS:
                kind = "ai" if source in catalog.AI_SUBSETS else "real"
                info = SubsetInfo(source, kind, source in catalog.HARD_SUBSETS)
            elif label is None:
                raise ValueError(
                    f"source {source!r} is not in the ArtifactBench catalog and there is no "
                    "label column to say whether it is ai or real"
                )
            else:
                info = SubsetInfo(source, cast(Label, label))
                self.extra.add(source)
            self.seen[source] = info
        if label is not None and label != info.label:
            origin = "its first row" if source in self.extra else "the catalog"
            raise ValueError(
                f"label {label!r} contradicts subset {source!r} ({info.label}, from {origin})"
            )
        return info

    def present(self, tracks: Iterable[Track]) -> dict[str, SubsetInfo]:
        """The subsets of `tracks`: the catalog's in catalog order, then the extra ones sorted."""
        names = {t.subset for t in tracks}
        order = [*catalog.AI_SUBSETS, *catalog.REAL_SUBSETS, *sorted(self.extra)]
        return {name: self.seen[name] for name in order if name in names}


def _with_group(track: Track) -> Track:
    return replace(track, extra=(*track.extra, ("group", catalog.group_of(track.subset) or "")))


def _shard_bench(
    root: Path, split: str | None, fingerprint: str, provenance: dict[str, Any]
) -> Bench:
    taxonomy = _Taxonomy()
    tracks = read_shard_dir(root, BENCH_NAME, {}, subset_of=taxonomy.subset_of)
    read = len(tracks)
    if split is not None:
        if not any(k == "protocol_split" for t in tracks for k, _ in t.extra):
            raise ValueError(
                f"--protocol-split needs a v2 manifest or shards with a protocol_split column; "
                f"{root} has none"
            )
        tracks = [t for t in tracks if dict(t.extra).get("protocol_split") == split]
    tracks = [_with_group(t) for t in tracks]
    source = {
        **provenance,
        "license": LICENSE,
        "protocol_split": split,
        "rows_read": read,
        "rows_filtered": read - len(tracks),
        "rows_bound": len(tracks),
        "rows_unbound": 0,
        "unbound": {"count": 0, "first": []},
    }
    subsets = taxonomy.present(tracks)
    source["extra_subsets"] = [s for s in subsets if s in taxonomy.extra]
    return Bench(BENCH_NAME, _with_split(fingerprint, split), subsets, tracks, source)


def _shards_digest(root: Path, files: list[Path]) -> tuple[str, list[dict[str, Any]]]:
    """A cheap identity of a shard directory: each shard's relative name, size, and sha256 of
    its first and last MiB, hashed together.

    Hashing whole shards would cost a full read of the bench on every load (about 1.6 GB/s from
    the page cache here, far slower from a cold disk, for tens of GB), against milliseconds for
    this. A re-exported shard changes its size or its footer (row group offsets and statistics,
    in the last MiB); an edit of the same size in the middle of a shard goes unnoticed.
    """
    listing = hashlib.sha256()
    entries = []
    for file in files:
        size = file.stat().st_size
        edge = hashlib.sha256()
        with open(file, "rb") as fh:
            edge.update(fh.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                fh.seek(max(EDGE_BYTES, size - EDGE_BYTES))
                edge.update(fh.read())
        name = file.relative_to(root).as_posix()
        entries.append({"name": name, "size": size, "edge_sha256": edge.hexdigest()})
        listing.update(f"{name}\t{size}\t{edge.hexdigest()}\n".encode())
    return listing.hexdigest(), entries


# ---------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class _Row:
    """One validated manifest row, before it is bound to a file."""

    index: int
    track_id: str
    label: Label
    source: str
    generator: str
    origin: str
    path: str | None
    sha256: str | None
    fields: tuple[tuple[str, str], ...]


def _manifest_bench(path: Path, options: BenchOptions, cache: Path) -> Bench:
    data = path.read_bytes()
    form, rows, metadata = _parse_manifest(path, data)
    taxonomy = _Taxonomy()
    seen: dict[str, int] = {}
    parsed = [_parse_row(path.name, form, i, row, taxonomy, seen) for i, row in enumerate(rows)]
    split = options.protocol_split
    kept = [r for r in parsed if split is None or dict(r.fields).get("protocol_split") == split]
    binder = _Binder(_audio_roots(options), path, cache)
    tracks: list[Track] = []
    unbound: list[str] = []
    bound_by: dict[str, int] = {}
    for row in kept:
        file, how = binder.bind(row)
        extra = (*row.fields, ("group", catalog.group_of(row.source) or ""))
        common = (row.track_id, BENCH_NAME, row.source, row.label, row.generator, row.origin)
        if file is None:
            tracks.append(UnboundTrack(*common, extra=extra, reason=how))
            unbound.append(row.track_id)
        else:
            tracks.append(Track(*common, path=str(file), extra=extra))
            bound_by[how] = bound_by.get(how, 0) + 1
    manifest_sha = hashlib.sha256(data).hexdigest()
    source: dict[str, Any] = {
        "form": form,
        "path": str(path),
        "manifest_sha256": manifest_sha,
        "license": LICENSE,
        "protocol_split": split,
        "audio_roots": [str(r) for r in binder.roots],
        "rows_read": len(parsed),
        "rows_filtered": len(parsed) - len(kept),
        "rows_bound": len(tracks) - len(unbound),
        "rows_unbound": len(unbound),
        "bound_by": dict(sorted(bound_by.items())),
        "unbound": {"count": len(unbound), "first": unbound[:UNBOUND_LISTED]},
    }
    subsets = taxonomy.present(tracks)
    source["extra_subsets"] = [s for s in subsets if s in taxonomy.extra]
    if metadata:
        source["manifest_metadata"] = metadata
    fingerprint = _with_split(f"sha256:{manifest_sha}", split)
    return Bench(BENCH_NAME, fingerprint, subsets, tracks, source)


def _audio_roots(options: BenchOptions) -> tuple[Path, ...]:
    roots = tuple(Path(r).expanduser().resolve() for r in options.audio_roots)
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise ValueError(f"--audio-root folder not found: {', '.join(missing)}")
    return roots


def _parse_manifest(path: Path, data: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """The form (v1 or v2), the rows, and the scalar entries of a `metadata` block."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{path.name} is not a JSON manifest: {exc}") from exc
    expected = '{"bench": [...], "metadata": {...}} (v1) or {"tracks": [...]} (v2)'
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: expected a JSON object, {expected}")
    if "tracks" in doc and "bench" in doc:
        raise ValueError(f"{path.name}: has both 'tracks' (v2) and 'bench' (v1); expected one")
    key, form = ("tracks", "manifest-v2") if "tracks" in doc else ("bench", "manifest-v1")
    rows = doc.get(key)
    if not isinstance(rows, list):
        raise ValueError(f"{path.name}: no list under 'bench' or 'tracks'; expected {expected}")
    if not rows:
        raise ValueError(f"{path.name}: the manifest lists no tracks")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return form, rows, {}
    scalars = (str, int, float, bool, type(None))
    return form, rows, {k: v for k, v in metadata.items() if isinstance(v, scalars)}


def _text(value: Any) -> str | None:
    """A manifest value as stripped text; None for null or empty."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _parse_row(
    name: str, form: str, index: int, row: Any, taxonomy: _Taxonomy, seen: dict[str, int]
) -> _Row:
    values = {k: _text(v) for k, v in row.items()} if isinstance(row, dict) else {}
    track_id = values.get("track_id")

    def fail(reason: str) -> ValueError:
        who = f"track_id {track_id!r}" if track_id else "no track_id"
        return ValueError(f"{name} row {index} ({who}): {reason}")

    if not isinstance(row, dict):
        raise fail(f"expected an object, got {type(row).__name__}")
    required = V2_REQUIRED if form == "manifest-v2" else V1_REQUIRED
    missing = [f for f in required if not values.get(f)]
    if form == "manifest-v2" and not (values.get("path") or values.get("audio_sha256")):
        missing.append("path or audio_sha256")
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    assert track_id is not None
    if track_id in seen:
        raise fail(f"duplicate track_id (first at row {seen[track_id]})")
    seen[track_id] = index
    label = cast(str, values["label"]).lower()
    if label not in LABELS:
        raise fail(f"unknown label {values['label']!r}; use ai or real")
    origin = (values.get("bench_origin") or ORIGINS[-1]).lower()
    if origin not in ORIGINS:
        raise fail(f"unknown bench_origin {values['bench_origin']!r}; use train or test")
    fields = {f: values[f] for f in V2_FIELDS if values.get(f)}
    if "protocol_split" in fields:
        fields["protocol_split"] = fields["protocol_split"].lower()
        if fields["protocol_split"] not in PROTOCOL_SPLITS:
            raise fail(
                f"unknown protocol_split {values['protocol_split']!r}; "
                f"use {', '.join(PROTOCOL_SPLITS)}"
            )
    sha = fields.get("audio_sha256")
    if sha is not None:
        sha = fields["audio_sha256"] = sha.lower()
        if not _SHA256.fullmatch(sha):
            raise fail(f"audio_sha256 {values['audio_sha256']!r} is not a sha256 hex digest")
    file = values.get("path")
    if file is not None and not os.path.isabs(file) and _escapes(file):
        raise fail(f"path {file!r} escapes the audio root")
    source = cast(str, values["source"])
    try:
        taxonomy.subset_of(source, label)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    return _Row(
        index=index,
        track_id=track_id,
        label=cast(Label, label),
        source=source,
        generator=values.get("generator") or source,
        origin=origin,
        path=file,
        sha256=sha,
        fields=tuple(fields.items()),
    )


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")


# ---------------------------------------------------------------------------------------------
# Binding manifest rows to local files


class _Binder:
    """Finds each row's audio here. Walks and hashes the audio roots only when a row needs it."""

    def __init__(self, roots: tuple[Path, ...], manifest: Path, cache: Path) -> None:
        self.roots = roots
        self.manifest_dir = manifest.parent
        self.cache = cache
        self._files: list[Path] | None = None
        self._dirs: dict[str, list[Path]] = {}
        self._by_sha: dict[str, Path] | None = None
        self._sha_of: dict[Path, str] = {}

    def bind(self, row: _Row) -> tuple[Path | None, str]:
        """(the file, how it was bound) or (None, why it could not be)."""
        if row.sha256 is not None and self.roots:
            found = self._sha_index().get(row.sha256)
            if found is not None:
                return found, "sha256"
            return self._verified_path(row, row.sha256)
        if row.path is None:
            return None, f"audio_sha256 {row.sha256} given but no --audio-root to find it under"
        return self._by_path(row.path, row.source)

    def _verified_path(self, row: _Row, sha: str) -> tuple[Path | None, str]:
        """The row's path when it holds the expected bytes (e.g. an absolute path outside the
        roots that exists here); never a file whose content differs."""
        reason = f"no file under --audio-root has sha256 {sha}"
        file = self._by_path(row.path, row.source)[0] if row.path is not None else None
        if file is None:
            return None, reason
        if (self._sha_of.get(file) or _sha256_file(file)) == sha:
            return file, "path"
        return None, f"{reason} ({file} exists but its content differs)"

    def _by_path(self, text: str, source: str) -> tuple[Path | None, str]:
        if os.path.isabs(text):
            original = Path(os.path.normpath(text))
            if original.is_file():
                return original, "path"
            for candidate in self._rebind(original, source):
                if candidate.is_file():
                    return candidate, "rebound"
            if not self.roots:
                return None, f"{text} does not exist here; pass --audio-root DIR to re-bind it"
            return None, f"{text} does not exist here nor under --audio-root by its last folders"
        relative = posixpath.normpath(text)
        bases = self.roots or (self.manifest_dir,)
        for base in bases:
            candidate = base / relative
            if candidate.is_file():
                return candidate, "path"
        return None, f"{relative} not found under {', '.join(str(b) for b in bases)}"

    def _rebind(self, original: Path, source: str) -> Iterable[Path]:
        """`root/<folder>/<file>` from the path's last two components, then `<file>` inside any
        folder named like the source: a root itself or one below it."""
        if len(original.parts) > 2:
            for root in self.roots:
                yield root / original.parent.name / original.name
        if self.roots:
            self._walk()
            for folder in self._dirs.get(source.lower(), []):
                yield folder / original.name

    def _walk(self) -> list[Path]:
        """Every audio file under the roots (hidden entries skipped), and folders by name."""
        if self._files is None:
            files: list[Path] = []
            visited: set[str] = set()
            for root in self.roots:
                self._dirs.setdefault(root.name.lower(), []).append(root)
                for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                    real = os.path.realpath(dirpath)
                    if real in visited:
                        dirnames.clear()
                        continue
                    visited.add(real)
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    here = Path(dirpath)
                    for d in dirnames:
                        self._dirs.setdefault(d.lower(), []).append(here / d)
                    files.extend(
                        here / f
                        for f in sorted(filenames)
                        if not f.startswith(".") and f.lower().endswith(AUDIO_EXTENSIONS)
                    )
            self._files = files
        return self._files

    def _sha_index(self) -> dict[str, Path]:
        if self._by_sha is None:
            self._by_sha = {}
            index_file = self.cache / "audio-sha256.json"
            self._sha_of = _hash_files(self._walk(), self.roots, index_file)
            for file, sha in self._sha_of.items():
                self._by_sha.setdefault(sha, file)
        return self._by_sha


def _hash_files(files: list[Path], roots: tuple[Path, ...], index_file: Path) -> dict[Path, str]:
    """sha256 of each file, reusing the cached digest of any file whose (size, mtime) is
    unchanged; unreadable files are left out (they cannot be bound anyway). Entries under the
    roots for files that are gone are dropped, so the index does not grow without bound."""
    try:
        cached = json.loads(index_file.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    result: dict[Path, str] = {}
    todo: list[tuple[Path, list[int]]] = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        entry = cached.get(str(file))
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
            result[file] = entry[2]
        else:
            todo.append((file, stamp))
    with ThreadPoolExecutor(max_workers=4) as pool:
        digests = list(pool.map(lambda item: _sha256_file(item[0]), todo))
    for (file, stamp), digest in zip(todo, digests, strict=True):
        if digest is not None:
            result[file] = digest
            cached[str(file)] = [*stamp, digest]
    prefixes = tuple(os.path.join(str(root), "") for root in roots)
    listed = {str(file) for file in result}
    gone = [k for k in cached if k.startswith(prefixes) and k not in listed]
    for key in gone:
        del cached[key]
    if todo or gone:
        # The index only saves time: a read-only cache costs a rehash next time, not a failure.
        with contextlib.suppress(OSError):
            _write_json(index_file, cached)
    return result


def _sha256_file(file: Path) -> str | None:
    try:
        return sha256_file(file)
    except OSError:
        return None
