"""The main job on the embedded demo bench, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.benches.demo import load_demo_bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.runner import RunOptions, run
from tests.conftest import link_default_demo_bench, python_cli
from tests.test_runner import CONTRACT


def test_small_demo_bench_end_to_end(tmp_path: Path) -> None:
    bench = load_demo_bench(root=tmp_path / "demo", tracks_per_subset=4, seconds=(3.0, 4.0))
    options = RunOptions(split="test", workers=1, out=tmp_path / "runs")
    result = run(bench, resolve_models("fakeprint"), options)
    for name in CONTRACT:
        assert (result.run_dir / name).is_file(), name
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    assert len(preds) == len(bench.select("test")) == 2 * len(bench.subsets)
    assert (preds.status == "scored").all()
    assert set(preds.bench_origin) == {"test"}
    sanity = json.loads((result.run_dir / "sanity.json").read_text())
    model = sanity["models"]["fakeprint"]
    assert model["n_subsets"] == len(bench.subsets) >= 12
    assert sanity["subsets"]["ai_latent_bandlimited"]["bound"] == 0.6
    run_json = json.loads((result.run_dir / "run.json").read_text())
    assert run_json["bench"]["fingerprint"] == bench.fingerprint
    fit = run_json["detectors"]["fakeprint"]["provenance"]
    train_ids = {t.track_id for t in bench.select("train")}
    assert fit["n_train_tracks"] == len(train_ids) and fit["split"] == "train"


@pytest.mark.slow
def test_readme_main_command_on_the_default_demo_bench(tmp_path: Path) -> None:
    """`artifactbench run --models all --split test` on a fresh cache but for the default demo
    bench (generated once for the suite): fits fakeprint, scores, reports."""
    link_default_demo_bench(Path(os.environ["ARTIFACTBENCH_CACHE"]))
    env = {**os.environ, "ARTIFACTBENCH_CARDS": ""}
    args = [*python_cli(), "run", "--models", "all", "--split", "test"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "FAIL / N" in done.stdout and "run directory: runs/demo-test-" in done.stdout
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds.model) == {"fakeprint", "artifactnet-open-demo"}  # the others need fetching
    assert len(preds) == 2 * 144 and preds.subset.nunique() == 12
    assert (preds.status == "scored").all()
    # The shipped `--small` model separates the demo test split well above chance (AUC 0.874
    # for the weights trained on demo bench v2).
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["models"]["artifactnet-open-demo"]["scored"]["auc"] >= 0.85
