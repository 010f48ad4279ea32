"""The Ray engine: the same predictions, failures, store and resume as the local engine.

The cluster tests start a real local Ray cluster on the loopback interface (no network)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from artifactbench.audio.pool import Decoded, Variant
from artifactbench.audio.transforms import parse_transforms
from artifactbench.benches.base import Bench, Track
from artifactbench.benches.demo import load_demo_bench
from artifactbench.cli import main
from artifactbench.detectors.base import LoadContext, Unavailable
from artifactbench.detectors.registry import backend, resolve_models
from artifactbench.runner import EngineFailure, RayOptions, RunOptions, run, score_key
from artifactbench.runner.store import ScoreKey
from tests.conftest import make_file_bench

try:
    import ray
except ImportError:
    if os.environ.get("CI"):  # the README's install brings the `ray` extra: CI must run these
        raise
    pytest.skip("the Ray engine's tests need the `ray` extra", allow_module_level=True)
from artifactbench.detectors import devices
from artifactbench.runner import ray_engine  # noqa: E402 - only with Ray installed

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


# --- the actor and the checks, without a cluster ---------------------------------------------


def _decoded(index: int, sha: str | None, views: list[np.ndarray] | None, **kw: Any) -> Decoded:
    variants = [] if views is None else [Variant(views)]
    return Decoded(index, sha, views, variants=variants, **kw)


def _actor(done: frozenset[str] = frozenset()) -> ray_engine.DetectorActor:
    """The counting detector's last-pool actor, answering one job keyed as the driver keys it."""
    card = resolve_models("counting")[0]
    load = ray_engine.ActorLoad(card, None, "cpu", 0)
    key = score_key(backend(card).load(card, None, LoadContext()))
    job = ray_engine.ActorJob(slot=5, variant=0, view_index=0, key=key, done=done)
    return ray_engine.DetectorActor(load, [job], batch_size=2, last=True)


def test_actor_answers_only_what_the_store_lacks_and_records_failures() -> None:
    actor = _actor(done=frozenset({"known"}))
    view = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    rows = [
        _decoded(0, "a", [view]),
        _decoded(1, "known", [view]),
        _decoded(2, None, None, stage="resolve", error="gone"),
        _decoded(3, "b", None, stage="decode", error="not audio"),
        _decoded(4, "c", [view * 0.5]),
        _decoded(5, "d", [view * 0.25]),
    ]
    batch = {"payload": np.array([pickle.dumps(r) for r in rows], dtype=object)}
    out = actor(batch)
    answers = [pickle.loads(blob) for blob in out["answers_counting"]]
    assert [len(a) for a in answers] == [1, 0, 0, 1, 1, 1]
    assert all(slot == 5 for a in answers for slot, _ in a)
    failed = answers[3][0][1]
    assert (failed.status, failed.stage, failed.error) == ("failed", "decode", "not audio")
    assert {a[0][1].status for i, a in enumerate(answers) if i in (0, 4, 5)} == {"scored"}
    # Three views in batches of two: two detector calls, counted once for the batch.
    assert out["calls_counting"].tolist() == [2, 0, 0, 0, 0, 0]
    assert "payload" not in out  # the last pool sends the driver answers, not views


def test_actor_refuses_weights_that_differ_from_the_drivers() -> None:
    card = resolve_models("counting")[0]
    key = ScoreKey(card.id, "0" * 64, "protocol")
    job = ray_engine.ActorJob(slot=0, variant=0, view_index=0, key=key, done=frozenset())
    with pytest.raises(RuntimeError, match="weights on this node hash to .* install the same"):
        ray_engine.DetectorActor(ray_engine.ActorLoad(card, None, "cpu", 0), [job], 4)


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
    assert ray_engine.pool_size(_Cluster(8, 4), RayOptions(num_gpus=0.5)) == 8
    assert ray_engine.pool_size(_Cluster(8), RayOptions(num_cpus=2)) == 4


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
    """The driver loads the detector, then the node's copy breaks: the run stops with the
    actor's own reason instead of hanging on a pool that never starts."""
    bench = make_file_bench(tmp_path / "audio")

    def break_weights_on_the_nodes(label: str, total: int) -> Callable[[int], None]:
        if label.startswith("scoring"):  # after the driver's load, before the cluster starts
            monkeypatch.setenv("COUNTING_BROKEN", "1")
        return lambda n: None

    options = _options(tmp_path / "runs", "ray", split="all")
    with pytest.raises(EngineFailure, match=r"^the Ray engine stopped: .*checkpoint is corrupt$"):
        run(bench, resolve_models("counting"), options, break_weights_on_the_nodes)
    assert not ray.is_initialized()


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
