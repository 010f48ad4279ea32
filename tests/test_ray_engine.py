"""The Ray engine: the same predictions, failures, store and resume as the local engine.

The cluster tests start a real local Ray cluster on the loopback interface (no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from artifactbench.audio.decode import ViewSpec
from artifactbench.audio.transforms import parse_transforms
from artifactbench.benches.base import Bench, Track
from artifactbench.benches.demo import load_demo_bench
from artifactbench.cli import main
from artifactbench.detectors.base import LoadContext, Unavailable
from artifactbench.detectors.registry import identify, resolve_models
from artifactbench.runner import EngineFailure, RayOptions, RunOptions, run
from tests.conftest import make_file_bench

try:
    import ray
except ImportError:
    if os.environ.get("CI"):  # the README's install brings the `ray` extra: CI must run these
        raise
    pytest.skip("the Ray engine's tests need the `ray` extra", allow_module_level=True)
from artifactbench.detectors import devices
from artifactbench.runner import ray_engine  # noqa: E402 - only with Ray installed
from artifactbench.runner.ray_work import ActorLoad, DetectorActor, PoolJob, decode_block

# What decides a prediction; `seconds` is a timing and differs between any two runs.
DECIDED = ["model", "variant", "track_id", "subset", "label", "prob", "status", "stage", "error"]
REPORTS = ("metrics.json", "sanity.json", "statistics.json", "report.md", "sanity.md")


def _predictions(run_dir: Path) -> pd.DataFrame:
    preds = pd.read_parquet(run_dir / "predictions.parquet")[DECIDED]
    return preds.sort_values(["model", "variant", "track_id"]).reset_index(drop=True)


def _options(out: Path, engine: str = "local", **kw: Any) -> RunOptions:
    base: dict[str, Any] = {"out": out, "workers": 1, "batch_size": 4, "engine": engine}
    return RunOptions(**{**base, **kw})


@pytest.mark.slow
def test_demo_bench_on_ray_equals_the_local_engine_track_for_track(tmp_path: Path) -> None:
    bench = load_demo_bench(root=tmp_path / "demo", tracks_per_subset=4, seconds=(3.0, 4.0))
    cards = resolve_models("fakeprint,artifactnet-open-demo")
    local = run(bench, cards, _options(tmp_path / "local"))
    on_ray = run(bench, cards, _options(tmp_path / "ray", "ray"))
    a, b = _predictions(local.run_dir), _predictions(on_ray.run_dir)
    assert len(a) == 2 * len(bench.select("test")) and (a.status == "scored").all()
    # The open ArtifactNet's CPU inference path (folded BatchNorm, channels-last convolutions)
    # may round an ulp apart in an actor process; everything else is identical.
    pd.testing.assert_frame_equal(a.drop(columns="prob"), b.drop(columns="prob"), check_exact=True)
    assert np.abs(a.prob.to_numpy() - b.prob.to_numpy()).max() <= 1e-6
    # Every report is built from predictions.parquet alone, so none can tell the engines apart.
    for name in REPORTS:
        assert (local.run_dir / name).read_text() == (on_ray.run_dir / name).read_text(), name
    engine = json.loads((on_ray.run_dir / "run.json").read_text())["engine"]
    assert engine == {"name": "ray", "address": "local", "num_cpus_per_actor": 1.0,
                      "num_gpus_per_actor": 0.0}  # fmt: skip
    assert on_ray.detector_calls > 0
    assert not ray.is_initialized()  # the cluster the engine started is shut down


def _bench_with_duplicate(root: Path) -> Bench:
    """The file bench (broken and missing files included) plus one track repeating another's
    bytes under a new name: one audio sha256, so one answer in the store for both."""
    bench = make_file_bench(root)
    first = next(t for t in bench.tracks if t.track_id == "ai1.flac")
    copy = root / "ai1-again.flac"
    shutil.copyfile(first.path or "", copy)
    again = Track("ai1-again.flac", first.bench, first.subset, first.label, first.generator,
                  first.bench_origin, path=str(copy))  # fmt: skip
    return Bench(bench.name, bench.fingerprint, bench.subsets, [*bench.tracks, again])


@pytest.mark.slow
def test_failures_duplicates_seeded_variants_and_resume_match_the_local_engine(
    tmp_path: Path,
) -> None:
    bench = _bench_with_duplicate(tmp_path / "audio")
    cards = resolve_models("fakeprint,counting")
    chains = [[], parse_transforms("noise:20")]
    common = {"split": "all", "chains": chains, "seed": 3}
    local = run(bench, cards, _options(tmp_path / "local", **common))
    # Half the tracks scored locally first, as if a run had been killed: Ray finishes the rest.
    out = tmp_path / "ray"
    partial = run(bench, cards, _options(out, limit=6, **common))
    resumed = run(bench, cards, _options(out, "ray", **common))
    a, b = _predictions(local.run_dir), _predictions(resumed.run_dir)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    stages = dict(zip(a.track_id, a.stage, strict=False))
    assert stages["garbage.mp3"] == "decode" and stages["missing.flac"] == "resolve"
    assert partial.detector_calls > 0 and 0 < resumed.detector_calls < local.detector_calls
    twins = b[b.track_id.isin(["ai1.flac", "ai1-again.flac"])].groupby(["model", "variant"])
    assert all(group.prob.nunique() == 1 and len(group) == 2 for _, group in twins)
    # Everything is in the store now: neither engine calls a model again.
    again_ray = run(bench, cards, _options(out, "ray", **common))
    again_local = run(bench, cards, _options(out, **common))
    assert again_ray.detector_calls == 0 and again_local.detector_calls == 0
    pd.testing.assert_frame_equal(_predictions(again_ray.run_dir), a, check_exact=True)


# --- the work on the cluster and the checks, without a cluster ------------------------------


def _actor(batch_size: int = 2) -> ray_engine.DetectorActor:
    """The counting detector's actor, planned with the key the driver identifies it by."""
    card = resolve_models("counting")[0]
    identity = identify(card, None, LoadContext())
    return DetectorActor(ActorLoad(card, None, "cpu", 0), identity.weights_sha256, batch_size)


