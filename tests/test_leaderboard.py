"""The leaderboard: real runs of two models merged into one board, and runs it must refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from artifactbench.benches.base import Bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import META_KEY, PredictionsError
from artifactbench.reports.data import canonical
from artifactbench.reports.format import FAIL_MARK
from artifactbench.reports.leaderboard import (
    IncompatibleRuns,
    build_leaderboard,
    leaderboard_markdown,
    load_run,
    write_leaderboard,
)
from artifactbench.reports.leaderboard.build import _verdict
from artifactbench.runner import RunOptions, run
from tests.conftest import PLUGINS, make_file_bench

METRICS = ("f1", "auc", "precision", "recall", "fpr")


def _run(bench: Bench, models: str, out: Path, **kw: object) -> Path:
    options = RunOptions(**{"out": out, "workers": 0, "split": "all", **kw})  # type: ignore[arg-type]
    return run(bench, resolve_models(models), options).run_dir


def make_two_runs(root: Path) -> tuple[Path, Path]:
    """A counting run and a fakeprint run on the same bench, into one store under `root`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTBENCH_CACHE", str(root / "cache"))
        mp.delenv("ARTIFACTBENCH_DEMUCS", raising=False)
        mp.setenv("ARTIFACTBENCH_CARDS", str(PLUGINS / "cards"))
        mp.syspath_prepend(str(PLUGINS))
        bench = make_file_bench(root / "audio")
        counting = _run(bench, "counting", root / "runs")
        fakeprint = _run(bench, "fakeprint", root / "runs")
    return counting, fakeprint


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_two_runs(tmp_path_factory.mktemp("board"))


