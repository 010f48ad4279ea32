"""The runner end to end on real files: every track a row, failures recorded, reruns free."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.benches.base import Bench
from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import read_predictions
from artifactbench.runner import RunOptions, limit_tracks, run

CONTRACT = ["run.json", "predictions.parquet", "metrics.json", "sanity.json", "sanity.md",
            "report.md", "roc.png", "f1_threshold.png"]  # fmt: skip


def _options(tmp_path: Path, **kw: object) -> RunOptions:
    base = {"out": tmp_path / "runs", "workers": 0, "batch_size": 3, "split": "all"}
    return RunOptions(**{**base, **kw})  # type: ignore[arg-type]


def _log_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_run_writes_the_contract_and_records_every_failure(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTING_LOG", str(tmp_path / "calls.log"))
    result = run(file_bench, resolve_models("counting,fakeprint"), _options(tmp_path))
    for name in CONTRACT:
        assert (result.run_dir / name).is_file(), name
    preds, meta = read_predictions(result.run_dir / "predictions.parquet")
    assert len(preds) == 2 * len(file_bench.tracks)
    assert preds.groupby("model").track_id.nunique().tolist() == [len(file_bench.tracks)] * 2
    by = preds.set_index(["model", "track_id"])
    for model in ("counting", "fakeprint"):
        assert by.loc[(model, "missing.flac"), "stage"] == "resolve"
        assert by.loc[(model, "garbage.mp3"), "stage"] == "decode"
        assert "not a decodable audio file" in by.loc[(model, "garbage.mp3"), "error"]
    assert by.loc[("counting", "quiet.wav"), "stage"] == "inference"
    assert "too loud" in by.loc[("counting", "loud.wav"), "error"]
    scored = preds[preds.status == "scored"]
    assert scored.prob.between(0, 1).all()
    assert (preds.status == "failed").eq(preds.prob.isna()).all()
    assert meta["subsets"]["ai_upsampled"]["bound"] == 0.6
    run_json = json.loads((result.run_dir / "run.json").read_text())
    fit = run_json["detectors"]["fakeprint"]["provenance"]
    assert fit["source"] == "fitted now" and fit["split"] == "train"
    assert fit["n_train_tracks"] == len(file_bench.select("train"))


def test_rerun_makes_no_detector_call_and_gives_identical_predictions(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("COUNTING_LOG", str(log))
    cards = resolve_models("counting,fakeprint")
    first = run(file_bench, cards, _options(tmp_path))
    calls = len(_log_lines(log))
    second = run(file_bench, cards, _options(tmp_path))
    assert second.detector_calls == 0
    assert len(_log_lines(log)) == calls
    a = pd.read_parquet(first.run_dir / "predictions.parquet")
    b = pd.read_parquet(second.run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)
    provenance = json.loads((second.run_dir / "run.json").read_text())["detectors"]["fakeprint"]
    assert provenance["provenance"]["source"] == "cached fit"


def test_a_batch_also_ends_where_its_views_fill_half_the_memory_budget(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import artifactbench.runner.local_engine as engine

    sizes: list[int] = []
    original = engine.score_batch

    def spy(detector, batch):  # type: ignore[no-untyped-def]
        sizes.append(len(batch))
        return original(detector, batch)

    monkeypatch.setattr(engine, "score_batch", spy)
    cards = resolve_models("counting")
    whole = run(file_bench, cards, _options(tmp_path / "whole", batch_size=1000))
    assert len(sizes) == 1 and sizes[0] > 1  # every decodable track in one batch
    views = sizes[0]
    sizes.clear()
    # A budget whose half holds no more than one track's views: one track a batch.
    tight = run(file_bench, cards, _options(tmp_path / "tight", batch_size=1000, memory_budget=2))
    assert sizes == [1] * views
    a = pd.read_parquet(whole.run_dir / "predictions.parquet")
    b = pd.read_parquet(tight.run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_identical_audio_is_scored_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import make_file_bench

    bench = make_file_bench(tmp_path / "a", n_per_class=2)
    twin = make_file_bench(tmp_path / "b", n_per_class=2)
    both = Bench("twins", "fp", bench.subsets,
                 bench.tracks + [t.__class__(**{**t.__dict__, "track_id": "b/" + t.track_id})
                                 for t in twin.tracks])  # fmt: skip
    log = tmp_path / "calls.log"
    monkeypatch.setenv("COUNTING_LOG", str(log))
    run(both, resolve_models("counting"), _options(tmp_path))
    hashes = _log_lines(log)
    assert len(hashes) == len(set(hashes))


def test_limit_is_a_seeded_sample_recorded_in_run_json(file_bench: Bench, tmp_path: Path) -> None:
    picked = limit_tracks(file_bench.tracks, 5, seed=3)
    assert picked == limit_tracks(file_bench.tracks, 5, seed=3)
    assert picked != limit_tracks(file_bench.tracks, 5, seed=4)
    result = run(file_bench, resolve_models("counting"), _options(tmp_path, limit=5, seed=3))
    limit = json.loads((result.run_dir / "run.json").read_text())["limit"]
    assert limit == {"requested": 5, "original": len(file_bench.tracks), "effective": 5,
                     "subsets": ["ai_upsampled", "real_tones"]}  # fmt: skip
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    assert sorted(preds.track_id) == sorted(t.track_id for t in picked)


def test_unavailable_model_is_skipped_with_its_fix_or_raised_when_strict(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTING_UNAVAILABLE", "1")
    everything = resolve_models("all")
    assert {"fakeprint", "counting", "artifactnet-open-demo"} <= {c.id for c in everything}
    cards = [c for c in everything if c.id != "artifactnet-open-demo"]  # shipped; slow on CPU
    result = run(file_bench, cards, _options(tmp_path))
    assert result.models == ["fakeprint"]
    hints = {s.model: s.hint for s in result.skipped}
    assert hints.pop("counting") == "export COUNTING_UNAVAILABLE="
    for model, hint in hints.items():  # published detectors whose weights are not fetched here
        assert hint.startswith(f"artifactbench fetch model {model}"), hint
    skipped = json.loads((result.run_dir / "run.json").read_text())["skipped"]
    assert skipped["counting"]["fix"] == "export COUNTING_UNAVAILABLE="
    with pytest.raises(Unavailable):
        run(file_bench, cards, _options(tmp_path, strict=True))


def test_parallel_decode_gives_the_same_predictions(file_bench: Bench, tmp_path: Path) -> None:
    cards = resolve_models("counting")
    serial = run(file_bench, cards, _options(tmp_path / "serial", workers=0))
    parallel = run(file_bench, cards, _options(tmp_path / "parallel", workers=2))
    a = pd.read_parquet(serial.run_dir / "predictions.parquet")
    b = pd.read_parquet(parallel.run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_each_decode_worker_starts_with_one_track_then_takes_pairs() -> None:
    from artifactbench.audio.pool import worker_tasks

    items = [(i, f"track-{i}") for i in range(9)]
    tasks = worker_tasks(items, workers=2, chunk=2)  # type: ignore[arg-type]
    assert [[i for i, _ in task] for task in tasks] == [[0], [1], [2, 3], [4, 5], [6, 7], [8]]
    assert worker_tasks(items[:1], workers=4, chunk=2) == [[items[0]]]  # type: ignore[arg-type]


def test_broken_corpus_costs_one_row_each_and_the_rest_is_scored(
    file_bench: Bench, tmp_path: Path
) -> None:
    from artifactbench.benches.base import Track
    from tests.test_audio import BROKEN

    root = tmp_path / "broken"
    root.mkdir()
    broken = []
    for name, (build, _) in sorted(BROKEN.items()):
        path = root / f"{name}.bin"
        path.write_bytes(build())
        broken.append(Track(name, "files", "real_tones", "real", "real", "test", path=str(path)))
    good = [t for t in file_bench.tracks if t.track_id.startswith(("real", "ai"))]
    bench = Bench("mixed", "fp-mixed", file_bench.subsets, good + broken)
    result = run(bench, resolve_models("counting"), _options(tmp_path))
    preds = pd.read_parquet(result.run_dir / "predictions.parquet").set_index("track_id")
    for name, (_, pattern) in BROKEN.items():
        row = preds.loc[name]
        assert (row.status, row.stage) == ("failed", "decode"), name
        assert re.search(pattern, row.error), (name, row.error)
        assert "\n" not in row.error
    assert (preds.loc[[t.track_id for t in good], "status"] == "scored").all()


@pytest.mark.parametrize("prob", [float("nan"), float("inf"), -0.01, 1.5, None])
def test_a_score_that_is_not_a_probability_is_an_inference_failure(prob: float | None) -> None:
    from artifactbench.runner import score_row

    row = score_row(prob, 0.1)
    assert (row.status, row.stage, row.prob) == ("failed", "inference", None)
    assert score_row(0.0, 0.1).status == score_row(1.0, 0.1).status == "scored"


def test_n_per_source_draws_the_same_cohort_for_every_model(
    file_bench: Bench, tmp_path: Path
) -> None:
    from artifactbench.benches.base import cohort

    options = _options(tmp_path, n_per_source=2, seed=7)
    result = run(file_bench, resolve_models("counting,fakeprint"), options)
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    per_model = preds.groupby("model").track_id.apply(frozenset)
    assert per_model["counting"] == per_model["fakeprint"]
    assert preds[preds.model == "counting"].subset.value_counts().tolist() == [2, 2]
    expected = {t.track_id for t in cohort(file_bench.tracks, 2, 7)}
    assert set(per_model["counting"]) == expected
    assert {t.track_id for t in cohort(file_bench.tracks, 2, 8)} != expected
    run_json = json.loads((result.run_dir / "run.json").read_text())
    assert run_json["cohort"] == {"n_per_source": 2, "seed": 7}


def test_a_model_note_is_kept_and_explains_a_non_finite_score() -> None:
    from artifactbench.detectors.base import Scored
    from artifactbench.runner import score_row

    kept = score_row(Scored(0.7, "2 of 7 chunks non-finite, excluded"), 0.1)
    assert (kept.status, kept.prob, kept.note) == (
        "scored",
        0.7,
        "2 of 7 chunks non-finite, excluded",
    )
    failed = score_row(Scored(float("nan"), "all 7 chunks non-finite"), 0.1)
    assert (failed.status, failed.stage, failed.error) == (
        "failed",
        "inference",
        "all 7 chunks non-finite",
    )


def test_a_model_that_fails_to_load_is_skipped_not_the_run(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTING_BROKEN", "1")
    cards = resolve_models("counting,fakeprint")
    result = run(file_bench, cards, _options(tmp_path))
    assert result.models == ["fakeprint"]
    (skip,) = result.skipped
    assert skip.model == "counting"
    assert skip.reason == "counting failed to load: RuntimeError: checkpoint is corrupt"
    with pytest.raises(Unavailable, match="checkpoint is corrupt"):
        run(file_bench, cards, _options(tmp_path, strict=True))