def test_actor_scores_the_views_it_is_handed_in_batches() -> None:
    actor = _actor(batch_size=2)
    view = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    first: list[list[np.ndarray | None]] = [[view], [view * 0.5]]
    second: list[list[np.ndarray | None]] = [[None, view * 0.25]]
    work = [(0, 0, 0, 5, "a"), (0, 1, 0, 5, "b"), (1, 0, 1, 7, "c")]
    answer = actor.score(work, first, second)
    assert [(slot, sha) for slot, sha, _ in answer.answers] == [(5, "a"), (5, "b"), (7, "c")]
    assert {row.status for _, _, row in answer.answers} == {"scored"}
    probs = [row.prob for _, _, row in answer.answers]
    assert probs == [actor.detector.score([v])[0] for v in (view, view * 0.5, view * 0.25)]
    assert answer.calls == 2 and answer.busy > 0  # three views in batches of two
    assert answer.provenance == {"source": "tests", "device": "cpu"}
    assert actor.score(work[:1], first).provenance == {}  # said once per actor


def test_actor_refuses_weights_that_differ_from_the_drivers() -> None:
    card = resolve_models("counting")[0]
    with pytest.raises(RuntimeError, match="weights on this node hash to .* install the same"):
        DetectorActor(ActorLoad(card, None, "cpu", 0), "0" * 64, 4)


def test_a_decode_task_gives_each_pool_only_its_own_views(file_bench: Bench) -> None:
    """Two pools of different views and two variants: each pool's object holds its jobs'
    views and nothing else; failures reach the driver as rows, not views."""
    short = ViewSpec(rate=16000, seconds=2, crop="center")
    long_ = ViewSpec(rate=44100, seconds=3, crop="start")
    by_id = {t.track_id: t for t in file_bench.tracks}
    items = [(0, by_id["ai0.flac"]), (1, by_id["garbage.mp3"]), (2, by_id["missing.flac"])]
    pools = [[PoolJob(0, 0, 0), PoolJob(2, 1, 0)], [PoolJob(1, 0, 1)]]
    chains = [[], parse_transforms("gain:-6")]
    metas, first, second = decode_block(items, [short, long_], chains, 0, pools)
    assert len(first[0]) == 2 and len(second[0]) == 1  # per track: one view per job of the pool
    assert all(v.shape == (32000,) for v in first[0]) and second[0][0].shape == (132300,)
    assert first[0][1] is not None and not np.array_equal(first[0][0], first[0][1])
    assert metas[0].pool_bytes == [2 * 32000 * 4, 132300 * 4] and metas[0].failures == {}
    assert metas[0].sha is not None and metas[0].seconds > 0
    assert first[1] == [None, None] and second[1] == [None]  # not audio: no views anywhere
    assert {slot: row.stage for slot, row in metas[1].failures.items()} == {
        0: "decode",
        1: "decode",
        2: "decode",
    }
    assert metas[2].sha is None and "missing.flac" in (metas[2].error or "")


