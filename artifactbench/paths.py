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


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`), read at call time: huggingface_hub reads the
    variables once, when it is first imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")
