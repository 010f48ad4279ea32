"""The open ArtifactNet shipped in the package: its CPU inference path against the torch graph.

    python benchmarks/open_artifactnet.py [--threads 1 2] [--limit N] [--synthetic] [--no-onnx]
                                          [--train]

Prints one markdown table. For each thread count: chunks/s of the torch graph of training and
export (`reference_path()`, the path every score took before the inference path existed) and
of the CPU inference path on the same batches, timed alternately batch by batch so that load
from other processes hits both alike, and the speed-up; then the largest |P(AI)| difference
between the two over every chunk timed. By default the chunks are the demo bench's test
split (8 seeded tracks x 7 chunks of 4 s; `--limit 0` takes all 144), or with `--synthetic`
generated 4 s chunks (tones, noise, clicks, near-silence) that need no bench. Unless
`--no-onnx`, the ONNX export is timed in ONNX Runtime as well and checked against torch
(contract 1e-4); `--train` adds the wall time of `train artifactnet-open --bench demo --small`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

RATE = 44100
WIDTH = 176400
CHUNKS_PER_TRACK = 7


def synthetic_views(n_tracks: int, seed: int = 0) -> list[np.ndarray]:
    """Tracks of 7 generated 4 s chunks each: tone mixtures, noise, clicks, faint and loud."""
    rng = np.random.default_rng(seed)
    t = np.arange(WIDTH) / RATE
    views = []
    for _ in range(n_tracks):
        chunks = []
        for _ in range(CHUNKS_PER_TRACK):
            freqs = rng.uniform(50.0, 8000.0, rng.integers(1, 6))
            tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
            audio = 0.3 * tones / len(freqs) + rng.uniform(0.0, 0.2) * rng.standard_normal(WIDTH)
            audio[:: int(rng.integers(RATE // 16, RATE))] += rng.uniform(0.0, 1.0)
            audio *= 10.0 ** rng.uniform(-4.0, 0.0)
            chunks.append(np.clip(audio, -1.0, 1.0))
        views.append(np.stack(chunks).astype(np.float32))
    return views


def demo_views(limit: int | None) -> list[np.ndarray]:
    """The demo bench's test split (built on first use) as the runner decodes it."""
    from artifactbench.audio.pool import decode_stream
    from artifactbench.benches.demo import load_demo_bench
    from artifactbench.detectors.registry import cards
    from artifactbench.runner import limit_tracks

    tracks = limit_tracks(load_demo_bench().select("test"), limit, seed=0)
    view = cards()["artifactnet"].view
    return [d.views[0] for d in decode_stream(list(enumerate(tracks)), [view], 1) if d.views]


def compare_paths(
    model: nn.Module, chunks: np.ndarray, batch: int
) -> tuple[float, float, np.ndarray]:
    """(seconds of the torch graph, seconds of the inference path, |dP| per chunk), each batch
    run by both paths in turn after one untimed warm-up batch of each."""
    import torch

    from artifactbench.detectors.artifactnet_open.features import reference_path

    batches = [torch.from_numpy(chunks[i : i + batch]) for i in range(0, len(chunks), batch)]
    reference_s = inference_s = 0.0
    diffs = []
    with torch.inference_mode():
        with reference_path():
            model(batches[0])
        model(batches[0])
        for x in batches:
            start = time.perf_counter()
            with reference_path():
                expected = model(x)
            middle = time.perf_counter()
            got = model(x)
            end = time.perf_counter()
            reference_s += middle - start
            inference_s += end - middle
            diffs.append((got.double() - expected.double()).abs().numpy())
    return reference_s, inference_s, np.concatenate(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op threads")
    parser.add_argument("--limit", type=int, default=8, help="tracks (7 chunks each); 0: all")
    parser.add_argument("--batch", type=int, default=16, help="chunks per forward pass")
    parser.add_argument("--synthetic", action="store_true", help="generated chunks, no bench")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--train", action="store_true", help="also time --small training")
    args = parser.parse_args()
    import torch

    from artifactbench.assets import packaged_dir
    from artifactbench.detectors.artifactnet_open.detector import read_weights
    from artifactbench.experiments.artifactnet_open.train import WEIGHTS_FILE

    weights = packaged_dir() / WEIGHTS_FILE
    model, _, _ = read_weights(weights)
    limit = args.limit or None
    if args.synthetic:
        views, source = synthetic_views(limit or 144), "generated 4 s chunks"
    else:
        views, source = demo_views(limit), "demo test split"
    chunks = np.concatenate(views).astype(np.float32)
    rows: list[tuple[str, str]] = [
        ("weights", f"{weights.name} (packaged, demo-only)"),
        ("chunks", f"{source}: {len(views)} tracks x 7 = {len(chunks)} chunks of 4 s, "
                   f"batches of {args.batch}"),
    ]  # fmt: skip

    worst = 0.0
    for threads in args.threads:
        torch.set_num_threads(threads)
        reference_s, inference_s, diffs = compare_paths(model, chunks, args.batch)
        worst = max(worst, float(diffs.max()))
        rows += [
            (f"torch graph (reference path), {threads} thread(s)",
             f"{len(chunks) / reference_s:.2f} chunks/s"),
            (f"CPU inference path, {threads} thread(s)",
             f"{len(chunks) / inference_s:.2f} chunks/s"),
            (f"speed-up, {threads} thread(s)", f"{reference_s / inference_s:.2f}x"),
        ]  # fmt: skip
    rows.append(
        (f"max abs(inference - torch graph) P(AI) over {len(chunks)} chunks x "
         f"{len(args.threads)} run(s)", f"{worst:.2e} (bound 1e-6)")
    )  # fmt: skip

    if args.onnx:
        rows += onnx_rows(weights, model, chunks, views, args.threads, args.batch)

    if args.train:
        from artifactbench.benches.demo import load_demo_bench
        from artifactbench.experiments.artifactnet_open.train import train

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            train(load_demo_bench(), Path(tmp), small=True, seed=0, workers=1, teacher="hpss")
            seconds = time.perf_counter() - start
            rows.append(("train --small on demo (3 phases)", f"{seconds:.0f} s"))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, CPU threads {args.threads}, {os.cpu_count()} cores, "
          f"load average {load} at the end, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}\n")  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


def onnx_rows(
    weights: Path,
    model: nn.Module,
    chunks: np.ndarray,
    views: list[np.ndarray],
    threads: list[int],
    batch: int,
) -> list[tuple[str, str]]:
    """Export time, ONNX Runtime throughput per thread count, and max |ONNX - torch|."""
    import onnxruntime

    from artifactbench.experiments.artifactnet_open.export import (
        INPUT_NAME,
        OUTPUT_NAME,
        export_onnx,
        max_difference,
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "open.onnx"
        start = time.perf_counter()
        export_onnx(weights, onnx_path)
        rows.append(("export (incl. probe check)", f"{time.perf_counter() - start:.1f} s"))
        for n in threads:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = n
            session = onnxruntime.InferenceSession(
                str(onnx_path), options, ["CPUExecutionProvider"]
            )
            start = time.perf_counter()
            for i in range(0, len(chunks), batch):
                session.run([OUTPUT_NAME], {INPUT_NAME: chunks[i : i + batch]})
            onnx_s = time.perf_counter() - start
            rows.append((f"ONNX Runtime, {n} thread(s)", f"{len(chunks) / onnx_s:.2f} chunks/s"))
        diff, n_chunks = max_difference(model, session, iter(views))
        rows.append(
            (f"max abs(ONNX - torch) over {n_chunks} chunks", f"{diff:.2e} (contract 1e-4)")
        )
    return rows


if __name__ == "__main__":
    main()
