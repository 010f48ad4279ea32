"""Canonical (byte-stable) JSON and atomic writes of report files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.util import write_atomic

DECIMALS = 6
P_DIGITS = 6
P_VALUE_KEYS = frozenset({"p", "p_chi2"})


def _significant(value: float, digits: int = P_DIGITS) -> float:
    """`value` rounded to `digits` significant figures (a tiny nonzero value stays nonzero)."""
    return float(f"{value:.{digits}g}") + 0.0


def canonical(obj: Any, decimals: int | None = DECIMALS) -> Any:
    """Plain JSON types with floats rounded to `decimals` (None: unrounded) and non-finite
    floats as None.

    P-values (keys in ``P_VALUE_KEYS``) keep ``P_DIGITS`` significant figures instead, because
    a fixed number of decimals would write a p of 1e-30 as 0.0.
    """
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            item = canonical(value, decimals)
            if decimals is not None and str(key) in P_VALUE_KEYS and isinstance(item, float):
                item = _significant(float(value))
            out[str(key)] = item
        return out
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
    """Write UTF-8 with LF line ends on every platform, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)

    return write_atomic(path, write)
