"""Helpers any stage may use; this module imports nothing of the package."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (weights and shards run to gigabytes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` then rename over `path`: whoever reads `path`, even while an interrupted or
    concurrent writer runs, finds the old file or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def default_workers() -> int:
    """Decode processes when none are asked for: every core but one, which the model uses."""
    return max(1, (os.cpu_count() or 2) - 1)
