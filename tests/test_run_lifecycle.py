"""A run as a person meets it: what it says while it works, a sample that keeps every subset,
a bench with nothing to fit on, Ctrl-C, and run directories that exist only when complete."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from artifactbench.audio.encode import encode_audio
from artifactbench.benches import open_bench
from artifactbench.benches.base import Bench, Track
from artifactbench.detectors.registry import resolve_models
from artifactbench.progress import LogProgress
from artifactbench.runner import Interrupted, NothingToScore, RunOptions, limit_tracks, run
from tests.conftest import RATE, music, python_cli, upsampled
from tests.test_cli import cli, folder_bench


def _options(tmp_path: Path, **kw: object) -> RunOptions:
    base = {"out": tmp_path / "runs", "workers": 0, "batch_size": 3, "split": "all"}
    return RunOptions(**{**base, **kw})  # type: ignore[arg-type]


def _metadata_bench(n_subsets: int = 12, per_subset: int = 12) -> list[Track]:
    """Tracks listed subset by subset, as benches list them (no audio is read)."""
    return [
        Track(
            f"s{s:02d}-{i:02d}",
            "meta",
            f"subset{s:02d}",
            "ai" if s % 2 else "real",
            f"subset{s:02d}",
            "test",
            path=f"/nowhere/{s}-{i}.wav",
        )  # fmt: skip
        for s in range(n_subsets)
        for i in range(per_subset)
    ]


def _plain_folder(root: Path, n: int = 3) -> Path:
    """A user's own folder: `ai/` and `real/`, no manifest, so no train split."""
    for label in ("ai", "real"):
        (root / label).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "real" / f"r{i}.flac").write_bytes(encode_audio(music(i), RATE, "flac"))
        fake = upsampled(music(100 + i), seed=i)
        (root / "ai" / f"a{i}.flac").write_bytes(encode_audio(fake, RATE, "flac"))
    return root


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


# --limit: a stratified sample


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_limit_keeps_every_subset_and_balances_them(seed: int) -> None:
    tracks = _metadata_bench()
    for limit in (12, 30, 100):
        picked = limit_tracks(tracks, limit, seed)
        counts: dict[str, int] = {}
        for t in picked:
            counts[t.subset] = counts.get(t.subset, 0) + 1
        assert len(picked) == limit
        assert len(counts) == 12, f"--limit {limit} kept {len(counts)} of 12 subsets"
        assert max(counts.values()) - min(counts.values()) <= 1
        assert picked == [t for t in tracks if t in picked], "bench order is kept"
        assert picked == limit_tracks(tracks, limit, seed)
    assert limit_tracks(tracks, 12, seed) != limit_tracks(tracks, 12, seed + 100)
    assert len({t.subset for t in limit_tracks(tracks, 5, seed)}) == 5
    assert limit_tracks(tracks, None, seed) == tracks


def test_limit_says_which_subsets_are_present_and_records_them(
    file_bench: Bench, tmp_path: Path
) -> None:
    lines: list[str] = []
    result = run(file_bench, resolve_models("counting"), _options(tmp_path, limit=2),
                 say=lines.append)  # fmt: skip
    limit = json.loads((result.run_dir / "run.json").read_text())["limit"]
    assert limit["effective"] == 2 and limit["subsets"] == ["ai_upsampled", "real_tones"]
    said = [line for line in lines if line.startswith("warning: --limit 2")]
    assert len(said) == 1 and "2 of 2 subsets present" in said[0]
    assert said[0].endswith("ai_upsampled, real_tones")


# Nothing to fit on, nothing to score


