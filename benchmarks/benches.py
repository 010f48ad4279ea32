"""Cost of a bench source: wall time and peak memory to list its tracks (and to stream shards).

    python benchmarks/benches.py [--repeats 3] [--only NAME ...]

Prints a markdown table, one row per measure. A measure prepares its data once in a scratch
folder, then runs in a fresh process so that the peak resident memory it reports is its own:
`peak RSS` is that process's high-water mark, `RSS growth` how far listing raised it above the
mark left by the imports, and `traced peak` the peak of Python allocations (tracemalloc, numpy and
pandas buffers included) during one listing. Time is the median of the repeats.

To add a measure, write a `prepare_*` (builds the data, returns a one-line description) and a
`list_*` (lists it, returns the track count), and register them in `MEASURES`.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from artifactbench.benches import BenchOptions
from artifactbench.benches.sonics import load_sonics_bench

SONICS_TEST_REAL = 10_510
SONICS_TEST_FAKE = 12_778
SONICS_ALGORITHMS = ("chirp-v2-xxl-alpha", "chirp-v3", "chirp-v3.5", "udio-30s", "udio-120s")
SONICS_COLUMNS = [
    "filename", "title", "artist", "year", "lyrics", "duration", "youtube_id", "label",
    "artist_overlap", "target", "skip_time", "no_vocal", "split", "filepath", "id", "algorithm",
    "style", "bit_rate", "source", "lyrics_feature", "topic", "genre", "mood",
]  # fmt: skip


@dataclass(frozen=True)
class Measure:
    """One row of the table: how to build its data and how to list it."""

    prepare: Callable[[Path], str]
    list_tracks: Callable[[Path], int]


def prepare_sonics_test_split(work: Path) -> str:
    """The official SONICS test split's size with the release's columns and full-length lyrics
    (the bulk of the real CSV), reals first as data_split.py writes them; no audio on disk."""
    work.mkdir(parents=True, exist_ok=True)
    verse = "\n".join(f"line {k} of a verse, with words that a song would sing" for k in range(40))
    with open(work / "test.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SONICS_COLUMNS, restval="")
        writer.writeheader()
        for i in range(SONICS_TEST_REAL):
            writer.writerow(
                {
                    "filename": f"real_{i:05d}",
                    "title": f"Song {i}",
                    "artist": f"Artist {i % 997}",
                    "year": "2015.0",
                    "lyrics": f"[Verse {i}]\n{verse}",
                    "duration": f"{120 + i % 120}.084",
                    "youtube_id": f"yt{i:09d}",
                    "label": "real",
                    "artist_overlap": str(i % 3 == 0),
                    "target": "0",
                    "skip_time": "12.5",
                    "no_vocal": "False",
                    "split": "test",
                    "filepath": f"../SONICS/real_songs/real_{i:05d}.mp3",
                }
            )
        for i in range(SONICS_TEST_FAKE):
            writer.writerow(
                {
                    "filename": f"fake_{i:05d}",
                    "title": f"Generated {i}",
                    "lyrics": f"[Verse {i}]\n{verse}",
                    "duration": f"{30 + i % 90}.0",
                    "label": ("full fake", "half fake", "mostly fake")[i % 3],
                    "target": "1",
                    "no_vocal": "False",
                    "split": "test",
                    "filepath": f"../SONICS/fake_songs/fake_{i:05d}.mp3",
                    "id": str(i),
                    "algorithm": SONICS_ALGORITHMS[i % len(SONICS_ALGORITHMS)],
                    "style": "pop, upbeat",
                }
            )
    size = (work / "test.csv").stat().st_size / 2**20
    rows = SONICS_TEST_REAL + SONICS_TEST_FAKE
    return f"SONICS test.csv, {rows:,} rows ({SONICS_TEST_FAKE:,} AI), {size:.0f} MiB, no audio"


def list_sonics_test_split(work: Path) -> int:
    return len(load_sonics_bench(work, BenchOptions()).tracks)


STREAM_ROWS = 2_000
STREAM_BLOB = 256 * 1024
STREAM_ROW_GROUP = 100  # what `datasets` writes for audio features


def prepare_artifactbench_shards(work: Path) -> str:
    """2,000 HF-shaped rows of incompressible 256 KiB audio blobs in 100-row row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from artifactbench.benches.catalog import AI_SUBSETS

    rng = np.random.default_rng(0)
    audio = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    work.mkdir(parents=True)
    per_shard = 500
    for shard in range(STREAM_ROWS // per_shard):
        ids = [f"t{shard}-{i:04d}" for i in range(per_shard)]
        blobs = [{"bytes": rng.bytes(STREAM_BLOB), "path": f"{t}.mp3"} for t in ids]
        table = pa.table({
            "track_id": ids,
            "audio": pa.array(blobs, type=audio),
            "source": [AI_SUBSETS[i % len(AI_SUBSETS)] for i in range(per_shard)],
            "generator": ["gen"] * per_shard,
            "format": ["mp3"] * per_shard,
        })  # fmt: skip
        pq.write_table(table, work / f"train-{shard:05d}.parquet", row_group_size=STREAM_ROW_GROUP)
    total = STREAM_ROWS * STREAM_BLOB / 2**20
    return f"{STREAM_ROWS:,} shard rows, {total:.0f} MiB of audio, read track by track"


def stream_artifactbench_shards(work: Path) -> int:
    from artifactbench.benches.artifactbench import load_artifactbench

    tracks = load_artifactbench(work, BenchOptions()).tracks
    return sum(1 for t in tracks if len(t.read_bytes()) == STREAM_BLOB)


MEASURES: dict[str, Measure] = {
    "sonics:PATH test split": Measure(prepare_sonics_test_split, list_sonics_test_split),
    "artifactbench:PATH stream": Measure(prepare_artifactbench_shards, stream_artifactbench_shards),
}


def _peak_rss_mib() -> float:
    """This process's high-water mark (VmHWM): unlike ru_maxrss it does not inherit the parent's
    peak across fork + exec, so a big `prepare` in the parent cannot inflate it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_measure(name: str, work: Path, repeats: int) -> dict[str, float]:
    """Runs in the child process: time, RSS growth and traced peak of one measure."""
    measure = MEASURES[name]
    before = _peak_rss_mib()
    start = time.perf_counter()
    tracks = measure.list_tracks(work)
    seconds = [time.perf_counter() - start]
    peak = _peak_rss_mib()
    for _ in range(repeats - 1):
        start = time.perf_counter()
        measure.list_tracks(work)
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    measure.list_tracks(work)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "tracks": tracks,
        "seconds": statistics.median(seconds),
        "traced_mib": traced,
        "rss_mib": peak,
        "rss_growth_mib": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(MEASURES), default=list(MEASURES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_measure(args.child, args.work, args.repeats)))
        return
    print(f"repeats: {args.repeats} (time is the median); each measure in a fresh process\n")
    print("| measure | data | tracks | seconds | traced peak MiB | peak RSS MiB | RSS growth MiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="artifactbench-benches-") as scratch:
        for i, name in enumerate(args.only):
            work = Path(scratch) / str(i)
            data = MEASURES[name].prepare(work)
            child = [sys.executable, __file__, "--child", name, "--work", str(work)]
            out = subprocess.run(
                [*child, "--repeats", str(args.repeats)], capture_output=True, text=True
            )
            if out.returncode != 0:
                raise SystemExit(f"{name} failed:\n{out.stderr}")
            r = json.loads(out.stdout)
            print(
                f"| {name} | {data} | {r['tracks']:,} | {r['seconds']:.3f} | "
                f"{r['traced_mib']:.0f} | {r['rss_mib']:.0f} | {r['rss_growth_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
