"""Run recipes: every YAML in runners/ validates against the registries, wrong names and missing
assets are refused before any work with what to do instead, and each flow runs end to end on a
small folder bench (the demo recipe's full run is in test_reference_reports.py)."""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from artifactbench.assets import data_folder
from artifactbench.audio.encode import encode_audio
from artifactbench.benches import BENCH_SOURCES
from artifactbench.detectors.registry import cards
from artifactbench.recipes import (
    FLOWS,
    RECIPES,
    REFERENCE_FILES,
    MissingAssets,
    RecipeError,
    compare_reference,
    fetch_commands,
    load_recipe,
    missing_assets,
    paper_comparison,
    published_tables,
    run_recipe,
    validate,
    with_overrides,
)
from tests.conftest import RATE, music, upsampled

EXPECTED = {
    "table-vi-artifactbench": "run",
    "table-iv-sonics": "run",
    "table-x-codec": "codec",
    "appendix-b-ablation": "ablate",
    "table-xi-bandwidth": "bandwidth",
    "demo": "run",
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails loudly: refusals must come from local state."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def folder_bench(tmp_path: Path) -> str:
    """A `folder:PATH` bench of three AI (upsampled) and three real tracks."""
    root = tmp_path / "bench"
    for label in ("ai", "real"):
        (root / label).mkdir(parents=True)
    for i in range(3):
        real = encode_audio(music(i, seconds=4.0), RATE, "flac")
        fake = encode_audio(upsampled(music(10 + i, seconds=4.0), seed=i), RATE, "flac")
        (root / "real" / f"real{i}.flac").write_bytes(real)
        (root / "ai" / f"ai{i}.flac").write_bytes(fake)
    return f"folder:{root}"


# --- The registry of recipes -----------------------------------------------------------------


def test_the_runners_folder_holds_one_recipe_per_experiment() -> None:
    assert {name: r.flow for name, r in RECIPES.items()} == EXPECTED
    assert data_folder("runners") == RECIPES["demo"].path.parent


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_recipe_validates_against_the_registries(name: str) -> None:
    recipe = load_recipe(name)
    validate(recipe)
    assert recipe.flow in FLOWS
    bench, _, arg = recipe.bench.partition(":")
    assert any(key.partition(":")[0] == bench for key in BENCH_SOURCES)
    assert set(recipe.models) <= set(cards())
    assert set(recipe.compare_with) <= published_tables()
    table = recipe.reproduces.removeprefix("Table ")
    if recipe.reproduces.startswith("Table "):
        assert table in recipe.compare_with
    # The YAML's fetch commands are exactly those the registries derive.
    listed = [a for a in recipe.assets if a.startswith("artifactbench fetch")]
    assert listed == fetch_commands(recipe)


def test_the_paper_tables_are_the_papers() -> None:
    """Table IV is SONICS and Table VI ArtifactBench (the paper's numbering, published.csv's)."""
    assert RECIPES["table-iv-sonics"].bench.startswith("sonics:")
    assert RECIPES["table-vi-artifactbench"].bench == "artifactbench"
    assert {r.split for r in RECIPES.values()} == {"test"}
    assert all(r.options.get("threshold", 0.5) == 0.5 for r in RECIPES.values())
    assert RECIPES["table-x-codec"].options["codecs"] == [
        "wav", "mp3-128", "mp3-320", "opus-128", "opus-192",
    ]  # fmt: skip
    assert RECIPES["table-xi-bandwidth"].options["residual"] == "demucs"


def test_an_unknown_recipe_lists_the_valid_names(tmp_path: Path) -> None:
    for call in (lambda: load_recipe("table-v"), lambda: run_recipe("table-v", tmp_path)):
        with pytest.raises(RecipeError) as info:
            call()
        message = str(info.value)
        assert "unknown recipe 'table-v'" in message
        assert all(name in message for name in EXPECTED)
    assert not any(tmp_path.iterdir())


def test_validation_names_every_problem() -> None:
    recipe = RECIPES["table-vi-artifactbench"]
    broken = replace(recipe, bench="nowhere", split="dev", models=("nope",), compare_with=("XX",))
    with pytest.raises(RecipeError) as info:
        validate(broken)
    message = str(info.value)
    for part in ("bench 'nowhere'", "split 'dev'", "unknown model 'nope'", "table 'XX'"):
        assert part in message


def test_overrides_are_checked_against_the_flow() -> None:
    recipe = RECIPES["table-x-codec"]
    with pytest.raises(RecipeError, match="takes no setting residual; choose from: bench"):
        with_overrides(recipe, {"residual": "hpss"})
    with pytest.raises(RecipeError, match="codecs \\['flac-9'\\]"):
        with_overrides(recipe, {"codecs": ["flac-9"]})
    with pytest.raises(RecipeError, match="unknown model 'artifactnett'"):
        with_overrides(recipe, {"models": "artifactnett"})
    changed = with_overrides(recipe, {"models": "fakeprint", "limit": 8})
    assert changed.models == ("fakeprint",) and changed.options["limit"] == 8
    assert recipe.models == ("artifactnet",)  # the registry's recipe is left as it was
    assert with_overrides(recipe, {"limit": None, "bench": None}) is recipe  # None: not given
    with pytest.raises(RecipeError, match="takes no setting models"):
        with_overrides(RECIPES["table-xi-bandwidth"], {"models": "fakeprint"})


# --- Assets ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_network")
def test_missing_assets_refuse_the_run_with_the_exact_fetch_commands(tmp_path: Path) -> None:
    """An empty cache: neither ArtifactBench nor any published weights are here."""
    expected = [
        "artifactbench fetch bench artifactbench",
        "artifactbench fetch model artifactnet",
        "artifactbench fetch model clam --from PATH_OR_URL",
        "artifactbench fetch model spectttra-alpha-120s",
    ]
    assert missing_assets(load_recipe("table-vi-artifactbench")) == expected
    out = tmp_path / "out"
    with pytest.raises(MissingAssets) as info:
        run_recipe("table-vi-artifactbench", out)
    assert info.value.commands == expected
    assert all(command in str(info.value) for command in expected)
    assert not out.exists()


@pytest.mark.usefixtures("no_network")
def test_missing_assets_name_only_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "sonics").mkdir()
    weights = tmp_path / "artifactnet.onnx"
    weights.write_bytes(b"given")
    recipe = with_overrides(
        load_recipe("table-iv-sonics"),
        {"bench": f"sonics:{tmp_path / 'sonics'}", "weights": {"artifactnet": str(weights)}},
    )
    assert missing_assets(recipe) == [
        "artifactbench fetch model clam --from PATH_OR_URL",
        "artifactbench fetch model spectttra-alpha-120s",
    ]
    placeholder = missing_assets(load_recipe("table-iv-sonics"))[0]
    assert placeholder.startswith("give the bench's location: bench=sonics:PATH")
    assert missing_assets(load_recipe("demo")) == []
    bandwidth = missing_assets(load_recipe("table-xi-bandwidth"))
    assert bandwidth[0] == "artifactbench fetch bench artifactbench"
    assert bandwidth[1].startswith("Demucs: ") and "ARTIFACTBENCH_DEMUCS" in bandwidth[1]


