"""Wall time, CPU time and peak memory of the commands a user runs first, each in a fresh process.

    python benchmarks/commands.py [--only TEXT] [--skip-train]

Each command runs as a child process in an empty working directory, with the demo bench already
in a fresh cache (built first if missing, untimed) and nothing else in it: the quick start fits
fakeprint as a first run does. Peak memory is the resident set of the whole process tree (decode
workers included), sampled every 50 ms; CPU time is the children's user + system time. The ONNX
rows score the exported open ArtifactNet on 48 demo tracks at batch sizes 4 and 64, then 96 at
1000, to show that memory follows neither the batch nor the number of tracks.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reference_loop import tree_rss  # noqa: E402

GIB = 2**30


def measure(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak process-tree RSS of `artifactbench ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "artifactbench", *args]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed:\n{err.read()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the rows whose label has this text")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()

    from artifactbench.benches import open_bench
    from artifactbench.paths import cache_dir

    open_bench("demo")  # the demo bench is cached before anything is timed
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # A cache with the demo bench and nothing else: the quick start fits fakeprint, as a
        # first run does, and the user's own cache is left as it is.
        cache = tmp / "cache"
        cache.mkdir()
        for entry in cache_dir().glob("demo-*"):
            (cache / entry.name).symlink_to(entry)
        os.environ["ARTIFACTBENCH_CACHE"] = str(cache)
        onnx = tmp / "open.onnx"
        commands: list[tuple[str, list[str]]] = [
            ("quick start: run --models all --split test", ["run", "--models", "all",
             "--split", "test"]),
            ("export artifactnet-open --onnx open.onnx", ["export", "artifactnet-open", "--onnx",
             str(onnx)]),
            ("run --models artifactnet --weights open.onnx --limit 48 --batch-size 4", ["run",
             "--models", "artifactnet", "--weights", str(onnx), "--split", "test", "--limit",
             "48", "--batch-size", "4"]),
            ("run --models artifactnet --weights open.onnx --limit 48 --batch-size 64", ["run",
             "--models", "artifactnet", "--weights", str(onnx), "--split", "test", "--limit",
             "48", "--batch-size", "64"]),
            ("run --models artifactnet --weights open.onnx --limit 96 --batch-size 1000", ["run",
             "--models", "artifactnet", "--weights", str(onnx), "--split", "all", "--limit",
             "96", "--batch-size", "1000"]),
            ("ablate mel_H", ["ablate", "mel_H"]),
            ("train artifactnet-open --small", ["train", "artifactnet-open", "--small",
             "--out", str(tmp / "trained")]),
        ]  # fmt: skip
        rows = []
        for label, argv in commands:
            if args.only not in label:
                continue
            if args.skip_train and argv[0] == "train":
                continue
            cwd = tmp / f"cwd-{len(rows)}"
            cwd.mkdir()
            wall, cpu, peak = measure(argv, cwd)
            rows.append((label, wall, cpu, peak))
            print(f"{label}: {wall:.1f} s, {cpu:.0f} s CPU, {peak / GIB:.2f} GiB", flush=True)
    print(f"\n{os.cpu_count()} cores; peak RSS of the process tree\n")
    print("| command | wall | CPU | peak RSS |")
    print("| --- | --: | --: | --: |")
    for label, wall, cpu, peak in rows:
        print(f"| `{label}` | {wall:.1f} s | {cpu:.0f} s | {peak / GIB:.2f} GiB |")


if __name__ == "__main__":
    main()