def test_pools_are_sized_by_what_their_tracks_cost() -> None:
    cpu = RayOptions(num_cpus=1)
    # 2 cores, a model at 0.9 s a track beside one at 0.05 s: 1.8 actors -> 2, and 1.
    assert ray_engine.pool_targets([0.9, 0.05], 0.05, 2, {"CPU": 5}, cpu, [99, 99]) == [2, 1]
    # 16 cores, costs 3:1, decoding 1: 12 and 4 actors, as many as the CPUs hold.
    assert ray_engine.pool_targets([0.3, 0.1], 0.0, 16, {"CPU": 17}, cpu, [99, 99]) == [12, 4]
    # Fewer CPUs than that: trimmed where rounding up gave most, never below one each.
    assert ray_engine.pool_targets([0.3, 0.1], 0.0, 16, {"CPU": 9}, cpu, [99, 99]) == [6, 2]
    assert ray_engine.pool_targets([5.0, 0.1], 0.0, 8, {"CPU": 3}, cpu, [99, 99]) == [1, 1]
    # No more actors than the remaining work needs.
    assert ray_engine.pool_targets([0.3, 0.1], 0.0, 16, {"CPU": 17}, cpu, [3, 99]) == [3, 4]
    # GPU actors share the GPUs by cost; CPUs still bound them.
    gpu = RayOptions(num_cpus=1, num_gpus=0.5)
    assert ray_engine.pool_targets([0.3, 0.1], 0.0, 16, {"CPU": 17, "GPU": 2}, gpu, [9, 9]) == [
        3,
        1,
    ]
    assert ray_engine.pool_targets([0.3, 0.1], 0.0, 16, {"CPU": 3, "GPU": 4}, gpu, [9, 9]) == [1, 1]


class _Cluster:
    def __init__(self, cpus: float, gpus: float = 0.0) -> None:
        self.resources = {"CPU": cpus, "GPU": gpus}

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_a_cluster_too_small_for_one_actor_per_detector_is_refused() -> None:
    ray_engine.check_resources(_Cluster(3), RayOptions(num_cpus=1), n_models=2)
    with pytest.raises(Unavailable, match="has 2 CPU and 0 GPU; 2 detector pool"):
        ray_engine.check_resources(_Cluster(2), RayOptions(num_cpus=1), n_models=2)
    with pytest.raises(Unavailable, match="need 2 CPU and 2 GPU"):
        ray_engine.check_resources(_Cluster(8, 1), RayOptions(num_cpus=0.5, num_gpus=1), 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "127.0.0.1:6379"], "need --engine ray"),
        (["--num-gpus", "1"], "need --engine ray"),
        (["--engine", "ray", "--num-gpus", "1"], "--device cuda together with --num-gpus"),
        (["--engine", "ray", "--device", "cuda"], "--device cuda together with --num-gpus"),
        (["--engine", "ray", "--device", "cuda:1", "--num-gpus", "1"], "Ray assigns each"),
        (["--engine", "spark"], "'spark' is not one of 'local', 'ray'"),
    ],
)
def test_ray_options_that_mean_nothing_exit_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "argv", ["artifactbench", "run", "--models", "counting", *args])
    # As on a machine with GPUs: the device itself passes its check, the Ray options do not.
    monkeypatch.setattr(devices, "cuda_problem", lambda _device: None)
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def _chain(*messages: str) -> BaseException:
    """An exception whose cause chain carries these messages, outermost first."""
    cause: BaseException | None = None
    for message in reversed(messages):
        link = RuntimeError(message)
        link.__cause__ = cause
        cause = link
    assert cause is not None
    return cause


def test_first_line_digs_out_the_root_cause() -> None:
    wrapped = _chain(
        "the run failed", "Traceback ...\n  File x\nRuntimeError: checkpoint is corrupt", ""
    )
    assert ray_engine._first_line(wrapped) == "RuntimeError: checkpoint is corrupt"
    assert ray_engine._first_line(_chain("outer", "inner\nlast line")) == "last line"
    assert ray_engine._first_line(_chain("")) == "RuntimeError"


@pytest.mark.slow
def test_an_actor_that_cannot_load_stops_the_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver only identifies the detector from its files; the nodes' load fails: the run
    stops with the actor's own reason instead of hanging on a pool that never starts."""
    bench = make_file_bench(tmp_path / "audio")
    monkeypatch.setenv("COUNTING_BROKEN", "1")
    options = _options(tmp_path / "runs", "ray", split="all")
    with pytest.raises(EngineFailure, match=r"^the Ray engine stopped: .*checkpoint is corrupt$"):
        run(bench, resolve_models("counting"), options)
    assert not ray.is_initialized()


