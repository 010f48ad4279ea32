"""The command line as a user meets it: exit codes, one-line errors, resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from artifactbench.audio.encode import encode_audio
from tests.conftest import RATE, music, python_cli, upsampled
from tests.test_sonics_bench import split_release  # noqa: F401 - a fixture


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*python_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def folder_bench(root: Path, n: int = 6, broken: bool = True) -> Path:
    """A `folder:` bench with a manifest: real tones and upsampled tones, train and test."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        origin = "train" if i % 2 == 0 else "test"
        (root / f"real{i}.flac").write_bytes(encode_audio(music(i), RATE, "flac"))
        (root / f"ai{i}.mp3").write_bytes(
            encode_audio(upsampled(music(100 + i), seed=i), RATE, "mp3", 128000)
        )
        rows.append([f"real{i}.flac", "real", "real_tones", origin])
        rows.append([f"ai{i}.mp3", "ai", "ai_upsampled", origin])
    if broken:
        (root / "broken.mp3").write_bytes(b"ID3" + b"\x00" * 300)
        rows.append(["broken.mp3", "ai", "ai_upsampled", "test"])
        rows.append(["gone.flac", "real", "real_tones", "test"])
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "subset", "bench_origin"])
        writer.writerows(rows)
    return root


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--split", "foo"], "'train', 'valid', 'test', 'all'"),
        (["run", "--models", "fakeprnt"], "did you mean 'fakeprint'"),
        (["run", "--bench", "dmo"], "choose from: demo, folder:PATH"),
        (["run", "--bench", "folder:/no/such/dir"], "bench folder not found"),
        (["run", "--limit", "0"], "--limit"),
        (["run", "--nope"], "No such option: --nope"),
        (["frobnicate"], "Commands: run, codec, sanity, report, score"),
        (["report", "/no/such/run"], "not a run directory"),
        (["score", "x.wav", "--model", "nope"], "choose from: artifactnet-open-demo, "),
        (["fetch", "model", "fakeprint"], "fetch one model with published weights"),
        (["fetch", "bench", "sonics"], "choose from: artifactbench"),
        (["ablate", "mel_HP"], "choose from: all, bounded-mask, mel_res, mel_H"),
        (["train", "artifactnet-open", "--teacher", "x"], "'auto', 'demucs', 'hpss'"),
        (["ablate", "mel_H", "--unbounded-weights", "x.pt"], "goes with bounded-mask only"),
    ],
)
def test_wrong_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert needle in lines[0]
    assert "Traceback" not in done.stderr


