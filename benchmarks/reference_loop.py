"""A naive reference loop against `artifactbench run`, on the same real-length tracks and models.

    python benchmarks/reference_loop.py [--tracks 6] [--repeats 2] [--threads 1]

The loop is what a user writes first: for each track, decode it inline, cut the detector's view,
run the model one chunk at a time (batch 1, `--threads` threads, no graph optimisation for
ONNX), keep no cache. It runs per model, so two models decode every track twice. The harness
runs the same tracks end to end (start-up, decode workers, scoring, store, predictions, reports)
in a fresh output directory. Both run as child processes, alternating, `--repeats` times each;
the table shows the best time of each, tracks/s, their ratio, the peak resident memory of the
whole process tree (sampled every 50 ms), the largest |dP| between the two, and for the harness
the time from launch to its first committed answer and from its last answer to exit (start-up
and reports, from run.json's timeline).

Cases: (a) the open ArtifactNet exported to ONNX (`artifactbench export artifactnet-open`),
(b) fakeprint + the open ArtifactNet (torch), where decoding once pays, the loop calling the
model through the torch graph the model is trained and exported with (`reference_path()`, what
the authors' style of code runs), and (c) the same with the loop calling the model as shipped,
so that it gets the CPU inference path too and only the harness's own work is compared.

Tracks: the real recordings (Vorbis) closest to 3 minutes from Debian's `wesnoth-1.16-music`,
installed with apt-get when missing (benchmarks may fetch; tests never do).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

MUSIC_PACKAGE = "wesnoth-1.16-music"
MUSIC_DIR = Path("/usr/share/games/wesnoth/1.16/data/core/music")


def music_files(n: int) -> list[Path]:
    """The `n` real recordings closest to 3 minutes, installing the Debian package if missing."""
    if not MUSIC_DIR.is_dir():
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", MUSIC_PACKAGE], check=True)
    import av

    lengths = {}
    for path in sorted(MUSIC_DIR.glob("*.ogg")):
        with av.open(str(path)) as container:
            lengths[path] = float(container.duration or 0) / 1e6
    chosen = sorted(lengths, key=lambda p: (abs(lengths[p] - 180.0), p.name))[:n]
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} recordings in {MUSIC_DIR}")
    return sorted(chosen)


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, float, float]:
    """Wall seconds, peak process-tree RSS and stdout of one command, and when (Unix time) it
    was launched and had exited."""
    launched = time.time()
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
        out.seek(0)
        return seconds, peak, out.read(), launched, time.time()


# The loop itself: runs in a child process (`--loop`), prints {"path": {"model": P(AI)}} as JSON.


def _loop(
    paths: list[str],
    models: list[str],
    onnx: str | None,
    fit: str | None,
    threads: int,
    reference: bool,
) -> None:
    import contextlib

    import torch

    from artifactbench.audio.decode import decode_audio, detector_view
    from artifactbench.detectors.artifactnet_open.features import reference_path
    from artifactbench.detectors.registry import cards

    torch.set_num_threads(threads)
    registry = cards()
    scorers = {}
    for model in models:
        if model == "artifactnet":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name

            def chunk_prob(chunk: np.ndarray, session=session, name=name) -> float:
                return float(np.asarray(session.run(None, {name: chunk[None]})[0]).reshape(-1)[0])

            scorers[model] = (registry["artifactnet"].view, chunk_prob, True)
        elif model == "artifactnet-open-demo":
            from artifactbench.assets import packaged_dir
            from artifactbench.detectors.artifactnet_open.detector import read_weights

            net = read_weights(packaged_dir() / "artifactnet_open.pt")[0].eval()

            def chunk_prob(chunk: np.ndarray, net=net) -> float:
                graph = reference_path() if reference else contextlib.nullcontext()
                with torch.inference_mode(), graph:
                    return float(net(torch.from_numpy(chunk[None]))[0])

            scorers[model] = (registry[model].view, chunk_prob, True)
        elif model == "fakeprint":
            from artifactbench.detectors.fakeprint import FakeprintDetector, FakeprintFit

            detector = FakeprintDetector(registry[model], FakeprintFit.from_file(Path(fit)), {})
            scorers[model] = (registry[model].view, lambda v, d=detector: d.score([v])[0], False)
    answers: dict[str, dict[str, float]] = {}
    for model, (spec, score, chunked) in scorers.items():
        for path in paths:
            view = detector_view(decode_audio(path), spec)
            if chunked:
                prob = float(np.median([score(np.ascontiguousarray(c)) for c in view]))
            else:
                prob = float(score(view))
            answers.setdefault(path, {})[model] = prob
    print(json.dumps(answers))


def _harness_probs(run_dir: Path) -> dict[str, dict[str, float]]:
    import pandas as pd

    preds = pd.read_parquet(run_dir / "predictions.parquet")
    out: dict[str, dict[str, float]] = {}
    for row in preds.itertuples():
        out.setdefault(str(row.track_id), {})[str(row.model)] = float(row.prob)
    return out


def _bench_folder(paths: list[Path], root: Path) -> Path:
    """A folder bench of links to the recordings: half under ai/, half under real/."""
    for i, path in enumerate(paths):
        label = "ai" if i % 2 == 0 else "real"
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / path.name).symlink_to(path)
    return root


def compare(case: str, paths: list[Path], loop_args: list[str], run_args: list[str],
            repeats: int, tmp: Path, env: dict[str, str]) -> dict[str, object]:  # fmt: skip
    """Best-of-`repeats` loop and harness, alternating; their peak memory and largest |dP|."""
    py = sys.executable
    loop_cmd = [py, __file__, "--loop", *loop_args, "--paths", *map(str, paths)]
    loops, runs = [], []
    loop_probs: dict[str, dict[str, float]] = {}
    run_probs: dict[str, dict[str, float]] = {}
    for r in range(repeats):
        seconds, peak, text, _, _ = measured(loop_cmd, env)
        loops.append((seconds, peak))
        loop_probs = json.loads(text.strip().splitlines()[-1])
        out = tmp / f"{case}-runs-{r}"
        seconds, peak, text, launched, exited = measured(
            [py, "-m", "artifactbench", "run", *run_args, "--out", str(out)], env
        )
        run_dir = out / text.strip().splitlines()[-1].removeprefix("run directory: ").split("/")[-1]
        timeline = json.loads((run_dir / "run.json").read_text())["timeline"]
        first = datetime.fromisoformat(timeline["first_answer"]).timestamp()
        last = datetime.fromisoformat(timeline["last_answer"]).timestamp()
        runs.append((seconds, peak, first - launched, exited - last))
        run_probs = _harness_probs(run_dir)
    by_name = {Path(p).name: models for p, models in loop_probs.items()}
    diffs = [
        abs(by_name[Path(track).name][m] - p)
        for track, ms in run_probs.items()
        for m, p in ms.items()
    ]
    loop_s = min(s for s, _ in loops)
    run_s, _, startup, tail = min(runs)
    n = len(paths)
    return {
        "case": case, "tracks": n, "loop_s": loop_s, "run_s": run_s,
        "loop_tps": n / loop_s, "run_tps": n / run_s, "speedup": loop_s / run_s,
        "loop_rss": max(p for _, p in loops), "run_rss": max(r[1] for r in runs),
        "max_dp": max(diffs), "startup": startup, "tail": tail,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads of the naive loop")
    parser.add_argument("--cases", default="a,b,c")
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--fit", help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        _loop(args.paths, args.models.split(","), args.onnx, args.fit, args.threads, args.reference)
        return

    paths = music_files(args.tracks)
    env = dict(os.environ)
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bench = _bench_folder(paths, tmp / "bench")
        common = ["--bench", f"folder:{bench}", "--split", "all"]
        minutes = [float(__import__("av").open(str(p)).duration) / 60e6 for p in paths]
        print(
            f"{len(paths)} recordings from {MUSIC_PACKAGE}, {min(minutes):.1f}-"
            f"{max(minutes):.1f} min (mean {np.mean(minutes):.1f}); {os.cpu_count()} cores"
        )
        if "a" in args.cases:
            onnx = tmp / "open.onnx"
            subprocess.run([py, "-m", "artifactbench", "export", "artifactnet-open", "--onnx",
                            str(onnx)], check=True, env=env, capture_output=True)  # fmt: skip
            rows.append(compare(
                "(a) open ArtifactNet, ONNX", paths,
                ["--models", "artifactnet", "--onnx", str(onnx), "--threads", str(args.threads)],
                [*common, "--models", "artifactnet", "--weights", str(onnx)],
                args.repeats, tmp, env,
            ))  # fmt: skip
        if "b" in args.cases or "c" in args.cases:
            # The fit on the demo bench's train split, made once and cached before timing.
            warm = subprocess.run(
                [py, "-m", "artifactbench", "run", *common, "--models", "fakeprint",
                 "--fit-on", "demo", "--out", str(tmp / "fit")],
                check=True, env=env, capture_output=True, text=True,
            )  # fmt: skip
            run_dir = tmp / "fit" / warm.stdout.strip().splitlines()[-1].split("/")[-1]
            record = json.loads((run_dir / "run.json").read_text())
            fit = record["detectors"]["fakeprint"]["provenance"]["path"]
            loop_args = ["--models", "artifactnet-open-demo,fakeprint", "--fit", fit,
                         "--threads", str(args.threads)]  # fmt: skip
            run_args = [*common, "--models", "fakeprint,artifactnet-open-demo", "--fit-on", "demo"]
            if "b" in args.cases:
                rows.append(compare(
                    "(b) fakeprint + open ArtifactNet, loop on the torch graph", paths,
                    [*loop_args, "--reference"], run_args, args.repeats, tmp, env,
                ))  # fmt: skip
            if "c" in args.cases:
                rows.append(compare(
                    "(c) fakeprint + open ArtifactNet, loop on the inference path", paths,
                    loop_args, run_args, args.repeats, tmp, env,
                ))  # fmt: skip
    gib = 2**30
    print(f"\nbest of {args.repeats}, alternating; loop at {args.threads} thread(s)\n")
    print(
        "| case | tracks | loop s | loop tracks/s | loop peak RSS | run s | run tracks/s "
        "| run peak RSS | run / loop speed | max abs dP | run: to first answer "
        "| run: last answer to exit |"
    )
    print("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
    for r in rows:
        print(
            f"| {r['case']} | {r['tracks']} | {r['loop_s']:.1f} | {r['loop_tps']:.3f} | "
            f"{r['loop_rss'] / gib:.2f} GiB | {r['run_s']:.1f} | {r['run_tps']:.3f} | "
            f"{r['run_rss'] / gib:.2f} GiB | {r['speedup']:.2f}x | {r['max_dp']:.1e} | "
            f"{r['startup']:.1f} s | {r['tail']:.1f} s |"
        )


if __name__ == "__main__":
    main()