def _copy_with(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of a run directory with some metadata fields of its predictions replaced (keys
    joined by `__` go deeper), and no run.json: the leaderboard must not need one."""
    shutil.copytree(src, dst)
    (dst / "run.json").unlink()
    path = dst / "predictions.parquet"
    table = pq.read_table(path)
    data = json.loads(table.schema.metadata[META_KEY])
    for dotted, value in changes.items():
        *keys, last = dotted.split("__")
        block = data
        for key in keys:
            block = block[key]
        block[last] = value
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(data)}), path)
    return dst


def test_two_runs_merge_into_one_board_matching_each_runs_own_reports(
    two_runs: tuple[Path, Path],
) -> None:
    board = build_leaderboard(list(two_runs))
    ranked = [e["model"] for e in board["ranking"]]
    assert sorted(ranked) == ["counting", "fakeprint"]
    f1s = [e["f1"] if e["f1"] is not None else -1 for e in board["ranking"]]
    assert f1s == sorted(f1s, reverse=True)
    assert [e["rank"] for e in board["ranking"]] == [1, 2]
    for run_dir in two_runs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        statistics = json.loads((run_dir / "statistics.json").read_text())
        ((model, own),) = metrics["models"].items()
        entry = next(e for e in board["ranking"] if e["model"] == model)
        for name in METRICS:
            assert entry[name] == own["scored"][name], (model, name)
        assert entry["ci"] == canonical(statistics["intervals"][model]["ci"])
        assert entry["params"] == own["params"]
        assert entry["run"] == str(run_dir)
        assert (entry["n"], entry["n_scored"]) == (own["n"], own["n_scored"])
        sanity = json.loads((run_dir / "sanity.json").read_text())
        assert entry["fail_n"] == sanity["models"][model]["summary"]
        assert entry["published"] == {"f1": None, "auc": None}
    (pair,) = board["pairs"]
    assert (pair["a"], pair["b"]) == tuple(ranked)
    assert pair["n_common"] > 0 and pair["verdict"]
    assert [p["models"] for p in board["provenance"]] == [["counting"], ["fakeprint"]]
    assert board["replaced"] == []


@pytest.mark.parametrize(
    ("options", "field", "values"),
    [
        ({"split": "test"}, "split", ("'all'", "'test'")),
        ({"threshold": 0.6}, "threshold", ("0.5", "0.6")),
        ({"limit": 6}, "tracks", ("6 track(s) in one run only",)),
    ],
)
def test_incompatible_runs_are_refused_naming_the_field(
    two_runs: tuple[Path, Path],
    file_bench: Bench,
    tmp_path: Path,
    options: dict[str, object],
    field: str,
    values: tuple[str, ...],
) -> None:
    other = _run(file_bench, "counting", tmp_path / "runs", **options)
    with pytest.raises(IncompatibleRuns) as info:
        build_leaderboard([two_runs[1], other])
    message = str(info.value)
    assert info.value.field == field
    assert f"{field} differ" in message
    assert "\n" not in message
    for value in values:
        assert value in message


def test_same_model_with_other_weights_is_refused(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = _copy_with(
        two_runs[0], tmp_path / "copy", models__counting__weights_sha256="counting-v2"
    )
    with pytest.raises(IncompatibleRuns, match="'counting' has different weights") as info:
        build_leaderboard([two_runs[0], two_runs[1], copy])
    assert "counting-v1" in str(info.value) and "counting-v2" in str(info.value)


def test_same_model_twice_keeps_the_later_run(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    later = _copy_with(two_runs[0], tmp_path / "later", written_utc="2999-01-01T00:00:00+00:00")
    board = build_leaderboard([later, two_runs[0], two_runs[1]])
    assert sorted(e["model"] for e in board["ranking"]) == ["counting", "fakeprint"]
    entry = next(e for e in board["ranking"] if e["model"] == "counting")
    assert entry["run"] == str(later)
    (replaced,) = board["replaced"]
    assert (replaced["model"], replaced["kept"], replaced["replaced"]) == (
        "counting",
        str(later),
        str(two_runs[0]),
    )
    provenance = {p["run_dir"]: p for p in board["provenance"]}
    assert provenance[str(two_runs[0])]["replaced"] == ["counting"]
    assert provenance[str(two_runs[0])]["models"] == []
    assert f"`{later}` replaces `{two_runs[0]}`" in leaderboard_markdown(board)


def test_rebuild_is_byte_identical(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    first = write_leaderboard(build_leaderboard(list(two_runs)), tmp_path / "a")
    second = write_leaderboard(build_leaderboard(list(two_runs)), tmp_path / "b")
    assert sorted(first) == ["leaderboard.html", "leaderboard.json", "leaderboard.md"]
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
    assert json.loads(first["leaderboard.json"].read_text())["bench"] == "files"


def test_markdown_has_ranking_verdicts_and_a_marked_failing_cell(
    two_runs: tuple[Path, Path],
) -> None:
    board = build_leaderboard(list(two_runs))
    text = leaderboard_markdown(board)
    for heading in ("## Ranking", "## Paired verdicts", "## Per-subset sanity", "## Provenance"):
        assert heading in text
    assert board["pairs"][0]["verdict"] in text
    failing = [
        (model, subset)
        for model, cells in board["heat"].items()
        for subset, cell in cells.items()
        if not cell["pass"]
    ]
    assert failing
    model, subset = failing[0]
    rate = board["heat"][model][subset]["rate"]
    assert f"{rate:.3f} {FAIL_MARK}" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {subset} "))
    assert FAIL_MARK in row
    assert text.endswith("\n")


def test_published_figures_come_from_the_paper_lookup(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = _copy_with(two_runs[1], tmp_path / "ab", bench="artifactbench")
    board = build_leaderboard([copy])
    (entry,) = board["ranking"]
    assert board["paper_bench"] == "artifactbench"
    assert entry["published"]["f1"]["value"] == pytest.approx(0.754)
    assert entry["published"]["f1"]["table"] == "runner"
    assert entry["published"]["auc"] is None
    assert board["pairs"] == []
    assert "0.754 (runner)" in leaderboard_markdown(board)


def test_load_run_keeps_the_primary_variant(two_runs: tuple[Path, Path]) -> None:
    info = load_run(two_runs[0])
    assert info.models == ["counting"] and info.variant == "original"
    assert set(info.preds["variant"]) == {"original"}


def test_verdict_reads_the_tests() -> None:
    interval = {"difference": 0.1, "low": -0.05, "high": 0.2}
    pair = {
        "bootstrap": {"f1": interval, "auc": interval},
        "delong": {"p": 0.5, "difference": 0.1},
        "mcnemar": {"p": 1.0, "b": 2, "c": 2},
        "reason": None,
    }
    assert _verdict(pair) == "not distinguishable"
    pair["delong"] = {"p": 0.01, "difference": 0.1}
    assert _verdict(pair) == "better (AUC, DeLong p < 0.05)"
    pair["mcnemar"] = {"p": 0.01, "b": 0, "c": 9}
    assert _verdict(pair).startswith("mixed (better: AUC")
    no_pair = {"bootstrap": None, "reason": "no track scored by both models"}
    assert _verdict(no_pair) == "not comparable (no track scored by both models)"


def test_leaderboard_command(tmp_path: Path) -> None:
    """Two runs of one folder bench merge through the CLI; runs of different splits are refused
    with one line naming the field, exit code 2."""
    from tests.test_cli import cli, folder_bench

    bench = folder_bench(tmp_path / "bench", n=2, broken=False)
    dirs = []
    for model, split in (("counting", "all"), ("fakeprint", "all"), ("counting", "test")):
        done = cli("run", "--bench", f"folder:{bench}", "--models", model, "--split", split,
                   "--workers", "0", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        dirs.append(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    done = cli("leaderboard", dirs[0], dirs[1], "--out", "board", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert (tmp_path / "board" / "leaderboard.html").is_file()
    assert sorted(row["model"] for row in board["ranking"]) == ["counting", "fakeprint"]
    done = cli("leaderboard", dirs[0], dirs[2], cwd=tmp_path)
    assert done.returncode == 2 and "split differs" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = cli("leaderboard", "no-such-run", cwd=tmp_path)
    assert done.returncode == 2 and "not a run directory" in done.stderr


def test_a_run_without_the_contract_metadata_is_refused_with_how_to_rewrite_it(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(two_runs[0], old)
    path = old / "predictions.parquet"
    table = pq.read_table(path)
    data = json.loads(table.schema.metadata[META_KEY])
    for name in ("bench_fingerprint", "written_utc"):
        del data[name]
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(data)}), path)
    with pytest.raises(PredictionsError, match="bench_fingerprint, written_utc.*rerun the same"):
        load_run(old)
