"""Local engine versus the Ray engine on this machine, and an estimate for N machines.

    python benchmarks/ray_engine.py [--models fakeprint,artifactnet-open-demo] [--limit 48]
                                    [--device cuda --num-gpus 0.5]

Both engines score the same seeded sample of the demo bench's test split into empty stores, and
how far Ray's predictions are from the local engine's is printed (zero, where they agree).
Then the per-track costs are measured on one core each (decode, and every model at one thread,
as a Ray actor with --num-cpus 1 runs it), and the throughput of a cluster of N machines is
estimated from them: every track costs its decode plus each model's inference in core-seconds,
so N machines of C cores finish at most N * C / (decode + sum of models) tracks a second; the
Ray run measured here says how much of that ideal one machine reaches. Both are printed, with
the time for the SONICS test split: an estimate, not a measurement (for CPU actors only).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artifactbench.audio.decode import DecodeLimits
from artifactbench.audio.pool import decode_track
from artifactbench.benches import open_bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.runner import RayOptions, RunOptions, limit_tracks, load_models, ray_engine, run
from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore

SONICS_TEST_TRACKS = 23_288


def one_core_costs(
    bench: object, cards: list, tracks: list, options: RunOptions
) -> tuple[float, dict[str, float], float]:
    """Seconds per track to decode and to score with each model at one thread, and the views'
    megabytes per track (what travels from a decode task to the actors)."""
    import torch

    torch.set_num_threads(1)
    detectors, _ = load_models(cards, bench, options)  # type: ignore[arg-type]
    specs = list(dict.fromkeys(d.card.view for d in detectors))
    start = time.perf_counter()
    decoded = [decode_track(i, t, specs, DecodeLimits()) for i, t in enumerate(tracks)]
    decode_s = (time.perf_counter() - start) / len(tracks)
    views = [d.views for d in decoded if d.views is not None]
    megabytes = float(np.mean([sum(v.nbytes for v in vs) for vs in views])) / 1e6
    model_s = {}
    for det in detectors:
        index = specs.index(det.card.view)
        start = time.perf_counter()
        for i in range(0, len(views), options.batch_size):
            det.score([vs[index] for vs in views[i : i + options.batch_size]])
        model_s[det.card.id] = (time.perf_counter() - start) / len(views)
    torch.set_num_threads(os.cpu_count() or 1)
    return decode_s, model_s, megabytes


def store_rows_per_second(path: Path, n: int = 20_000, batch: int = 16) -> float:
    """How fast the driver commits answers, batch by batch: the one serial step of a cluster run."""
    key = ScoreKey("bench", "w", "p")
    row = ScoreRow(0.5, "scored", None, None, 0.01)
    with ScoreStore(path) as store:
        start = time.perf_counter()
        for i in range(0, n, batch):
            store.write([(key, f"{j:064d}", row) for j in range(i, i + batch)])
        return n / (time.perf_counter() - start)


def compare(local_dir: Path, ray_dir: Path) -> str:
    """How far the Ray run's predictions are from the local run's, track for track."""
    keys = ["model", "variant", "track_id"]
    a = pd.read_parquet(local_dir / "predictions.parquet").set_index(keys).sort_index()
    b = pd.read_parquet(ray_dir / "predictions.parquet").set_index(keys).sort_index()
    if not a.index.equals(b.index):
        return "different track sets"
    gap = float(np.nanmax(np.abs(a["prob"].to_numpy() - b["prob"].to_numpy()), initial=0.0))
    verdicts = int(((a["prob"] >= 0.5) != (b["prob"] >= 0.5)).sum())
    statuses = int((a["status"] != b["status"]).sum())
    return f"max |P(AI) difference| {gap:.2e}, verdicts differing {verdicts}, statuses {statuses}"


def cluster_start_seconds() -> float:
    ray = ray_engine.ray_module()
    start = time.perf_counter()
    ray_engine.connect(ray, RayOptions(), n_models=2)
    ray.shutdown()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fakeprint,artifactnet-open-demo")
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cores-per-machine", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--network-gbit", type=float, default=10.0, help="link per machine")
    parser.add_argument("--cost-tracks", type=int, default=48, help="tracks timed one by one")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (then give --num-gpus)")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor")
    args = parser.parse_args()

    bench = open_bench("demo")
    cards = resolve_models(args.models)
    tracks = limit_tracks(bench.select("test"), args.limit, 0)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        common = {"limit": args.limit, "batch_size": args.batch_size, "device": args.device}
        warm = RunOptions(out=root / "warm", workers=0, limit=1, device=args.device)
        run(bench, cards, warm)  # fits bench-fitted models once, so neither engine pays for it
        local = run(bench, cards, RunOptions(out=root / "local", workers=max(1, cores - 1),
                                             **common))  # fmt: skip
        actors = RayOptions(num_gpus=args.num_gpus)
        on_ray = run(bench, cards, RunOptions(out=root / "ray", engine="ray", ray=actors, **common))
        disagreement = compare(local.run_dir, on_ray.run_dir)
        start_s = cluster_start_seconds()
        timed = tracks[: args.cost_tracks]
        decode_s, model_s, megabytes = one_core_costs(bench, cards, timed, warm)
        rows_s = store_rows_per_second(root / "store.sqlite")

    n = len(tracks)
    print(f"demo test split, {n} tracks, models: {args.models}; {cores} cores\n")
    print("| engine | wall | tracks/s | detector calls |\n| --- | --- | --- | --- |")
    for name, result in (("local", local), ("ray (local cluster)", on_ray)):
        print(f"| {name} | {result.seconds:.1f} s | {n / result.seconds:.2f} | "
              f"{result.detector_calls} |")  # fmt: skip
    print(f"\nRay versus local, same tracks: {disagreement}")
    print(f"Ray cluster start and shutdown alone: {start_s:.1f} s")
    per_track = decode_s + sum(model_s.values())
    where = "at one thread" if args.device == "cpu" else f"on {args.device}"
    print(f"\nper-track cost {where}, over {len(timed)} tracks (seconds of one core or device):")
    print(f"  decode: {decode_s * 1000:.0f} ms; views sent to the actors: {megabytes:.1f} MB")
    for model, seconds in model_s.items():
        print(f"  {model}: {seconds * 1000:.0f} ms")
    print(f"  sum: {per_track * 1000:.0f} ms; driver commits {rows_s:,.0f} answers/s")

    if args.device != "cpu":
        return  # the estimate below is for CPU actors
    cpm = args.cores_per_machine
    # Decoded views go from a decode task to each pool in turn: in the worst case every hop
    # crosses the network, so each machine's link carries megabytes x pools per track it scores.
    link_tracks = args.network_gbit * 1e9 / 8 / (megabytes * 1e6 * len(cards))
    print(
        f"  network: each machine's {args.network_gbit:g} Gbit/s link carries at most "
        f"{link_tracks:.0f} tracks/s ({megabytes:.1f} MB to each of {len(cards)} pools)"
    )
    ideal_here = min(cores / per_track, rows_s / len(cards))
    efficiency = (n / on_ray.seconds) / ideal_here
    print(f"\nestimate for machines of {cpm} cores (CPU actors, --num-cpus 1): 'ideal' keeps every")
    print("core in a model actor; 'measured efficiency' scales it by what the Ray run on this")
    print(f"machine reached of its own ideal ({efficiency:.2f}), decode and the driver included.")
    print("| machines | cores | tracks/s, ideal | tracks/s, measured efficiency | "
          f"SONICS test split ({SONICS_TEST_TRACKS:,} tracks) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for machines in (1, 2, 4, 8, 16, 32):
        ideal = min(machines * min(cpm / per_track, link_tracks), rows_s / len(cards))
        slow = ideal * efficiency
        hours = [(SONICS_TEST_TRACKS / rate + start_s) / 3600 for rate in (ideal, slow)]
        print(f"| {machines} | {machines * cpm} | {ideal:.2f} | {slow:.2f} | "
              f"{hours[0]:.2f} to {hours[1]:.2f} h |")  # fmt: skip


if __name__ == "__main__":
    main()
