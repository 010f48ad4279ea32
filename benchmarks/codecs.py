"""Codec robustness cost on the demo bench: decode once, encode + decode each codec once.

    python benchmarks/codecs.py [--n-per-source 4] [--workers 1]

Prints the source decode time per track, the encode + decode round trip time per track for each
codec of `artifactbench codec`, and an end-to-end `codec` run with fakeprint (every codec, every
track, empty store) next to the sum of its parts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-source", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from artifactbench.audio.decode import PROTOCOL_RATE, decode_audio
    from artifactbench.audio.transforms import CODECS, Codec
    from artifactbench.benches.base import cohort
    from artifactbench.benches.demo import load_demo_bench
    from artifactbench.detectors.registry import resolve_models
    from artifactbench.runner import RunOptions, run

    bench = load_demo_bench()
    tracks = cohort(bench.select("test"), args.n_per_source, seed=0)
    start = time.perf_counter()
    buffers = [decode_audio(t.read_bytes()) for t in tracks]
    decode_s = (time.perf_counter() - start) / len(tracks)
    seconds_audio = float(np.mean([len(b) / PROTOCOL_RATE for b in buffers]))
    rows = [("source decode (once per track)", f"{1000 * decode_s:.1f} ms")]
    total = decode_s
    for name in CODECS:
        codec = Codec(name)
        start = time.perf_counter()
        for i, buffer in enumerate(buffers):
            codec.apply(buffer, PROTOCOL_RATE, seed=0, key=str(i))
        per_track = (time.perf_counter() - start) / len(buffers)
        total += per_track
        rows.append((f"{name} encode + decode", f"{1000 * per_track:.1f} ms"))
    rows.append(("all codecs, sum per track", f"{1000 * total:.1f} ms"))

    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(
            out=Path(tmp), workers=args.workers, n_per_source=args.n_per_source,
            chains=[[Codec(name)] for name in CODECS],
        )  # fmt: skip
        models = resolve_models("fakeprint")
        run(bench, models, RunOptions(out=Path(tmp) / "warm", workers=0, limit=1))  # fit once
        start = time.perf_counter()
        result = run(bench, models, options)
        wall = time.perf_counter() - start
    rows.append((
        f"codec run, fakeprint, {len(CODECS)} codecs, {result.n_tracks} tracks",
        f"{wall:.1f} s ({1000 * wall / result.n_tracks:.0f} ms per track, "
        f"{args.workers} decode worker(s))",
    ))  # fmt: skip
    print(f"{len(tracks)} demo test tracks ({args.n_per_source} per subset), "
          f"{seconds_audio:.1f} s of audio each on average\n")  # fmt: skip
    print("| measure | per track |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
