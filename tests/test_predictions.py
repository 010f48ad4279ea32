"""The results contract: what predictions.parquet holds, and what a run writes into it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.benches.base import Bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import (
    COLUMNS,
    META,
    MODEL_META,
    SCHEMA_VERSION,
    PredictionsError,
    missing_meta,
    read_predictions,
    validate_predictions,
    write_predictions,
)
from artifactbench.runner import RunOptions, run


def _meta() -> dict[str, object]:
    return {
        "bench": "b", "bench_fingerprint": "f" * 64, "split": "all", "threshold": 0.5,
        "seed": 0, "decode_protocol": "p", "variants": ["original"],
        "variant_protocols": {"original": "p"}, "subsets": {"s": "ai"},
        "models": {"m": {"params": "1", "paper_name": "M", "weights_sha256": "w",
                         "protocol_hash": "h"}},
        "written_utc": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip


def _row(track: str, prob: float | None, status: str = "scored") -> dict[str, object]:
    return {
        "model": "m", "track_id": track, "bench": "b", "subset": "s", "label": "ai",
        "generator": "g", "bench_origin": "test", "prob": prob, "status": status,
        "stage": None if status == "scored" else "decode", "error": None, "seconds": 0.1,
        "note": None, "variant": "original",
    }  # fmt: skip


def test_write_then_read_gives_the_rows_and_the_metadata_with_its_schema_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "predictions.parquet"
    rows = [_row("t1", 0.9), _row("t2", None, "failed")]
    write_predictions(rows, _meta(), path, extras=["fake_type"])
    frame, meta = read_predictions(path)
    assert list(frame.columns) == [*COLUMNS, "fake_type"]
    assert frame["prob"].iloc[0] == 0.9 and pd.isna(frame["prob"].iloc[1])
    assert meta == {**_meta(), "schema_version": SCHEMA_VERSION}
    assert missing_meta(meta) == []


def test_metadata_without_a_contract_field_is_not_written(tmp_path: Path) -> None:
    meta = _meta()
    del meta["bench_fingerprint"]
    del meta["models"]["m"]["weights_sha256"]  # type: ignore[index]
    with pytest.raises(ValueError, match=r"bench_fingerprint.*models\.m\.weights_sha256"):
        write_predictions([_row("t1", 0.5)], meta, tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "maybe"}, "status must be"),
        ({"label": "fake"}, "labels must be"),
        ({"prob": float("nan")}, "non-finite prob"),
        ({"status": "failed", "stage": "elsewhere"}, "unknown failure stages"),
        ({"model": " "}, "no model"),
    ],
)
def test_a_row_that_breaks_the_contract_is_refused_naming_the_file(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "predictions.parquet"
    write_predictions([_row("t1", 0.5), {**_row("t2", 0.5), **change}], _meta(), path)
    with pytest.raises(PredictionsError, match=message) as info:
        read_predictions(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_duplicated_row_is_refused() -> None:
    frame = pd.DataFrame([_row("t1", 0.5), _row("t1", 0.6)])
    with pytest.raises(ValueError, match="duplicate"):
        validate_predictions(frame)


def test_a_run_writes_every_contract_field_agreeing_with_run_json(
    file_bench: Bench, tmp_path: Path
) -> None:
    options = RunOptions(out=tmp_path / "runs", workers=0, split="all")
    result = run(file_bench, resolve_models("counting"), options)
    _, meta = read_predictions(result.run_dir / "predictions.parquet")
    assert set(META) <= set(meta) and missing_meta(meta) == []
    record = json.loads((result.run_dir / "run.json").read_text())
    assert meta["bench_fingerprint"] == record["bench"]["fingerprint"]
    assert meta["decode_protocol"] == record["decode_protocol"]
    assert meta["variant_protocols"] == {v["name"]: v["protocol"] for v in record["variants"]}
    detector = record["detectors"]["counting"]
    facts = meta["models"]["counting"]
    assert set(MODEL_META) <= set(facts)
    assert facts["weights_sha256"] == detector["weights_sha256"]
    assert facts["protocol_hash"] == detector["protocol_hash"]