# --- Flows on a small bench ------------------------------------------------------------------


def test_the_run_flow_writes_a_run_and_its_leaderboard(folder_bench: str, tmp_path: Path) -> None:
    """The demo recipe pointed at another bench and model: it runs, writes its leaderboard and
    reports how far it is from the demo's references (not a failure of the run)."""
    result = run_recipe("demo", tmp_path / "out", bench=folder_bench, models="counting",
                        workers=0)  # fmt: skip
    (run_dir,) = result.run_dirs
    assert (run_dir / "predictions.parquet").is_file() and run_dir.parent == tmp_path / "out"
    assert sorted(p.name for p in result.leaderboard_dir.iterdir()) == sorted(REFERENCE_FILES[:3])
    assert sorted(p.name for p in result.reference_outputs.iterdir()) == sorted(REFERENCE_FILES)
    assert result.reference is not None and not result.reference.ok
    assert "leaderboard.json bench" in " ".join(result.reference.problems)
    assert "NOT OK" in result.markdown


def test_the_codec_flow_scores_each_codec_as_a_variant(folder_bench: str, tmp_path: Path) -> None:
    result = run_recipe("table-x-codec", tmp_path, bench=folder_bench, models="counting",
                        codecs=["wav", "mp3-128"], workers=0)  # fmt: skip
    robustness = json.loads((result.run_dirs[0] / "robustness.json").read_text())
    assert robustness["order"] == ["codec:wav", "codec:mp3-128"]
    assert result.comparison == []  # the counting detector has no published figure
    assert "No published figure matched" in result.markdown


def test_the_bandwidth_flow_compares_the_class_means(folder_bench: str, tmp_path: Path) -> None:
    result = run_recipe("table-xi-bandwidth", tmp_path, bench=folder_bench, residual="hpss",
                        max_seconds=2.0, workers=0)  # fmt: skip
    rows = {r["paper_name"]: r for r in result.comparison}
    record = json.loads((result.run_dirs[0] / "bandwidth.json").read_text())
    ai = rows["AI average (50 tracks 22 generators)"]
    assert ai["published"] == 291 and ai["measured"] == record["table"]["ai"]["mean_hz"]
    assert ai["difference"] == pytest.approx(ai["measured"] - 291)
    assert rows["Human music (44 tracks)"]["measured"] == record["table"]["real"]["mean_hz"]
    assert rows["Suno v3.5"]["measured"] is None  # no subset of this bench is a generator
    assert "| XI |" in result.markdown


def test_the_ablate_flow_runs_appendix_b_on_the_shipped_model(
    folder_bench: str, tmp_path: Path
) -> None:
    result = run_recipe("appendix-b-ablation", tmp_path, bench=folder_bench, ablation="mel_res",
                        workers=0)  # fmt: skip
    record = json.loads((result.run_dirs[0] / "ablation.json").read_text())
    assert [r["ablation"] for r in record["rows"]] == ["baseline", "mel_res"]
    f1 = next(r for r in result.comparison if r["metric"] == "f1")
    assert f1["published"] == 0.9829 and f1["measured"] == record["rows"][0]["f1"]
    assert f1["model"] == "artifactnet-open (baseline)"


