"""ArtifactBench streamed (`--bench artifactbench:hub`) against fetched first (`fetch bench`,
then `--bench artifactbench`), over HTTP from a Hub on 127.0.0.1, on real-length recordings.

    python benchmarks/streaming.py [--tracks 24] [--model artifactnet-open-demo]

The recordings closest to 3 minutes of Debian's `wesnoth-1.16-music` (Vorbis; installed when
missing) are written as ArtifactBench parquet shards (the audio embedded, 4 rows a row group)
and served by the tests' local Hub (`tests/hub_server.py`; the real Hub is not reachable here).
Each command runs in a fresh process with an empty cache and score store; the table gives its
wall time, the peak resident memory of its process tree, and the bytes the Hub served to it.
`open` is the time to list the bench (for the fetched path it follows the whole download):
what a run waits before its first track can decode. `rerun` is the streamed run again, every
track answered by the store.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_loop import measured, music_files  # noqa: E402

from tests.hub_server import LocalHub  # noqa: E402

REPO = "intrect/artifactbench"
AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SUBSETS = ("aime_musicgen_small", "real_fma")
ROWS_PER_SHARD = 8
ROW_GROUP = 4


def shards(paths: list[Path]) -> dict[str, bytes]:
    """The recordings as parquet shards, alternately an AI and a real subset."""
    files = {}
    for first in range(0, len(paths), ROWS_PER_SHARD):
        part = paths[first : first + ROWS_PER_SHARD]
        ids = [f"{first + i:04d}-{p.stem}" for i, p in enumerate(part)]
        table = pa.table({
            "track_id": ids,
            "audio": pa.array([{"bytes": p.read_bytes(), "path": p.name} for p in part], AUDIO),
            "source": [SUBSETS[(first + i) % 2] for i in range(len(part))],
            "label": [("ai", "real")[(first + i) % 2] for i in range(len(part))],
        })  # fmt: skip
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=ROW_GROUP)
        count = (len(paths) + ROWS_PER_SHARD - 1) // ROWS_PER_SHARD
        files[f"data/test-{first // ROWS_PER_SHARD:05d}-of-{count:05d}.parquet"] = buffer.getvalue()
    return files


def served_bytes(hub: LocalHub, since: int) -> int:
    """Bytes of file content the Hub sent after log entry `since` (ranged or whole)."""
    total = 0
    for entry in hub.log[since:]:
        if entry.method != "GET" or not entry.path.startswith("/blobs/"):
            continue
        size = len(hub.blobs[entry.path.removeprefix("/blobs/")])
        wanted = re.match(r"bytes=(\d+)-(\d*)", entry.range or "")
        if wanted is None:
            total += size
        else:
            end = int(wanted.group(2)) if wanted.group(2) else size - 1
            total += min(end, size - 1) - int(wanted.group(1)) + 1
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=24)
    parser.add_argument("--model", default="artifactnet-open-demo")
    args = parser.parse_args()
    paths = music_files(args.tracks)
    files = shards(paths)
    total = sum(len(v) for v in files.values())
    cli = [sys.executable, "-m", "artifactbench"]
    run = ["run", "--models", args.model, "--split", "all", "--workers", "1"]
    lister = "from artifactbench.benches import open_bench, BenchOptions; import sys; " \
             "print(len(open_bench(sys.argv[1]).tracks))"  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, LocalHub() as hub:
        hub.commit("dataset", REPO, files)
        rows = []

        def measure(name: str, cmd: list[str], cache: str) -> None:
            env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "ARTIFACTBENCH_CACHE": cache,
                   "HF_HOME": f"{cache}/hf"}  # fmt: skip
            env.pop("HF_HUB_OFFLINE", None)
            since = len(hub.log)
            seconds, peak, *_ = measured(cmd, env)
            rows.append((name, seconds, peak / 2**20, served_bytes(hub, since) / 2**20))

        fetched, streamed = f"{scratch}/fetched", f"{scratch}/streamed"
        measure("fetch bench artifactbench", [*cli, "fetch", "bench", "artifactbench"], fetched)
        measure("open artifactbench (fetched)", [sys.executable, "-c", lister, "artifactbench"],
                fetched)  # fmt: skip
        measure("run --bench artifactbench", [*cli, *run, "--bench", "artifactbench",
                "--out", f"{scratch}/runs"], fetched)  # fmt: skip
        measure("open artifactbench:hub", [sys.executable, "-c", lister, "artifactbench:hub"],
                streamed)  # fmt: skip
        measure("run --bench artifactbench:hub", [*cli, *run, "--bench", "artifactbench:hub",
                "--out", f"{scratch}/runs"], streamed)  # fmt: skip
        measure("rerun --bench artifactbench:hub", [*cli, *run, "--bench", "artifactbench:hub",
                "--out", f"{scratch}/runs"], streamed)  # fmt: skip
    minutes = sum(_seconds(p) for p in paths) / 60
    print(f"{len(paths)} recordings, {minutes:.1f} min of audio, {len(files)} shards, "
          f"{total / 2**20:.1f} MiB; model {args.model}; {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| command | wall s | peak RSS MiB | served MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, peak, served in rows:
        print(f"| {name} | {seconds:.1f} | {peak:.0f} | {served:.1f} |")


def _seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1e6


if __name__ == "__main__":
    main()
