"""Binding manifest rows to local audio: by audio_sha256 under the `--audio-root` folders, else
by path (relative to the roots or the manifest, or an absolute path re-bound by its last folders).

The roots are walked and hashed only when a row needs it; digests are cached by (size, mtime).
A row that binds to nothing becomes an `UnboundTrack`, whose read fails at the `resolve` stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from artifactbench.benches.artifactbench.common import write_json
from artifactbench.benches.artifactbench.manifest import ManifestRow
from artifactbench.benches.base import ResolveError, Track
from artifactbench.util import sha256_file

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff")


@dataclass(frozen=True)
class UnboundTrack(Track):
    """A manifest row with no local audio: kept in the bench so its read fails as `resolve`."""

    reason: str = "no local audio file"

    def read_bytes(self) -> bytes:
        raise ResolveError(self.reason)


class Binder:
    """Finds each row's audio here. Walks and hashes the audio roots only when a row needs it."""

    def __init__(self, roots: tuple[Path, ...], manifest: Path, cache: Path) -> None:
        self.roots = roots
        self.manifest_dir = manifest.parent
        self.cache = cache
        self._files: list[Path] | None = None
        self._dirs: dict[str, list[Path]] = {}
        self._by_sha: dict[str, Path] | None = None
        self._sha_of: dict[Path, str] = {}

    def bind(self, row: ManifestRow) -> tuple[Path | None, str]:
        """(the file, how it was bound) or (None, why it could not be)."""
        if row.sha256 is not None and self.roots:
            found = self._sha_index().get(row.sha256)
            if found is not None:
                return found, "sha256"
            return self._verified_path(row, row.sha256)
        if row.path is None:
            return None, f"audio_sha256 {row.sha256} given but no --audio-root to find it under"
        return self._by_path(row.path, row.source)

    def _verified_path(self, row: ManifestRow, sha: str) -> tuple[Path | None, str]:
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
            write_json(index_file, cached)
    return result


def _sha256_file(file: Path) -> str | None:
    try:
        return sha256_file(file)
    except OSError:
        return None
