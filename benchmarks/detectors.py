"""Detector-only throughput: each published detector at full size on views already in memory.

    python benchmarks/detectors.py [--only NAME ...] [--threads 2]

Weights are random (speed does not depend on their values), so nothing needs fetching. Each entry
of `MEASURES` returns one table row; the script prints them as a markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROUNDS = 3


def batched_vs_single(
    forward: Callable[[list[np.ndarray]], Any], views: list[np.ndarray], rounds: int = ROUNDS
) -> tuple[float, float]:
    """Tracks per second scoring `views` in one call, and one view per call.

    The two alternate round by round, so a neighbour process loading the machine slows both alike.
    """
    forward(views)
    forward(views[:1])  # warm-up: first-call allocations are not part of steady throughput
    batched = single = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        forward(views)
        batched += time.perf_counter() - start
        start = time.perf_counter()
        for view in views:
            forward([view])
        single += time.perf_counter() - start
    n = rounds * len(views)
    return n / batched, n / single


def spectttra_alpha_120s() -> dict[str, Any]:
    """SpecTTTra alpha-120s (18.7M) on 120 s 16 kHz views: one forward of 8 against 8 of 1."""
    import torch

    from artifactbench.detectors.spectttra import SpecTTTra, SpecTTTraConfig

    sonics = {
        "audio": {"sample_rate": 16000, "max_time": 120, "max_len": 1_920_000},
        "melspec": {"n_fft": 2048, "hop_length": 512, "win_length": 2048, "n_mels": 128,
                    "f_min": 20, "f_max": 8000, "top_db": 80, "norm": "mean_std", "power": 2},
        "model": {"embed_dim": 384, "num_heads": 6, "num_layers": 12, "mlp_ratio": 2.67,
                  "t_clip": 3, "f_clip": 1, "input_shape": [128, 3744], "pre_norm": True,
                  "pe_learnable": True},
    }  # fmt: skip
    torch.manual_seed(0)
    model = SpecTTTra(SpecTTTraConfig.from_sonics(sonics)).eval()
    rng = np.random.default_rng(0)
    views = [rng.uniform(-0.5, 0.5, 1_920_000).astype(np.float32) for _ in range(8)]

    def forward(batch: list[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.sigmoid(model(torch.from_numpy(np.stack(batch))))

    batched, single = batched_vs_single(forward, views)
    return {
        "detector": f"SpecTTTra alpha-120s ({model.num_parameters():,} params)",
        "input": "120 s at 16 kHz",
        "tracks timed": ROUNDS * len(views),
        "batched tracks/s": f"{batched:.2f} (batch 8)",
        "one at a time tracks/s": f"{single:.2f}",
        "batched / single": f"{batched / single:.2f}x",
    }


# (in, out, kernel, stride): 176,400 samples -> 86 frames of 512 channels.
SURROGATE_LAYERS = ((1, 64, 64, 16), (64, 128, 9, 4), (128, 256, 9, 4), (256, 512, 9, 4),
                    (512, 512, 9, 2))  # fmt: skip


MEASURES: dict[str, Callable[[], dict[str, Any]]] = {
    "spectttra-alpha-120s": spectttra_alpha_120s,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(MEASURES), default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = [MEASURES[name]() for name in (args.only or MEASURES)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(f"torch {torch.__version__}, {args.threads} thread(s)\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
