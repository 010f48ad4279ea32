"""ArtifactBench through `datasets` streaming: from a Hub on 127.0.0.1 at a pinned commit and
from local parquet shards, the same tracks, bytes and fingerprint; a run that streams as it
scores and resumes from the score store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.benches.artifactbench.stream import stream_local
from artifactbench.benches.streamed import Delivery
from tests.conftest import python_cli
from tests.hub_server import LocalHub
from tests.test_artifactbench_bench import _clip, _shard_row, _write_shard

REPO = "intrect/artifactbench"
SOURCES = ("aime_musicgen_small", "real_fma", "aime_riffusion")


def shards(root: Path) -> dict[str, bytes]:
    """Two shards of real FLAC clips, two rows a row group; row 3 of the first has no audio."""
    rows = [
        _shard_row(f"t{i}", SOURCES[i % 3], _clip(i), "real" if i % 3 == 1 else "ai")
        for i in range(7)
    ]
    rows[3]["audio"] = {"bytes": None, "path": "t3.flac"}
    _write_shard(root / "data" / "test-00000-of-00002.parquet", rows[:5])
    _write_shard(root / "data" / "test-00001-of-00002.parquet", rows[5:])
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.parquet")}
    return files | {"README.md": b"---\nlicense: cc-by-nc-4.0\n---\n# ArtifactBench\n"}


DESCRIBE = """
import hashlib, json, sys
from artifactbench.benches import open_bench, BenchOptions
from artifactbench.benches.streamed import Delivery
bench = open_bench(sys.argv[1], BenchOptions(revision=sys.argv[2]))
skip = int(sys.argv[3])
rows = []
with Delivery() as deliver:
    for i, t in deliver(list(enumerate(bench.tracks))[skip:]):
        try:
            digest = hashlib.sha256(t.read_bytes()).hexdigest()
        except Exception as exc:
            digest = f"{type(exc).__name__}: {exc}"
        rows.append([t.track_id, t.subset, t.label, t.locator(), digest])
