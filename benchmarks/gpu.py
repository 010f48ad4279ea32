"""Detectors on a GPU: throughput, GPU use, how much decoding holds them back, and |dP| vs CPU.

    python benchmarks/gpu.py [--tracks 1000] [--batch-size 32] [--device cuda]

Three detectors, each on `--tracks` tracks of a demo bench generated for the purpose (once,
into the cache): SpecTTTra alpha-120s with seeded random weights of the published shape (18.7M
parameters), the ArtifactNet ONNX contract (the shipped open model exported to ONNX) on ONNX
Runtime's CUDA execution provider, and the open ArtifactNet in torch. For each it prints:

- end to end: a local-engine run (decode workers on every core but one, the model on the GPU),
  tracks/s and the GPU's mean utilisation while it ran (torch's NVML reading, every 0.2 s);
- decode alone (the same workers, the same views, no model) and the model alone (views decoded
  beforehand, scored in batches), in tracks/s: when decode alone is slower than the model
  alone, decoding is the bottleneck, by their ratio;
- max |P(AI) difference| between the GPU and the CPU on the first 32 tracks.

Without a CUDA device it prints one line and exits 0. `--device cpu --tracks 24` runs the same
steps on the CPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.benches.base import Bench
from artifactbench.benches.demo import load_demo_bench
from artifactbench.detectors.base import DetectorCard, LoadContext
from artifactbench.detectors.registry import backend, resolve_models
from artifactbench.paths import cache_dir
from artifactbench.runner import RunOptions, run

# SONICS' alpha-120s configuration, as its config.json is written (training keys left out).
ALPHA_120S = {
    "experiment_name": "spectttra_alpha-t=120",
    "num_classes": 1,
    "audio": {"max_time": 120, "max_len": 120 * 16000, "sample_rate": 16000},
    "melspec": {"n_fft": 2048, "hop_length": 512, "win_length": 2048, "n_mels": 128, "f_min": 20,
                "f_max": 8000, "power": 2, "top_db": 80, "norm": "mean_std"},
    "model": {"name": "SpecTTTra", "embed_dim": 384, "num_heads": 6, "num_layers": 12,
              "mlp_ratio": 2.67, "t_clip": 3, "f_clip": 1, "input_shape": [128, 3744],
              "pre_norm": True, "pe_learnable": True},
}  # fmt: skip
CPU_CHECK_TRACKS = 32


def cuda_missing(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return "skipped: no CUDA device here (benchmarks/gpu.py measures detectors on a GPU)"
    return None


def random_spectttra(folder: Path) -> Path:
    """A SpecTTTra alpha-120s checkpoint with seeded random weights, as SONICS lays it out."""
    import torch

    from artifactbench.detectors.spectttra import CONFIG_FILE, WEIGHTS_FILE, SpecTTTra
    from artifactbench.detectors.spectttra import SpecTTTraConfig as Config

    torch.manual_seed(0)
    model = SpecTTTra(Config.from_sonics(ALPHA_120S))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(ALPHA_120S))
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    return folder


def exported_onnx(path: Path) -> Path:
    """The shipped open ArtifactNet as an ONNX graph of the ArtifactNet contract."""
    from artifactbench.assets import packaged_dir
    from artifactbench.experiments.artifactnet_open.export import export_onnx

    export_onnx(packaged_dir() / "artifactnet_open.pt", path)
    return path


class GpuSampler:
    """Mean GPU utilisation (percent) over a block, sampled every 0.2 s."""

    def __init__(self, device: str) -> None:
        self.device, self.samples, self.stop = device, [], threading.Event()

    def __enter__(self) -> GpuSampler:
        import torch

        def sample() -> None:
            while not self.stop.wait(0.2):
                try:
                    self.samples.append(float(torch.cuda.utilization(self.device)))
                except Exception:  # noqa: BLE001 - no NVML: utilisation stays unknown
                    return

        if self.device.startswith("cuda"):
            self.thread = threading.Thread(target=sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def decoded_views(bench: Bench, card: DetectorCard, tracks: list, workers: int) -> tuple:
    """Every track's view for this card, and decode-alone tracks/s with `workers` processes."""
    from artifactbench.audio.pool import decode_stream

    start = time.perf_counter()
    views = [d.views[0] for d in decode_stream(list(enumerate(tracks)), [card.view], workers)
             if d.views is not None]  # fmt: skip
    return views, len(tracks) / (time.perf_counter() - start)


