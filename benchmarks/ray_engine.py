"""Local engine versus the Ray engine, measured: one machine, then a cluster of 1, 2 and 3 nodes.

    python benchmarks/ray_engine.py [--models fakeprint,artifactnet-open-demo]
                                    [--tracks-per-subset 44] [--node-tracks 96]

The bench is the demo bench generated with `--tracks-per-subset` tracks in each of its 12
subsets (44: 528 tracks, both splits scored; generated once into the cache). Both engines score
it into empty stores, after one warm-up run that fits fakeprint on the train split so neither
pays for it. Printed per engine: wall time, scoring time (first to last answer, from run.json),
tracks/s over each, CPU utilisation of the machine while the run lasted (from /proc/stat, every
process included: Ray's own daemons too), the machine's peak memory above its level before the
run, and Ray's ratio to local.

Then a cluster simulated on this machine (`ray.cluster_utils.Cluster`: a head that runs nothing
and N worker nodes, each with its own raylet and object store) runs the first `--node-tracks`
tracks on 1, 2 and 3 nodes, and prints each pool's answers per node. The nodes share this
machine's cores, so the point is that work spreads over nodes, not that it gets faster.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.benches.base import Bench
from artifactbench.benches.demo import load_demo_bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.paths import cache_dir
from artifactbench.runner import RayOptions, RunOptions, run


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine since boot, in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def used_memory() -> int:
    """Bytes of memory in use on the machine (all processes, Ray's object store included)."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) * 1024


def timed_run(bench: Bench, cards: list, options: RunOptions) -> dict[str, Any]:
    """One run, with its figures: wall and scoring seconds, utilisation, the machine's peak
    memory above what it used before the run (sampled every 0.1 s), and run.json."""
    base, peak, stop = used_memory(), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], used_memory() - base)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    busy0, total0 = cpu_jiffies()
    start = time.perf_counter()
    try:
        result = run(bench, cards, options)
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    busy1, total1 = cpu_jiffies()
    record = json.loads((result.run_dir / "run.json").read_text())
    line = record["timeline"]
    stamps = [pd.Timestamp(line[k]) for k in ("first_answer", "last_answer")]
    return {
        "result": result,
        "record": record,
        "wall": wall,
        "scoring": (stamps[1] - stamps[0]).total_seconds(),
        "utilisation": (busy1 - busy0) / max(1, total1 - total0),
        "memory": peak[0] / 1024**3,
    }


def max_difference(a_dir: Path, b_dir: Path) -> tuple[float, int]:
    """Largest |P(AI)| difference track for track, and how many statuses differ."""
    keys = ["model", "variant", "track_id"]
    a = pd.read_parquet(a_dir / "predictions.parquet").set_index(keys).sort_index()
    b = pd.read_parquet(b_dir / "predictions.parquet").set_index(keys).sort_index()
    assert a.index.equals(b.index), "the engines scored different tracks"
    gap = float(np.nanmax(np.abs(a["prob"].to_numpy() - b["prob"].to_numpy()), initial=0.0))
    return gap, int((a["status"] != b["status"]).sum())


def pools(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m: d["provenance"].get("ray_pool", {}) for m, d in record["detectors"].items()}


def one_machine(bench: Bench, cards: list, root: Path, batch_size: int) -> None:
    n = len(bench.select("all"))
    cores = os.cpu_count() or 1
    common = {"split": "all", "batch_size": batch_size}
    runs = {
        "local": timed_run(bench, cards, RunOptions(out=root / "local",
                                                    workers=max(1, cores - 1), **common)),
        "ray": timed_run(bench, cards, RunOptions(out=root / "ray", engine="ray", **common)),
    }  # fmt: skip
    gap, statuses = max_difference(runs["local"]["result"].run_dir, runs["ray"]["result"].run_dir)
    print(f"## One machine: {n} demo tracks, {cores} cores, batch size {batch_size}\n")
    print("| engine | wall s | tracks/s (wall) | scoring s | tracks/s (scoring) | CPU use | "
          "peak memory |\n| --- | --: | --: | --: | --: | --: | --: |")  # fmt: skip
    for name, r in runs.items():
        rates = f"{n / r['wall']:.2f} | {r['scoring']:.1f} | {n / r['scoring']:.2f}"
        print(f"| {name} | {r['wall']:.1f} | {rates} | {r['utilisation']:.0%} | "
              f"{r['memory']:.2f} GiB |")  # fmt: skip
    local, ray = runs["local"], runs["ray"]
    print(f"\nRay / local: {local['wall'] / ray['wall']:.2f}x over the wall time, "
          f"{local['scoring'] / ray['scoring']:.2f}x over the scoring time")  # fmt: skip
    print(f"predictions: max |P(AI) difference| {gap:.2e}, statuses differing {statuses}")
    for model, pool in pools(ray["record"]).items():
        print(f"ray pool {model}: {pool['actors_peak']} actor(s) at most, "
              f"{pool['seconds_per_track']} s a track per actor")  # fmt: skip


def on_nodes(bench: Bench, cards: list, root: Path, batch_size: int, node_tracks: int) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cores = os.cpu_count() or 1
    print(f"\n## A cluster on this machine: the first {node_tracks} tracks on 1, 2 and 3 nodes\n")
    print("| nodes | CPUs a node | wall s | tracks/s | peak memory | answers per node, per pool |")
    print("| --: | --: | --: | --: | --: | --- |")
    for nodes in (1, 2, 3):
        per_node = max(3, round(2 * (cores + len(cards)) / nodes))  # every pool + decoding fits
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(nodes):
            cluster.add_node(num_cpus=per_node)
        cluster.wait_for_nodes()
        try:
            options = RunOptions(out=root / f"nodes-{nodes}", engine="ray", split="all",
                                 batch_size=batch_size, limit=node_tracks,
                                 ray=RayOptions(address=cluster.address))  # fmt: skip
            r = timed_run(bench, cards, options)
        finally:
            ray.shutdown()
            cluster.shutdown()
        counts = "; ".join(
            f"{model}: " + " / ".join(str(v) for v in pool["answers_per_node"].values())
            for model, pool in pools(r["record"]).items()
        )
        print(f"| {nodes} | {per_node} | {r['wall']:.1f} | {node_tracks / r['wall']:.2f} | "
              f"{r['memory']:.2f} GiB | {counts} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fakeprint,artifactnet-open-demo")
    parser.add_argument("--tracks-per-subset", type=int, default=44)
    parser.add_argument("--node-tracks", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    root_bench = cache_dir() / "benchmarks" / f"demo-{args.tracks_per_subset}"
    bench = load_demo_bench(root=root_bench, tracks_per_subset=args.tracks_per_subset)
    cards = resolve_models(args.models)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run(bench, cards, RunOptions(out=root / "warm", workers=0, limit=1))  # fits fakeprint
        one_machine(bench, cards, root, args.batch_size)
        on_nodes(bench, cards, root, args.batch_size, args.node_tracks)
    print("\npeak memory: the machine's memory in use above its level before each run, all "
          "processes (Ray's object store and daemons included)")  # fmt: skip


if __name__ == "__main__":
    main()