print(json.dumps({"fingerprint": bench.fingerprint, "source": bench.source, "rows": rows}))
"""


def describe_hub(revision: str, skip: int = 0) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE, "artifactbench:hub", revision, str(skip)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def describe_local(root: Path) -> dict:
    bench = stream_local(root)
    rows = []
    with Delivery() as deliver:
        delivered = deliver(list(enumerate(bench.tracks)))
    for _, t in delivered:
        try:
            digest = hashlib.sha256(t.read_bytes()).hexdigest()
        except Exception as exc:  # noqa: BLE001 - the failure is what is compared
            digest = f"{type(exc).__name__}: {exc}"
        rows.append([t.track_id, t.subset, t.label, t.locator(), digest])
    return {"fingerprint": bench.fingerprint, "source": bench.source, "rows": rows}


def test_hub_stream_and_local_shards_give_the_same_tracks_bytes_and_fingerprint(
    hub: LocalHub, tmp_path: Path
) -> None:
    files = shards(tmp_path / "copy")
    commit = hub.commit("dataset", REPO, files, branch="v1")
    hub.commit("dataset", REPO, {"README.md": b"moved on"})  # main differs from the pin
    local = describe_local(tmp_path / "copy")
    streamed = describe_hub("v1")

    assert streamed["fingerprint"] == local["fingerprint"]
    # Rows match except in the failure message, which names where the shard was read.
    assert [r[:4] for r in streamed["rows"]] == [r[:4] for r in local["rows"]]
    assert [r[4] for r in streamed["rows"] if r[0] != "t3"] == [
        r[4] for r in local["rows"] if r[0] != "t3"
    ]
    assert [r[0] for r in local["rows"]] == [f"t{i}" for i in range(7)]
    expected = {f"t{i}": hashlib.sha256(_clip(i)).hexdigest() for i in range(7) if i != 3}
    assert {r[0]: r[4] for r in local["rows"] if r[0] != "t3"} == expected
    (broken,) = [r for r in local["rows"] if r[0] == "t3"]
    assert broken[4].startswith("ResolveError: audio in") and "row 3 is empty" in broken[4]
    source = streamed["source"]
    assert source["form"] == "hf-stream" and source["revision_requested"] == "v1"
    assert source["revision_resolved"] == commit
    assert [s["sha256"] for s in source["shards"]] == [
        hashlib.sha256(files[name]).hexdigest() for name in sorted(files) if name.endswith("t")
    ]
    # Every read named the pinned commit, never the branch.
    reads = [r.path for r in hub.log if "/resolve/" in r.path or "/tree/" in r.path]
    assert reads and all(commit in path for path in reads), reads


def test_a_stream_never_opens_a_shard_whose_tracks_are_not_asked_for(
    hub: LocalHub, tmp_path: Path
) -> None:
    files = shards(tmp_path / "copy")
    hub.commit("dataset", REPO, files)
    first = hashlib.sha256(files["data/test-00000-of-00002.parquet"]).hexdigest()
    whole = describe_hub("main")
    hub.log.clear()
    rest = describe_hub("main", skip=5)  # the first shard's five tracks answered already
    assert rest["rows"] == whole["rows"][5:] and len(whole["rows"]) == 7
    audio_reads = [r for r in hub.log if r.method == "GET" and first in r.path]
    listing_reads = [r for r in hub.log if r.method == "GET" and "/blobs/" in r.path]
    # The first shard is read for the track list (metadata), not streamed again for audio.
    assert len(audio_reads) < len([r for r in listing_reads if first not in r.path])


def test_run_streams_the_hub_bench_and_resumes_from_the_store(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.commit("dataset", REPO, shards(tmp_path / "copy"))
    calls = tmp_path / "calls.log"
    args = ["run", "--bench", "artifactbench:hub", "--models", "counting", "--split", "all",
            "--out", str(tmp_path / "runs")]  # fmt: skip
    env = {**os.environ, "COUNTING_LOG": str(calls)}
    done = subprocess.run([*python_cli(), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].removeprefix("run directory: ")
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert len(predictions) == 7
    by_id = predictions.set_index("track_id")
    assert by_id.loc["t3", "status"] == "failed" and by_id.loc["t3", "stage"] == "resolve"
    assert (by_id.drop("t3")["status"] == "scored").all()
    scored = calls.read_text().count("\n")
    assert scored >= 1

    again = subprocess.run([*python_cli(), *args], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert calls.read_text().count("\n") == scored  # nothing scored twice
    rerun_dir = tmp_path / again.stdout.strip().splitlines()[-1].removeprefix("run directory: ")
    rerun = pd.read_parquet(rerun_dir / "predictions.parquet")
    pd.testing.assert_series_equal(rerun["prob"], predictions["prob"])


def test_offline_refuses_the_hub_stream_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*python_cli(), "run", "--bench", "artifactbench:hub", "--models", "counting"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert "HF_HUB_OFFLINE" in line and "artifactbench fetch bench artifactbench" in line


@pytest.mark.slow
def test_local_shards_streamed_on_ray_equal_the_local_engine(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from artifactbench.detectors.registry import resolve_models
    from artifactbench.runner import RunOptions, run

    shards(tmp_path / "copy")
    bench = stream_local(tmp_path / "copy")
    cards = resolve_models("counting")
    columns = ["track_id", "prob", "status", "stage"]
    results = {}
    for engine in ("local", "ray"):
        options = RunOptions(out=tmp_path / engine, workers=1, batch_size=2, engine=engine,
                             split="all")  # fmt: skip
        done = run(bench, cards, options)
        results[engine] = pd.read_parquet(done.run_dir / "predictions.parquet")[columns]
    pd.testing.assert_frame_equal(results["local"], results["ray"], check_exact=True)
    stages = dict(zip(results["ray"].track_id, results["ray"].stage, strict=True))
    assert stages["t3"] == "resolve" and (results["ray"].status != "failed").sum() == 6


def test_an_unreachable_hub_stops_the_stream_in_one_line(tmp_path: Path) -> None:
    from tests.test_fetch_pins import closed_port

    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [*python_cli(), "run", "--bench", "artifactbench:hub", "--models", "counting"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"},
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot stream intrect/artifactbench@main: ConnectError")
    assert "hub must be reachable" in line and "artifactbench fetch bench artifactbench" in line


def test_a_path_after_artifactbench_is_a_path_and_hub_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from artifactbench.benches import UnknownBench, open_bench
    from artifactbench.errors import FetchError

    with pytest.raises(UnknownBench, match="ArtifactBench path not found"):
        open_bench(f"artifactbench:{tmp_path / 'nowhere'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE is set"):
        open_bench("artifactbench:hub")