@pytest.mark.slow
def test_the_driver_loads_no_model_and_the_actors_load_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identities from the files on the driver; every load happens in an actor process."""
    loads = tmp_path / "loads.log"
    monkeypatch.setenv("COUNTING_LOADS", str(loads))
    bench = make_file_bench(tmp_path / "audio")
    done = run(bench, resolve_models("counting"), _options(tmp_path / "runs", "ray", split="all"))
    pids = loads.read_text().split()
    assert pids and str(os.getpid()) not in pids
    record = json.loads((done.run_dir / "run.json").read_text())
    counting = record["detectors"]["counting"]
    assert counting["weights_sha256"] == "counting-v1"
    # The actors' own provenance joins the driver's record of the files.
    assert counting["provenance"]["device"] == "cpu"
    pool = counting["provenance"]["ray_pool"]
    assert len(pids) == pool["actors_peak"]  # one load per actor, none anywhere else
    # Every answer but the undecodable file's (written by the driver) came from an actor.
    assert sum(pool["answers_per_node"].values()) == record["answers_written"] - 1


@pytest.mark.slow
def test_cli_run_on_ray_then_sanity_reads_it_like_a_local_run(tmp_path: Path) -> None:
    """The command a user types: a local Ray cluster, the summary, and a run directory that
    `sanity` reads."""
    from tests.test_cli import cli, folder_bench

    bench = folder_bench(tmp_path / "bench")
    args = ["run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
            "--engine", "ray", "--num-cpus", "0.5"]  # fmt: skip
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FAIL / N" in done.stdout and "scoring (ray)" in done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    engine = json.loads((run_dir / "run.json").read_text())["engine"]
    assert engine["name"] == "ray" and engine["num_cpus_per_actor"] == 0.5
    sanity = cli("sanity", str(run_dir), cwd=tmp_path)
    assert sanity.returncode == 0 and "real_tones" in sanity.stdout


def test_an_unknown_engine_is_refused_before_any_work(tmp_path: Path) -> None:
    bench = make_file_bench(tmp_path / "audio")
    with pytest.raises(ValueError, match="unknown engine 'spark'; choose from: local, ray"):
        run(bench, resolve_models("counting"), _options(tmp_path / "runs", "spark"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_joins_an_existing_cluster_and_leaves_it_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--address auto` on a cluster started apart (`ray start --head`, on this machine only),
    whose workers have a cache of their own: fakeprint's fit reaches them with the actor."""
    ray_cli = Path(sys.executable).with_name("ray")
    assert ray_cli.is_file(), "the ray extra installs the `ray` command beside python"
    bench = make_file_bench(tmp_path / "audio")
    cards = resolve_models("fakeprint,counting")
    local = run(bench, cards, _options(tmp_path / "local", split="all"))
    # Only the cluster's workers log the views the counting detector scores.
    worker_log = tmp_path / "scored-on-the-cluster.log"
    env = {**os.environ, "ARTIFACTBENCH_CACHE": str(tmp_path / "worker-cache"),
           "COUNTING_LOG": str(worker_log)}  # fmt: skip
    head = [str(ray_cli), "start", "--head", "--port=0", "--num-cpus=3",
            "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
    try:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        options = _options(tmp_path / "ray", "ray", split="all", ray=RayOptions(address="auto"))
        joined = run(bench, cards, options)
        pd.testing.assert_frame_equal(
            _predictions(joined.run_dir), _predictions(local.run_dir), check_exact=True
        )
        assert not (tmp_path / "worker-cache" / "fits").exists()  # no worker refitted
        scored = _predictions(joined.run_dir).query("model == 'counting' and status == 'scored'")
        assert len(worker_log.read_text().split()) >= len(scored) > 0  # scored on the cluster
        assert not ray.is_initialized()
        status = subprocess.run([str(ray_cli), "status"], capture_output=True, timeout=60)
        assert status.returncode == 0  # the run left the cluster it joined running
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_cli_codec_on_ray_gives_the_local_engines_predictions(tmp_path: Path) -> None:
    """`codec` scores through the same runner as `run`, so `--engine ray` is the same code path:
    every codec variant, failures included, answered as the local engine answers it."""
    from tests.test_cli import cli, folder_bench

    bench = folder_bench(tmp_path / "bench")
    args = ["codec", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
            "--codecs", "wav,mp3-128"]  # fmt: skip
    local = cli(*args, "--out", "local", cwd=tmp_path)
    on_ray = cli(*args, "--out", "ray", "--engine", "ray", "--num-cpus", "0.5", cwd=tmp_path)
    assert local.returncode == 0 and on_ray.returncode == 0, on_ray.stderr
    assert "scoring (ray)" in on_ray.stderr
    dirs = [tmp_path / d.stdout.strip().splitlines()[-1].split(": ", 1)[1] for d in (local, on_ray)]
    a, b = (_predictions(d) for d in dirs)
    assert set(a.variant) == {"codec:wav", "codec:mp3-128"}
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert json.loads((dirs[1] / "run.json").read_text())["engine"]["name"] == "ray"
