"""Reading the predictions contract and writing canonical (byte-stable) JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artifactbench.metrics import check_predictions

META_KEY = b"artifactbench"
DECIMALS = 6


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The predictions table and its ``artifactbench`` schema metadata ({} when absent).

    Dictionary-encoded (categorical) columns come back as plain strings, so grouping never
    invents empty groups for unused categories.
    """
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    frame = table.to_pandas()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object)
    try:
        check_predictions(frame)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return frame, meta


def canonical(obj: Any, decimals: int | None = DECIMALS) -> Any:
    """Plain JSON types with floats rounded to `decimals` (None: unrounded) and non-finite
    floats as None."""
    if isinstance(obj, dict):
        return {str(k): canonical(v, decimals) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [canonical(v, decimals) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        if not math.isfinite(value):
            return None
        # Adding 0.0 turns -0.0 into 0.0, which would otherwise print as "-0.0".
        return value if decimals is None else round(value, decimals) + 0.0
    return obj


def json_text(obj: Any) -> str:
    """Deterministic JSON: canonical values, sorted keys, two-space indent, final newline."""
    return json.dumps(canonical(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 with LF line ends on every platform."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path
