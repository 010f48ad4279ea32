"""The demo recipe's reference outputs in reports/demo/ against a fresh run of the recipe.

The demo bench's Opus tracks are encoded by libopus, whose bytes depend on the CPU, so the bench
fingerprint, and with it the scores of a few tracks, can differ between machines. Where the
fresh run's bench fingerprint is the reference's, every reference file must be byte-identical.
Where it is not, the structure must agree (bench, split, threshold, track count, models,
subsets and every key of metrics.json and leaderboard.json) and every metric must lie within its
tolerance (`artifactbench.recipes.compare_reference`): rates over the split and their
intervals within 0.05 (about 3 of the 72 tracks of a class), confusion counts within 4 tracks,
per-subset sanity rates within 3 tracks of the subset, FAIL counts within 2 subsets.

Regenerate the references after an intended change:
`python scripts/regenerate_reference_reports.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.assets import data_folder
from artifactbench.recipes import RECIPES, REFERENCE_FILES, RecipeResult, run_recipe
from tests.conftest import link_default_demo_bench

REFERENCE = data_folder("reports") / "demo"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> RecipeResult:
    """The demo recipe run afresh into a new directory with a new cache, but for the demo bench
    itself, taken from the user's cache (generated there on first use, which takes minutes):
    about 90 s on 2 cores once the bench is cached."""
    tmp = tmp_path_factory.mktemp("demo-recipe")
    cache = tmp / "cache"
    cache.mkdir()
    link_default_demo_bench(cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTBENCH_CACHE", str(cache))
        mp.setenv("ARTIFACTBENCH_CARDS", "")
        return run_recipe("demo", tmp / "out")


def test_the_references_are_complete_and_machine_free() -> None:
    """The kept files name the recipe, not a run directory or a time of this machine's."""
    assert sorted(p.name for p in REFERENCE.iterdir()) == sorted(REFERENCE_FILES)
    board = json.loads((REFERENCE / "leaderboard.json").read_text())
    assert (board["bench"], board["split"], board["threshold"]) == ("demo", "test", 0.5)
    assert {e["model"] for e in board["ranking"]} == set(RECIPES["demo"].models)
    assert {e["run"] for e in board["ranking"]} == {"recipe demo"}
    assert [(p["run_dir"], p["finished_utc"]) for p in board["provenance"]] == [
        ("recipe demo", None)
    ]
    for name in REFERENCE_FILES:
        text = (REFERENCE / name).read_text()
        assert "/tmp" not in text and str(Path.home()) not in text, name


@pytest.mark.slow
def test_the_demo_recipe_runs_end_to_end(fresh: RecipeResult) -> None:
    (run_dir,) = fresh.run_dirs
    for name in ("predictions.parquet", "run.json", "metrics.json", "sanity.json", "report.md"):
        assert (run_dir / name).is_file(), name
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds.model) == {"artifactnet-open-demo", "fakeprint"}
    assert len(preds) == 2 * 144 and (preds.status == "scored").all()
    assert sorted(p.name for p in fresh.leaderboard_dir.iterdir()) == sorted(REFERENCE_FILES[:3])
    headline = {(r["model"], r["metric"]) for r in fresh.comparison}
    assert ("fakeprint", "ranking/f1") in headline and len(headline) == 12
    assert fresh.markdown.startswith("# Recipe demo: quick start, against reports/demo/")


@pytest.mark.slow
def test_the_references_match_a_fresh_run(fresh: RecipeResult) -> None:
    check = fresh.reference
    assert check is not None
    compared = {(r["file"], r["model"]) for r in check.rows}
    assert compared == {
        (f, m) for f in ("metrics.json", "leaderboard.json") for m in RECIPES["demo"].models
    }
    assert sum(r["metric"].startswith("heat/") for r in check.rows) == 2 * 12
    if check.same_fingerprint:
        differing = [name for name in REFERENCE_FILES if not check.identical.get(name)]
        assert differing == [], (
            f"{differing} differ from reports/demo/ on the same demo bench; if the change is "
            "intended, run scripts/regenerate_reference_reports.py"
        )
    else:
        assert check.problems == []
        outside = [(r["model"], r["metric"], r["reference"], r["measured"]) for r in check.outside]
        assert outside == [], f"bench {check.fingerprint} vs {check.reference_fingerprint}"
    assert check.ok