# --- Comparison rows -------------------------------------------------------------------------


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_paper_rows_come_from_the_run_directory(tmp_path: Path) -> None:
    """paper.json's paper_vs_run rows of the recipe's tables, Table X from robustness.json and
    Table VI against an ablation's full model."""
    paper_row = {"model": "artifactnet", "paper_name": "ArtifactNet v9.4", "table": "VI",
                 "metric": "f1", "published": 0.9829, "measured": 0.9, "difference": -0.0829,
                 "runner": 0.952, "runner_difference": -0.052, "note": ""}  # fmt: skip
    _write(tmp_path / "run" / "paper.json", {"sections": {"paper_vs_run": {"rows": [
        paper_row, {**paper_row, "table": "IV"}]}}})  # fmt: skip
    rows = paper_comparison(RECIPES["table-vi-artifactbench"], [tmp_path / "run"])
    assert rows == [paper_row]

    _write(tmp_path / "codec" / "robustness.json", {"table_x": [
        {"model": "artifactnet", "codec": "mp3-320", "ai_tpr": 0.97, "real_fpr": 0.0},
    ]})  # fmt: skip
    rows = paper_comparison(RECIPES["table-x-codec"], [tmp_path / "codec"])
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"tpr_wav", "tpr_mp3_128", "tpr_mp3_320", "tpr_opus_128",
                              "tpr_opus_192"}  # fmt: skip
    assert by_metric["tpr_mp3_320"]["measured"] == 0.97
    assert by_metric["tpr_mp3_320"]["difference"] == pytest.approx(0.97 - 0.9802)
    assert by_metric["tpr_wav"]["measured"] is None

    _write(tmp_path / "ablate" / "ablation.json", {"rows": [
        {"ablation": "baseline", "f1": 0.8, "auc": 0.9, "tpr": 0.7, "fpr": 0.1},
        {"ablation": "mel_res", "f1": 0.5, "auc": 0.6, "tpr": 0.4, "fpr": 0.2},
    ]})  # fmt: skip
    rows = paper_comparison(RECIPES["appendix-b-ablation"], [tmp_path / "ablate"])
    assert {r["metric"]: r["measured"] for r in rows} == {
        "f1": 0.8, "recall": 0.7, "fpr": 0.1, "auc": 0.9,
    }  # fmt: skip
    assert {r["published"] for r in rows if r["metric"] == "f1"} == {0.9829}


# --- Reference comparison --------------------------------------------------------------------


def _reference_copy(tmp_path: Path, fingerprint: str | None = None, nudge: float = 0.0) -> Path:
    """A copy of reports/demo/ with another fingerprint and every model's F1 moved by `nudge`."""
    copy = tmp_path / "copy"
    shutil.copytree(data_folder("reports") / "demo", copy)
    board = json.loads((copy / "leaderboard.json").read_text())
    if fingerprint is not None:
        board["fingerprint"] = fingerprint
    for entry in board["ranking"]:
        entry["f1"] += nudge
    (copy / "leaderboard.json").write_text(json.dumps(board))
    return copy


def test_the_reference_comparison_is_bytes_on_the_same_bench(tmp_path: Path) -> None:
    kept = data_folder("reports") / "demo"
    assert compare_reference(kept, kept).ok
    moved = compare_reference(_reference_copy(tmp_path), kept)
    assert moved.same_fingerprint and not moved.identical["leaderboard.json"] and not moved.ok


def test_the_reference_comparison_has_a_tolerance_across_benches(tmp_path: Path) -> None:
    kept = data_folder("reports") / "demo"
    close = compare_reference(_reference_copy(tmp_path / "a", "another", 0.04), kept)
    assert not close.same_fingerprint and close.ok
    assert any(r["metric"] == "ranking/f1" and r["difference"] for r in close.rows)
    far = compare_reference(_reference_copy(tmp_path / "b", "another", 0.06), kept)
    assert not far.ok
    assert {r["metric"] for r in far.outside} == {"ranking/f1"}


def test_the_operating_point_has_a_wider_tolerance_than_the_rates(tmp_path: Path) -> None:
    """The TPR at FPR <= 5% follows the few highest real scores, so it may stray 0.10, not 0.05."""
    kept = data_folder("reports") / "demo"

    def nudged(folder: Path, by: float) -> Path:
        copy = _reference_copy(folder, "another")
        metrics = json.loads((copy / "metrics.json").read_text())
        block = metrics["models"]["fakeprint"]["scored"]
        block["tpr_at_fpr05"] += by
        (copy / "metrics.json").write_text(json.dumps(metrics))
        return copy

    assert compare_reference(nudged(tmp_path / "a", 0.08), kept).ok
    far = compare_reference(nudged(tmp_path / "b", 0.12), kept)
    assert {r["metric"] for r in far.outside} == {"scored/tpr_at_fpr05"}
