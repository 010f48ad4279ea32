"""The open ArtifactNet shipped in the package, on the demo bench's test split.

    python benchmarks/open_artifactnet.py [--threads 2] [--limit N] [--train]

Prints one markdown table: torch and ONNX Runtime throughput on the same chunks, the largest
|ONNX - torch| difference of P(AI) over every chunk of the split (the export contract is 1e-4),
and with `--train` the wall time of `train artifactnet-open --bench demo --small`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads")
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N tracks")
    parser.add_argument("--train", action="store_true", help="also time --small training")
    args = parser.parse_args()
    import onnxruntime
    import torch

    from artifactbench.assets import packaged_dir
    from artifactbench.benches.demo import load_demo_bench
    from artifactbench.decoding import decode_stream
    from artifactbench.detectors.artifactnet_open.detector import read_weights
    from artifactbench.detectors.artifactnet_open.export import (
        INPUT_NAME,
        OUTPUT_NAME,
        export_onnx,
        max_difference,
    )
    from artifactbench.detectors.artifactnet_open.train import WEIGHTS_FILE, train
    from artifactbench.detectors.registry import cards
    from artifactbench.runner import limit_tracks

    torch.set_num_threads(args.threads)
    weights = packaged_dir() / WEIGHTS_FILE
    model, _, _ = read_weights(weights)
    bench = load_demo_bench()
    tracks = limit_tracks(bench.select("test"), args.limit, seed=0)
    view = cards()["artifactnet"].view
    views = [d.views[0] for d in decode_stream(list(enumerate(tracks)), [view], 1) if d.views]
    chunks = np.concatenate(views).astype(np.float32)
    rows: list[tuple[str, str]] = [
        ("weights", f"{weights.name} (packaged, demo-only)"),
        ("tracks x chunks", f"{len(views)} x 7 = {len(chunks)} chunks of 4 s"),
    ]

    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(chunks), 16):
            model(torch.from_numpy(chunks[i : i + 16]))
    torch_s = time.perf_counter() - start
    rows.append(("torch, batches of 16 chunks", f"{len(chunks) / torch_s:.1f} chunks/s"))

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "open.onnx"
        start = time.perf_counter()
        export_onnx(weights, onnx_path)
        rows.append(("export (incl. probe check)", f"{time.perf_counter() - start:.1f} s"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(onnx_path), options, ["CPUExecutionProvider"])
        start = time.perf_counter()
        for i in range(0, len(chunks), 16):
            session.run([OUTPUT_NAME], {INPUT_NAME: chunks[i : i + 16]})
        onnx_s = time.perf_counter() - start
        rows.append(("ONNX Runtime, batches of 16 chunks", f"{len(chunks) / onnx_s:.1f} chunks/s"))
        diff, n = max_difference(model, session, iter(views))
        rows.append((f"max abs(ONNX - torch) over {n} chunks", f"{diff:.2e} (contract 1e-4)"))

    if args.train:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            train(bench, Path(tmp), small=True, seed=0, workers=1, teacher="hpss")
            seconds = time.perf_counter() - start
            rows.append(("train --small on demo (3 phases)", f"{seconds:.0f} s"))

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{args.threads} thread(s)\n")  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
