"""Reading Hugging Face style parquet shards: metadata only, exact row locations, loud refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifactbench.benches import shards
from artifactbench.benches.base import SubsetInfo

SUBSETS = {
    "real_a": SubsetInfo("real_a", "real"),
    "gen_b": SubsetInfo("gen_b", "ai", hard=True),
}
AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _row(track_id: str, source: str = "real_a", label: str = "real", **more: Any) -> dict:
    return {
        "track_id": track_id,
        "audio": {"bytes": f"blob-{track_id}".encode(), "path": f"{track_id}.wav"},
        "source": source,
        "label": label,
        **more,
    }


def _write(path: Path, rows: list[dict], row_group: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {k: pa.array([r[k] for r in rows], type=AUDIO if k == "audio" else None) for k in rows[0]}
    )
    pq.write_table(table, path, row_group_size=row_group)
    return path


def test_reads_every_row_with_its_location_and_extras(tmp_path: Path) -> None:
    rows_a = [
        _row("t0", generator="g0", bench_origin="train", artist="x", duration=1.5),
        _row("t1", generator="g0", bench_origin="test", artist=None, duration=2.0),
        _row("t2", "gen_b", "ai", generator="g1", bench_origin="test", artist="y", duration=3.0),
    ]
    rows_b = [
        _row("t3", "gen_b", "ai", generator="g1", bench_origin="train", artist="z", duration=4.0)
    ]
    _write(tmp_path / "data" / "test-00000-of-00002.parquet", rows_a)
    _write(tmp_path / "data" / "test-00001-of-00002.parquet", rows_b)

    tracks = shards.read_shard_dir(tmp_path, "mini", SUBSETS)
    assert [t.track_id for t in tracks] == ["t0", "t1", "t2", "t3"]
    t2 = tracks[2]
    assert (t2.bench, t2.subset, t2.label, t2.generator, t2.bench_origin) == (
        "mini",
        "gen_b",
        "ai",
        "g1",
        "test",
    )
    assert (t2.shard.row_group, t2.shard.row, t2.shard.column) == (1, 0, "audio")
    assert t2.read_bytes() == b"blob-t2"
    assert tracks[3].read_bytes() == b"blob-t3"
    assert dict(t2.extra) == {"artist": "y", "duration": "3.0"}
    assert dict(tracks[1].extra) == {"duration": "2.0"}  # nulls are left out


def test_optional_columns_fall_back(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", [_row("t0")])
    (track,) = shards.read_shard_dir(tmp_path, "mini", SUBSETS)
    assert track.generator == "real_a"
    assert track.bench_origin == "test"


def test_never_reads_the_audio_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "a.parquet", [_row("t0"), _row("t1")])
    asked: list[list[str] | None] = []
    original = pq.ParquetFile.read

    def spy(self: pq.ParquetFile, columns: list[str] | None = None, **kw: Any) -> pa.Table:
        asked.append(columns)
        return original(self, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read", spy)
    shards.read_shard_dir(tmp_path, "mini", SUBSETS)
    assert asked and all(cols is not None and "audio" not in cols for cols in asked)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_row("t0"), _row("t1", label="fake")], r"row 1 .*unknown label 'fake'"),
        ([_row("t0"), _row("t1", source="nope")], r"row 1 .*source 'nope' is not a subset"),
        ([_row("t0"), _row("t1", label="ai")], r"row 1 .*contradicts subset 'real_a'"),
        ([_row("t0"), _row("")], r"row 1 .*empty track_id"),
        ([_row("t0"), _row("t1"), _row("t0")], r"row 2 .*duplicate track_id 't0'"),
    ],
)
def test_refuses_bad_rows_naming_shard_and_row(
    tmp_path: Path, rows: list[dict], message: str
) -> None:
    path = _write(tmp_path / "bad.parquet", rows)
    with pytest.raises(ValueError, match=message) as err:
        shards.read_shard_dir(tmp_path, "mini", SUBSETS)
    assert str(path) in str(err.value)


def test_refuses_duplicates_across_shards(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", [_row("t0")])
    second = _write(tmp_path / "b.parquet", [_row("t1"), _row("t0")])
    with pytest.raises(ValueError, match=r"row 1 .*duplicate track_id 't0', first at .*a.parquet"):
        shards.read_shard_dir(tmp_path, "mini", SUBSETS)
    assert second.exists()


@pytest.mark.parametrize("column", ["track_id", "source", "label", "audio"])
def test_refuses_missing_required_column(tmp_path: Path, column: str) -> None:
    row = _row("t0")
    del row[column]
    _write(tmp_path / "a.parquet", [row])
    with pytest.raises(ValueError, match=rf"a\.parquet: missing required column\(s\) {column}"):
        shards.read_shard_dir(tmp_path, "mini", SUBSETS)


def test_refuses_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no parquet shards"):
        shards.read_shard_dir(tmp_path, "mini", SUBSETS)
