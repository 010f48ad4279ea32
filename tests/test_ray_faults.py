"""The Ray engine under faults: a worker node lost in the middle of a run, a driver killed.

Both start real Ray processes on the loopback interface (no network): a cluster of several
nodes on this machine (`ray.cluster_utils.Cluster`), or a run in a child process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from artifactbench.detectors.registry import resolve_models
from artifactbench.runner import RayOptions, RunOptions, run
from tests.conftest import make_file_bench

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:
    if os.environ.get("CI"):  # the README's install brings the `ray` extra: CI must run these
        raise
    pytest.skip("the Ray engine's tests need the `ray` extra", allow_module_level=True)

DECIDED = ["model", "variant", "track_id", "subset", "label", "prob", "status", "stage", "error"]
# Node loss noticed within about a second rather than Ray's default of fifteen.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 200,
    "health_check_failure_threshold": 3,
}


def _predictions(run_dir: Path) -> pd.DataFrame:
    preds = pd.read_parquet(run_dir / "predictions.parquet")[DECIDED]
    return preds.sort_values(["model", "variant", "track_id"]).reset_index(drop=True)


def _options(out: Path, **kw: Any) -> RunOptions:
    return RunOptions(**{"out": out, "workers": 1, "batch_size": 1, "split": "all", **kw})


def _raylet_pid(node: Any) -> int:
    return node.all_processes["raylet"][0].process.pid


@pytest.mark.slow
def test_a_worker_node_killed_mid_run_costs_no_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three nodes (a head that runs nothing, two workers); the raylet of the worker that has
    scored most is SIGKILLed a third of the way through. The run completes on its own, every
    track answered exactly once, its predictions those of the local engine."""
    bench = make_file_bench(tmp_path / "audio", n_per_class=14)
    cards = resolve_models("counting")
    local = run(bench, cards, _options(tmp_path / "local"))
    calls_on = tmp_path / "nodes.log"
    monkeypatch.setenv("COUNTING_NODES", str(calls_on))
    monkeypatch.setenv("COUNTING_SLEEP", "0.25")  # a run long enough to lose a node in
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "_system_config": FAST_HEALTH_CHECKS},
    )
    workers = [cluster.add_node(num_cpus=3) for _ in range(2)]
    cluster.wait_for_nodes()
    killed: list[str] = []

    def kill_a_busy_node(label: str, total: int) -> Callable[[int], None]:
        answered = 0

        def advance(n: int) -> None:
            nonlocal answered
            answered += n
            if killed or answered < total // 3:
                return
            busiest = Counter(calls_on.read_text().split()).most_common(1)[0][0]
            victim = next(w for w in workers if w.node_id == busiest)
            os.kill(_raylet_pid(victim), signal.SIGKILL)
            killed.append(busiest)

        return advance

    try:
        options = _options(tmp_path / "ray", engine="ray", ray=RayOptions(address=cluster.address))
        done = run(bench, cards, options, kill_a_busy_node)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "the run ended before a node could be killed"
    pd.testing.assert_frame_equal(
        _predictions(done.run_dir), _predictions(local.run_dir), check_exact=True
    )
    record = json.loads((done.run_dir / "run.json").read_text())
    # One answer per track with audio (the missing file has none), none written twice.
    assert record["answers_written"] == len(bench.tracks) - 1
    per_node = record["detectors"]["counting"]["provenance"]["ray_pool"]["answers_per_node"]
    assert killed[0] in per_node and len(per_node) == 2  # the lost node answered, then the other
    assert sum(per_node.values()) == len(bench.tracks) - 2  # all but the undecodable file's


def _committed(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


@pytest.mark.slow
def test_a_killed_driver_resumes_from_the_store_with_no_answer_repeated(tmp_path: Path) -> None:
    """`run --engine ray` SIGKILLed once answers are committed; the same command again answers
    exactly the rest: what the store kept is not computed again."""
    from tests.test_cli import folder_bench

    bench = folder_bench(tmp_path / "bench", n=12, broken=False)  # 24 tracks
    args = [sys.executable, "-m", "artifactbench", "run", "--bench", f"folder:{bench}",
            "--models", "counting", "--split", "all", "--engine", "ray", "--batch-size", "1",
            "--out", "runs"]  # fmt: skip
    env = {**os.environ, "COUNTING_SLEEP": "0.3"}
    store = tmp_path / "runs" / "scores.sqlite"
    driver = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while _committed(store) < 6 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert driver.poll() is None, "the run ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    kept = _committed(store)
    assert 6 <= kept < 24
    finished = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert not [p for p in finished if not p.name.endswith(".partial")]  # no run was finished
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    run_dir = tmp_path / again.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["answers_written"] == 24 - kept  # zero answers repeated
    assert record["detector_calls"] == 24 - kept
    assert _committed(store) == 24
    assert len(pd.read_parquet(run_dir / "predictions.parquet")) == 24
