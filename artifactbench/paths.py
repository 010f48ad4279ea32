"""Where the harness keeps generated benches, fitted detectors and fetched assets."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """`ARTIFACTBENCH_CACHE` when set, else the user's cache directory."""
    root = os.environ.get("ARTIFACTBENCH_CACHE")
    path = Path(root) if root else Path(user_cache_dir("artifactbench"))
    path.mkdir(parents=True, exist_ok=True)
    return path