def model_alone(detector: Any, views: list[np.ndarray], n: int, batch: int) -> float:
    """Tracks/s of the model on views already decoded (the first ones reused up to `n`)."""
    detector.score(views[:batch])  # warm-up: kernels, allocator
    start = time.perf_counter()
    for first in range(0, n, batch):
        detector.score([views[i % len(views)] for i in range(first, min(n, first + batch))])
    return n / (time.perf_counter() - start)


def measure(
    name: str, card: DetectorCard, weights: Path | None, bench: Bench, args: argparse.Namespace,
    root: Path,
) -> None:  # fmt: skip
    tracks = bench.select("all")[: args.tracks]
    workers = max(1, (os.cpu_count() or 2) - 1)
    options = RunOptions(out=root / name, split="all", limit=args.tracks, workers=workers,
                         batch_size=args.batch_size, device=args.device,
                         weights={card.id: weights} if weights else {})  # fmt: skip
    with GpuSampler(args.device) as gpu:
        result = run(bench, [card], options)
    e2e = result.n_tracks / result.seconds
    views, decode_rate = decoded_views(bench, card, tracks, workers)
    on_device = backend(card).load(card, weights, LoadContext(device=args.device))
    model_rate = model_alone(on_device, views, len(tracks), args.batch_size)
    check = views[:CPU_CHECK_TRACKS]
    on_cpu = backend(card).load(card, weights, LoadContext(device="cpu"))
    gap = float(np.max(np.abs(np.array(on_device.score(check)) - np.array(on_cpu.score(check)))))
    usage = gpu.mean()
    bound = "decoding" if decode_rate < model_rate else "the model"
    print(f"| {name} | {len(tracks)} | {e2e:.1f} | "
          f"{'n/a' if usage is None else f'{usage:.0f}%'} | {decode_rate:.1f} | {model_rate:.1f} | "
          f"{bound} ({max(decode_rate, model_rate) / min(decode_rate, model_rate):.1f}x) | "
          f"{gap:.1e} | {on_device.provenance.get('device')} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    missing = cuda_missing(args.device)
    if missing:
        print(missing)
        return
    per_subset = math.ceil(args.tracks / 12)
    bench = load_demo_bench(root=cache_dir() / "benchmarks" / f"demo-{per_subset}",
                            tracks_per_subset=per_subset)  # fmt: skip
    cores = os.cpu_count() or 1
    print(f"{args.device}, {cores} cores ({cores - 1} decode workers), batch {args.batch_size}\n")
    print("| detector | tracks | end to end tracks/s | GPU use | decode alone tracks/s | "
          "model alone tracks/s | bound by | max dP vs CPU | computed on |")  # fmt: skip
    print("| --- | --: | --: | --: | --: | --: | --- | --: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cards = {c.id: c for c in resolve_models("spectttra-alpha-120s,artifactnet,"
                                                 "artifactnet-open-demo")}  # fmt: skip
        measure("SpecTTTra alpha-120s (random weights)", cards["spectttra-alpha-120s"],
                random_spectttra(root / "spectttra"), bench, args, root)  # fmt: skip
        measure("ArtifactNet ONNX contract", cards["artifactnet"],
                exported_onnx(root / "artifactnet.onnx"), bench, args, root)  # fmt: skip
        measure("open ArtifactNet (torch)", cards["artifactnet-open-demo"], None, bench, args,
                root)  # fmt: skip


if __name__ == "__main__":
    main()