def test_a_folder_without_train_split_skips_fakeprint_says_so_and_writes_nothing(
    tmp_path: Path,
) -> None:
    folder = _plain_folder(tmp_path / "mine")
    done = cli("run", "--bench", f"folder:{folder}", "--models", "fakeprint", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("skipped fakeprint:") and "--fit-on" in lines[0]
    assert lines[-1].startswith("error: no model left to score")
    assert not (tmp_path / "runs").exists(), "nothing is written"


def test_fit_on_another_bench_then_reuse_the_fit_file(tmp_path: Path) -> None:
    folder = _plain_folder(tmp_path / "mine")
    fit_bench = folder_bench(tmp_path / "fitbench", n=4, broken=False)
    args = ["run", "--bench", f"folder:{folder}", "--models", "fakeprint"]
    done = cli(*args, "--fit-on", f"folder:{fit_bench}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1].removeprefix("run directory: ")
    assert _run_dirs(tmp_path / "runs") == [run_dir]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["fit_on"]["fingerprint"] == open_bench(f"folder:{fit_bench}").fingerprint
    provenance = record["detectors"]["fakeprint"]["provenance"]
    assert provenance["split"] == "train" and provenance["n_train_tracks"] == 4
    fit_file = Path(provenance["path"])
    assert fit_file.is_file()
    again = cli(*args, "--weights", str(fit_file), "--out", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    first = (run_dir / "metrics.json").read_text()
    second_dir = _run_dirs(tmp_path / "again")[0]
    assert json.loads((second_dir / "metrics.json").read_text()) == json.loads(first)
    refused = cli(*args[:3], "--models", "counting", "--fit-on", "demo", cwd=tmp_path)
    assert refused.returncode == 2 and "--fit-on applies to bench-fitted models" in refused.stderr


def test_nothing_to_score_raises_before_any_file(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTING_UNAVAILABLE", "1")
    lines: list[str] = []
    with pytest.raises(NothingToScore, match="skipped: counting"):
        run(file_bench, resolve_models("counting"), _options(tmp_path), say=lines.append)
    assert lines == ["skipped counting: counting weights are not here; fix: "
                     "export COUNTING_UNAVAILABLE="]  # fmt: skip
    assert not (tmp_path / "runs").exists()


# Progress counts what the store holds


def test_progress_counts_tracks_only_once_their_answers_are_committed(
    file_bench: Bench, tmp_path: Path
) -> None:
    store = tmp_path / "runs" / "scores.sqlite"
    seen: list[tuple[int, int]] = []

    def committed_tracks() -> int:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(DISTINCT audio_sha256) FROM scores").fetchone()[0]

    def hook(label: str, total: int) -> Callable[[int], None]:
        done = 0
        if label != "scoring":  # fakeprint's fit has a bar of its own
            return lambda n: None

        def advance(n: int) -> None:
            nonlocal done
            done += n
            seen.append((done, committed_tracks()))

        return advance

    options = _options(tmp_path, batch_size=4)
    run(file_bench, resolve_models("counting,fakeprint"), options, progress=hook)
    resolvable = len(file_bench.tracks) - 1  # missing.flac has no audio to answer for
    assert seen and seen[-1][0] == len(file_bench.tracks)
    for shown, committed in seen:
        assert shown <= committed + 1, f"progress said {shown} with {committed} committed"
    opened: dict[str, int] = {}
    rerun = run(file_bench, resolve_models("counting,fakeprint"), options,
                progress=lambda label, total: opened.setdefault(label, total) and (lambda n: None),
                )  # fmt: skip
    # Only the missing file is left to do: where bytes are is looked up again on every run.
    assert rerun.detector_calls == 0 and opened["scoring"] == 1
    assert committed_tracks() == resolvable


def test_log_progress_writes_a_line_at_most_every_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    advance = LogProgress(lines.append, interval=10.0, clock=lambda: now[0])("scoring", 100)
    for _ in range(99):
        now[0] += 1.0
        advance(1)
    assert lines[0] == "scoring: 0/100"
    assert len(lines) == 1 + 9, lines  # at t = 10, 20, ..., 90 s
    assert lines[1] == "scoring: 10/100 (1.00/s, ETA 0:01:30)"
    now[0] += 1.0
    advance(1)
    assert lines[-1] == "scoring: 100/100 (1.00/s, ETA 0:00:00)"


def test_run_in_a_log_prints_plain_progress_lines(tmp_path: Path) -> None:
    bench = folder_bench(tmp_path / "bench", n=2, broken=False)
    done = cli("run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "scoring: 0/4" in lines and any(line.startswith("scoring: 4/4 (") for line in lines)
    assert "\x1b[" not in done.stderr, "no terminal control codes in a log"
    again = cli("run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
                cwd=tmp_path)  # fmt: skip
    assert "all 4 tracks answered by the store" in again.stderr.splitlines()


# Ctrl-C, SIGTERM and run directories that appear only complete


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_is_one_line_exit_130_no_run_directory_and_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    bench = folder_bench(tmp_path / "bench", n=8, broken=False)
    log = tmp_path / "calls.log"
    env = {**os.environ, "COUNTING_LOG": str(log), "COUNTING_SLEEP": "0.6"}
    args = ["run", "--bench", f"folder:{bench}", "--models", "counting", "--split", "all",
            "--batch-size", "2", "--workers", "1"]  # fmt: skip
    # As from a terminal: Ctrl-C not ignored, even when this test runs as a background job
    # (whose shell makes SIGINT ignored, and children inherit that).
    proc = subprocess.Popen([*python_cli(), *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_sigint_default)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(_lines(log)) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C does: the whole process group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    said = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    kept = len(_lines(log))
    assert 4 <= kept < 16, "the signal must land midway"
    store = (tmp_path / "runs" / "scores.sqlite").resolve()
    assert len(said) == 1 and said[0].endswith(
        f"answers kept in {store}; rerun the same command to resume"
    ), stderr
    answers = int(said[0].split()[1])
    with sqlite3.connect(store) as db:
        assert answers == db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] > 0
    assert _run_dirs(tmp_path / "runs") == [], "an interrupted run leaves no run directory"
    done = cli(*args, cwd=tmp_path, env={"COUNTING_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    calls = _lines(log)
    assert len(calls) == 16 and len(set(calls)) == 16, "resumed: every view scored exactly once"


def test_interrupt_while_reports_are_written_leaves_no_run_directory(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import artifactbench.reports as reports

    def half_written(_predictions: Path, out_dir: Path, seed: int | None = None) -> None:
        (out_dir / "roc.png").write_bytes(b"\x89PNG truncated")
        raise KeyboardInterrupt

    complete = reports.write_reports
    monkeypatch.setattr(reports, "write_reports", half_written)
    with pytest.raises(Interrupted) as caught:
        run(file_bench, resolve_models("counting"), _options(tmp_path))
    assert caught.value.answers == len(file_bench.tracks) - 1  # all but the missing file
    assert _run_dirs(tmp_path / "runs") == []
    monkeypatch.setattr(reports, "write_reports", complete)
    result = run(file_bench, resolve_models("counting"), _options(tmp_path))
    assert result.detector_calls == 0 and result.run_dir.is_dir()
    assert _run_dirs(tmp_path / "runs") == [result.run_dir]


def test_commands_refuse_a_partial_run_directory(file_bench: Bench, tmp_path: Path) -> None:
    result = run(file_bench, resolve_models("counting"), _options(tmp_path))
    partial = result.run_dir.with_name(result.run_dir.name + "-later.partial")
    partial.mkdir()
    (partial / "predictions.parquet").write_bytes(
        (result.run_dir / "predictions.parquet").read_bytes()
    )
    os.utime(partial / "predictions.parquet")  # newer than the complete run
    for args in (["sanity", str(partial)], ["report", str(partial)],
                 ["leaderboard", str(partial), "--out", "board"]):  # fmt: skip
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and "incomplete run directory" in done.stderr
    latest = cli("sanity", "--runs", str(tmp_path / "runs"), cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr
    assert "Sanity protocol" in latest.stdout


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_rebuild_interrupted_midway_leaves_every_report_file_whole(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    from artifactbench.reports import write_reports

    result = run(file_bench, resolve_models("counting"), _options(tmp_path))
    before = {p.name: p.read_bytes() for p in result.run_dir.iterdir()}

    def torn(self: Figure, path: Path, **_kw: object) -> None:
        Path(path).write_bytes(b"\x89PNG torn")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", torn)
    with pytest.raises(KeyboardInterrupt):
        write_reports(result.run_dir / "predictions.parquet", result.run_dir)
    after = {p.name: p.read_bytes() for p in result.run_dir.iterdir()}
    assert after == before, "no file torn, no temporary file left"
