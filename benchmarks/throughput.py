"""Throughput of the harness on the demo bench: decode-only, detector-only, end to end, rerun.

    python benchmarks/throughput.py [--models fakeprint] [--split test] [--workers N]

Prints a markdown table. End to end overlaps decoding (worker processes) with scoring (this
process), so its floor is the slower of the two; a rerun must make zero detector calls. Peak
memory is measured in a fresh process per run size to show it does not grow with the track count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from artifactbench.audio.pool import decode_stream
from artifactbench.benches import open_bench
from artifactbench.benches.demo import build_demo_bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.runner import RunOptions, load_models, run


def decode_only(tracks: list, specs: list, workers: int) -> tuple[float, list]:
    start = time.perf_counter()
    views = [d.views for d in decode_stream(list(enumerate(tracks)), specs, workers)]
    return time.perf_counter() - start, views


def detector_only(detectors: list, views: list, batch_size: int) -> float:
    start = time.perf_counter()
    for j, det in enumerate(detectors):
        usable = [v[j] for v in views if v is not None]
        for i in range(0, len(usable), batch_size):
            det.score(usable[i : i + batch_size])
    return time.perf_counter() - start


def peak_rss_mib(args: list[str], env: dict[str, str]) -> float:
    """Peak resident memory of a fresh `artifactbench run` process and its decode workers."""
    code = (
        "import resource, subprocess, sys;"
        f"subprocess.run({[sys.executable, '-m', 'artifactbench', *args]!r}, check=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fakeprint")
    parser.add_argument("--split", default="test")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-generate", action="store_true", help="don't time generation")
    args = parser.parse_args()

    generate_s = None
    if not args.skip_generate:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            build_demo_bench(Path(tmp) / "demo", workers=os.cpu_count() or 2)
            generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bench = open_bench("demo")
    bench_seconds = time.perf_counter() - t0
    tracks = bench.select(args.split)
    cards = resolve_models(args.models)
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(split=args.split, workers=args.workers, batch_size=args.batch_size,
                             out=Path(tmp) / "runs")  # fmt: skip
        detectors, _ = load_models(cards, bench, options)  # fits once; later loads hit the cache
        specs = []
        for det in detectors:
            if det.card.view not in specs:
                specs.append(det.card.view)
        decode_s, views = decode_only(tracks, specs, args.workers)
        aligned = [None if v is None else [v[specs.index(d.card.view)] for d in detectors]
                   for v in views]  # fmt: skip
        detect_s = detector_only(detectors, aligned, args.batch_size)
        del views, aligned
        first = run(bench, cards, options)
        second = run(bench, cards, options)
        floor = max(decode_s, detect_s)
        env = {**os.environ}
        base = ["run", "--models", args.models, "--workers", str(args.workers)]
        mem = {}
        for label, extra in (("48 tracks", ["--limit", "48"]), (f"{len(tracks)} tracks", []),
                             (f"{len(bench.tracks)} tracks", ["--split", "all"])):  # fmt: skip
            out = Path(tmp) / f"mem-{len(mem)}"
            split = [] if "--split" in extra else ["--split", args.split]
            mem[label] = peak_rss_mib([*base, *split, *extra, "--out", str(out)], env)

    rows = [
        ("tracks scored", f"{len(tracks)} ({args.split} split, models: {args.models})"),
        (
            "demo bench generation (288 tracks, from scratch)",
            "skipped" if generate_s is None else f"{generate_s:.1f} s",
        ),
        ("demo bench load (cached)", f"{bench_seconds:.2f} s"),
        (f"decode only ({args.workers} worker process(es))", f"{decode_s:.2f} s"),
        ("detector only (views in memory)", f"{detect_s:.2f} s"),
        ("end to end, empty store", f"{first.seconds:.2f} s"),
        ("end to end / max(decode, detector)", f"{first.seconds / floor:.2f}x"),
        ("second identical run", f"{second.seconds:.2f} s, {second.detector_calls} detector calls"),
    ]
    rows += [(f"peak RSS, fresh run of {k}", f"{v:.0f} MiB") for k, v in mem.items()]
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(json.dumps({"cpu_count": os.cpu_count(), "maxrss_self_mib":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))  # fmt: skip


if __name__ == "__main__":
    main()
