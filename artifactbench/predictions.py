"""The results contract: `predictions.parquet`, one row per (model, variant, track).

Everything a reader may rely on is here: the columns, the statuses and failure stages, and the
metadata in the parquet schema (bench and its fingerprint, split, threshold, seed, decode
protocol, the variants with their protocols, per model its card facts, weights sha256 and
protocol hash, when the file was written, and the schema version). The runner writes it through
`write_predictions`; reports and the leaderboard read it through `read_predictions` and need
nothing else, not even run.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from artifactbench.util import write_atomic

SCHEMA_VERSION = 2
COLUMNS: tuple[str, ...] = (
    "model", "track_id", "bench", "subset", "label", "generator", "bench_origin",
    "prob", "status", "stage", "error", "seconds", "note", "variant",
)  # fmt: skip
FLOAT_COLUMNS = frozenset({"prob", "seconds"})
STATUSES: tuple[str, ...] = ("scored", "failed")
# Where a failed row failed, in pipeline order.
STAGES: tuple[str, ...] = ("resolve", "decode", "transform", "encode", "inference")
# A track is (bench, track_id); a row is a track for one model and one variant.
KEY: list[str] = ["bench", "track_id"]
# The `variant` of rows scored on the decoded audio itself, with no transform chain.
ORIGINAL = "original"
META_KEY = b"artifactbench"
# Metadata every file of this schema version carries; a model entry carries MODEL_META.
META = (
    "schema_version", "bench", "bench_fingerprint", "split", "threshold", "seed",
    "decode_protocol", "variants", "variant_protocols", "subsets", "models", "written_utc",
)  # fmt: skip
MODEL_META = ("params", "paper_name", "weights_sha256", "protocol_hash")
LABELS = ("ai", "real")


class PredictionsError(ValueError):
    """A predictions table that breaks the contract, or holds nothing to report."""


def validate_predictions(preds: pd.DataFrame) -> None:
    """Reject a predictions table that breaks the contract, before any number is computed."""
    needed = {"model", "track_id", "bench", "subset", "label", "prob", "status", "stage"}
    missing = sorted(needed - set(preds.columns))
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    models = preds["model"]
    if (models.isna() | (models.astype(str).str.strip() == "")).any():
        raise ValueError("a row has no model")
    bad_status = sorted(set(preds["status"].astype(str)) - set(STATUSES))
    if bad_status:
        raise ValueError(f"status must be 'scored' or 'failed', got {bad_status}")
    bad_labels = sorted(set(preds["label"].astype(str)) - set(LABELS))
    if bad_labels:
        raise ValueError(f"labels must be 'ai' or 'real', got {bad_labels}")
    scored = preds["status"] == "scored"
    prob = pd.to_numeric(preds["prob"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(prob[scored.to_numpy()])):
        raise ValueError("a scored row has a missing or non-finite prob")
    stages = set(preds.loc[~scored, "stage"].dropna()) - set(STAGES)
    if stages:
        raise ValueError(f"unknown failure stages {sorted(stages)}")
    key = ["model", *KEY] + (["variant"] if "variant" in preds.columns else [])
    dup = preds.duplicated(key)
    if dup.any():
        first = preds.loc[dup, key].iloc[0].tolist()
        raise ValueError(f"duplicate ({', '.join(key)}) row: {first}")


def missing_meta(meta: dict[str, Any]) -> list[str]:
    """The contract's metadata fields `meta` lacks (model fields as `models.ID.FIELD`)."""
    missing = [name for name in META if name not in meta]
    for model, facts in (meta.get("models") or {}).items():
        missing += [f"models.{model}.{name}" for name in MODEL_META if name not in facts]
    return missing


def write_predictions(
    rows: list[dict[str, Any]], meta: dict[str, Any], path: Path, extras: Iterable[str] = ()
) -> None:
    """Write the contract file atomically; `meta` must hold every field of META but the
    schema version, which is added here. `extras` are bench-specific string columns."""
    meta = {**meta, "schema_version": SCHEMA_VERSION}
    missing = missing_meta(meta)
    if missing:
        raise ValueError(f"predictions metadata lacks {missing}")
    fields = [(name, pa.float64() if name in FLOAT_COLUMNS else pa.string()) for name in COLUMNS]
    fields += [(name, pa.string()) for name in extras]
    schema = pa.schema(fields, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    table = pa.Table.from_pylist(rows, schema=schema)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The predictions table and its metadata ({} when absent).

    A table that breaks the contract (`validate_predictions`) raises PredictionsError, one
    line naming the file. Dictionary-encoded (categorical) columns come back as plain strings,
    so grouping never invents empty groups for unused categories.
    """
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    frame = table.to_pandas()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object)
    try:
        validate_predictions(frame)
    except ValueError as exc:
        raise PredictionsError(" ".join(f"{path}: {exc}".split())) from exc
    return frame, meta