def test_run_then_sanity_and_report_rebuild_identically(tmp_path: Path) -> None:
    bench = folder_bench(tmp_path / "bench")
    done = cli("run", "--bench", f"folder:{bench}", "--models", "fakeprint", "--split", "all",
               "--workers", "1", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    assert "FAIL / N" in done.stdout and "ETA" in done.stderr
    before = {p: (run_dir / p).read_bytes() for p in
              ("metrics.json", "sanity.json", "sanity.md", "report.md")}  # fmt: skip
    for p in before:
        (run_dir / p).unlink()
    (run_dir / "roc.png").unlink()
    rebuilt = cli("report", str(run_dir), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    for p, content in before.items():
        assert (run_dir / p).read_bytes() == content, p
    assert (run_dir / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    latest = cli("sanity", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr
    assert "real_tones" in latest.stdout and "FAIL" in latest.stdout


def test_score_files_one_line_each_and_nonzero_for_a_bad_file(tmp_path: Path) -> None:
    bench = folder_bench(tmp_path / "bench", broken=False)
    bad = tmp_path / "bad.wav"
    bad.write_text("this is text, not audio")
    good = [bench / "real1.flac", bench / "ai1.mp3"]
    done = cli("score", str(good[0]), str(bad), str(good[1]), "--model", "fakeprint",
               "--bench", f"folder:{bench}", "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert [r["path"] for r in records] == [str(good[0]), str(bad), str(good[1])]
    assert records[1]["prob"] is None and "not a decodable" in records[1]["error"]
    assert all(0 <= r["prob"] <= 1 and r["verdict"] in ("ai", "real") for r in records[::2])
    plain = cli("score", str(good[0]), "--model", "fakeprint", "--bench", f"folder:{bench}",
                cwd=tmp_path)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    path, prob, verdict = plain.stdout.strip().split("\t")
    assert path == str(good[0]) and float(prob) == pytest.approx(records[0]["prob"], abs=1e-4)


def test_sigkill_midway_then_rerun_scores_exactly_what_the_store_lacks(tmp_path: Path) -> None:
    """SIGKILL can land after the model answered a batch and before the store committed it:
    that batch is lost and scored again. Nothing committed is ever scored again."""
    bench = folder_bench(tmp_path / "bench", n=10, broken=False)
    log = tmp_path / "calls.log"
    env = {"COUNTING_LOG": str(log), "COUNTING_SLEEP": "0.4"}
    args = ["run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
            "--batch-size", "2", "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen([*python_cli(), *args], cwd=tmp_path, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(_lines(log)) < 6:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _no_leftover_processes(tmp_path), "decode workers outlived the killed run"
    first = _lines(log)
    assert 6 <= len(first) < 20, "the kill must land midway"
    with sqlite3.connect(tmp_path / "runs" / "scores.sqlite") as db:
        committed = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert len(first) - 2 <= committed <= len(first)  # at most the batch in flight is lost
    done = cli(*args, cwd=tmp_path, env={**env, "COUNTING_SLEEP": "0"})
    assert done.returncode == 0, done.stderr
    calls = _lines(log)
    assert len(set(calls)) == 20, "every view scored"
    assert len(calls) - len(first) == 20 - committed, "the rerun scores what the store lacks"
    run_dir = next(tmp_path.glob("runs/*/predictions.parquet")).parent
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert len(preds) == 20 and preds.track_id.is_unique and (preds.status == "scored").all()


def _no_leftover_processes(marker: Path, wait: float = 10.0) -> bool:
    """Whether every process started from `marker` (its cwd is on their sys.path) has exited."""
    deadline = time.time() + wait
    while time.time() < deadline:
        alive = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "multiprocessing" in text and str(marker) in text:
                alive.append(text)
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_run_on_a_sonics_release_keeps_its_columns_and_records_missing_songs(
    split_release: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    done = cli("run", "--bench", f"sonics:{split_release}", "--models", "counting",
               "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = next(tmp_path.glob("runs/sonics-test-*"))
    preds = pd.read_parquet(run_dir / "predictions.parquet").set_index("track_id")
    assert len(preds) == 7 and set(preds.bench_origin) == {"test"}
    assert {"fake_type", "duration", "artist_overlap"} <= set(preds.columns)
    assert preds.loc["fake_songs/fake_00002", "fake_type"] == "mostly fake"
    assert preds.loc["real_songs/real_00002", "artist_overlap"] == "unseen"
    for missing in ("real_songs/real_00004", "real_songs/real_00005"):
        assert preds.loc[missing, "stage"] == "resolve"
    assert preds.loc["real_songs/real_00002", "stage"] == "decode"
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["bench"]["source"]["kind"] == "sonics"
    assert run_json["bench"]["fingerprint"].startswith("sha256:")


def test_run_on_an_artifactbench_v1_manifest_binds_audio_and_writes_paper_tables(
    tmp_path: Path,
) -> None:
    """The published v1 manifest carries its authors' absolute paths: re-bound by --audio-root."""
    root = tmp_path / "audio"
    rows = []
    sources = {"aime_suno_v3": "ai", "mom_udio": "ai", "fma_hardneg": "real", "sonics_real": "real"}
    for k, (source, label) in enumerate(sources.items()):
        (root / source).mkdir(parents=True)
        for i in range(3):
            clip = music(10 * k + i) if label == "real" else upsampled(music(10 * k + i), seed=i)
            (root / source / f"{i}.flac").write_bytes(encode_audio(clip, RATE, "flac"))
            foreign = f"/home/authors/data/{source}/{i}.flac"
            rows.append({"track_id": f"{source}/{i}", "path": foreign, "label": label,
                         "source": source, "bench_origin": "test",
                         "generator": source})  # fmt: skip
    rows.append({"track_id": "fma_hardneg/gone", "path": "/home/authors/data/fma_hardneg/gone.mp3",
                 "label": "real", "source": "fma_hardneg", "bench_origin": "test",
                 "generator": "real"})  # fmt: skip
    manifest = tmp_path / "artifactbench_v1.json"
    manifest.write_text(json.dumps({"bench": rows, "metadata": {"version": 1}}))
    done = cli("run", "--bench", f"artifactbench:{manifest}", "--audio-root", str(root),
               "--models", "counting", "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = next(tmp_path.glob("runs/artifactbench-test-*"))
    preds = pd.read_parquet(run_dir / "predictions.parquet").set_index("track_id")
    assert len(preds) == 13 and preds.loc["fma_hardneg/gone", "stage"] == "resolve"
    assert (preds.drop(index="fma_hardneg/gone").status == "scored").all()
    source = json.loads((run_dir / "run.json").read_text())["bench"]["source"]
    assert source["form"] == "manifest-v1" and source["rows_unbound"] == 1
    report = (run_dir / "report.md").read_text()
    for heading in ("Table VI layout", "Table VII layout", "Table VIII layout", "Table IX layout"):
        assert heading in report, heading
    assert (run_dir / "paper.json").is_file()


def test_ablate_and_export_commands_on_a_trained_weights_file(tmp_path: Path) -> None:
    """`ablate CHANNEL` writes its table into a run directory; `export` gives an ONNX that the
    published-model adapter scores."""
    from tests.test_artifactnet_open_ablate import save_random_weights

    weights = save_random_weights(tmp_path / "open.pt")
    bench = folder_bench(tmp_path / "bench", n=2, broken=False)
    done = cli("ablate", "hp_ratio", "--bench", f"folder:{bench}", "--split", "all",
               "--weights", str(weights), "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = next(tmp_path.glob("runs/ablate-hp_ratio-*"))
    table = json.loads((run_dir / "ablation.json").read_text())
    assert [row["ablation"] for row in table["rows"]] == ["baseline", "hp_ratio"]
    assert table["n_tracks"] == 4 and "hp_ratio" in (run_dir / "ablation.md").read_text()
    from tests.test_artifactnet_open_ablate import TRAINING

    twin = save_random_weights(tmp_path / "twin.pt", bounded=False, meta=TRAINING)
    bounded = save_random_weights(tmp_path / "bounded.pt", meta=TRAINING)
    done = cli("ablate", "bounded-mask", "--bench", f"folder:{bench}", "--split", "all",
               "--weights", str(bounded), "--unbounded-weights", str(twin), "--workers", "0",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = json.loads(next(tmp_path.glob("runs/ablate-bounded-mask-*/ablation.json")).read_text())
    assert [row["ablation"][:9] for row in table["rows"]] == ["bounded m", "unbounded"]
    done = cli("ablate", "bounded-mask", "--bench", f"folder:{bench}", "--weights", str(weights),
               "--unbounded-weights", str(twin), "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "not trained the same way" in done.stderr
    onnx_path = tmp_path / "open.onnx"
    done = cli("export", "artifactnet-open", "--onnx", str(onnx_path), "--weights", str(weights),
               "--check-bench", f"folder:{bench}", "--check-split", "all", "--workers", "0",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 probe chunks and 28 chunks of folder:" in done.stdout
    scored = cli("score", str(bench / "ai1.mp3"), "--model", "artifactnet", "--weights",
                 str(onnx_path), "--json", cwd=tmp_path)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert 0.0 <= json.loads(scored.stdout.strip().splitlines()[-1])["prob"] <= 1.0


def test_models_details_counts_the_open_artifactnet(tmp_path: Path) -> None:
    """`models --details` prints the paper configuration's counted parameters (within 10% of the
    paper's 3.6M U-Net and 0.4M classifier) and those of the shipped demo weights."""
    done = cli("models", "--details", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    def counts(line: str) -> list[int]:
        return [int(n) for n in line.replace(",", "").split() if n.isdigit()]

    paper = next(line for line in lines if line.strip().startswith("paper:"))
    unet, classifier, total = counts(paper)
    assert abs(unet - 3.6e6) <= 0.36e6 and abs(classifier - 0.4e6) <= 0.04e6
    assert total == unet + classifier
    demo = lines.index(next(line for line in lines if line.startswith("artifactnet-open-demo\t")))
    counted = next(line for line in lines[demo:] if "counted:" in line)
    assert counts(counted) == [199113, 26385, 225498]
    assert "threshold 0.5" in done.stdout


def test_command_line_choices_are_the_library_registries() -> None:
    """Choices the command line lists are the registries' keys, so neither can drift."""
    from artifactbench.audio.transforms import CODECS
    from artifactbench.cli.experiments import Teacher
    from artifactbench.cli.scoring import Engine
    from artifactbench.experiments.artifactnet_open.train import TEACHERS
    from artifactbench.experiments.bandwidth.measure import RESIDUAL_MODELS
    from artifactbench.runner import ENGINES

    assert [e.value for e in Engine] == list(ENGINES)
    assert [t.value for t in Teacher] == list(TEACHERS)
    bandwidth = subprocess.run(
        [*python_cli(), "bandwidth", "--residual", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bandwidth.returncode == 2
    assert f"choose from: {', '.join(RESIDUAL_MODELS)}" in bandwidth.stderr
    codec = subprocess.run(
        [*python_cli(), "codec", "--codecs", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert codec.returncode == 2 and f"choose from: {', '.join(CODECS)}" in codec.stderr


def test_reproduce_and_run_recipe_refuse_in_one_line_with_what_to_do(tmp_path: Path) -> None:
    """`reproduce NAME` and `run --recipe NAME` share one path: an unknown recipe lists the
    recipes, missing assets list the fetch commands (nothing written), and only the options
    typed on the command line override a recipe (run's own defaults are not choices)."""
    from artifactbench.recipes import RECIPES

    unknown = cli("reproduce", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1, unknown.stderr
    assert all(name in unknown.stderr for name in RECIPES)
    recipes = (["reproduce", "table-vi-artifactbench"], ["run", "--recipe", "appendix-b-ablation"])
    for args in recipes:
        done = cli(*args, "--out", "out", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        assert "artifactbench fetch bench artifactbench" in line, line
        assert not (tmp_path / "out").exists()
    typed = cli("run", "--recipe", "appendix-b-ablation", "--limit", "3", cwd=tmp_path)
    assert typed.returncode == 2
    assert "recipe appendix-b-ablation takes no setting limit" in typed.stderr
    models = cli("run", "--recipe", "demo", "--models", "nope", cwd=tmp_path)
    assert models.returncode == 2 and "unknown model 'nope'" in models.stderr


@pytest.mark.parametrize("identical", [True, False])
def test_reproduce_exits_1_only_when_the_run_strays_from_its_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, identical: bool
) -> None:
    """The comparison is printed either way; a reference the run does not match is exit 1."""
    import typer

    from artifactbench import recipes
    from artifactbench.cli.experiments import run_recipe_command
    from artifactbench.recipes import RECIPES, RecipeResult, ReferenceComparison

    files = dict.fromkeys(recipes.REFERENCE_FILES, identical)
    check = ReferenceComparison("fp", "fp", files, [], [])
    result = RecipeResult(RECIPES["demo"], [tmp_path / "run"], [], "# Recipe demo: compared\n")
    result.reference = check
    monkeypatch.setattr(recipes, "run_recipe", lambda *args, **kwargs: result)
    if identical:
        run_recipe_command("demo", tmp_path, {})
    else:
        with pytest.raises(typer.Exit) as stop:
            run_recipe_command("demo", tmp_path, {})
        assert stop.value.exit_code == 1
    shown = capsys.readouterr().out
    assert "# Recipe demo: compared" in shown and f"run directory: {tmp_path / 'run'}" in shown


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    """Choices come from the registries, yet `--help` and every command's start load neither
    Arrow, pandas, SciPy, matplotlib nor torch: those come with the work that needs them."""
    heavy = ("pyarrow", "pandas", "scipy", "matplotlib", "torch", "onnxruntime", "ray")
    probe = (
        f"import sys, artifactbench.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
