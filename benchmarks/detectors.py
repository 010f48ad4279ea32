"""Detector-only throughput: each published detector at full size on views already in memory.

    python benchmarks/detectors.py [--only NAME ...] [--threads 2]

Weights are random (speed does not depend on their values), so nothing needs fetching. Each entry
of `MEASURES` returns one table row; the script prints them as a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TRACKS = 16
ROUNDS = 3


def _tracks_per_second(score: Callable[[list[np.ndarray]], Any], views: list, batch: int) -> float:
    score(views[:batch])  # warm-up: first-call allocations are not part of steady throughput
    start = time.perf_counter()
    for i in range(0, len(views), batch):
        score(views[i : i + batch])
    return len(views) / (time.perf_counter() - start)


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


def _conv_surrogate_onnx(path: Path) -> int:
    """A 4.0M-parameter net with the ArtifactNet contract, exported to `path`; its param count.

    Strided Conv1d-BN-ReLU layers straight over the 176,400 samples, then two linear layers and
    a sigmoid: the published graph's size and interface, not its STFT / UNet / HPSS arithmetic.
    """
    import warnings

    import torch

    class Surrogate(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[torch.nn.Module] = []
            for c_in, c_out, kernel, stride in SURROGATE_LAYERS:
                conv = torch.nn.Conv1d(c_in, c_out, kernel, stride=stride)
                layers += [conv, torch.nn.BatchNorm1d(c_out), torch.nn.ReLU()]
            self.features = torch.nn.Sequential(*layers)
            self.head = torch.nn.Sequential(
                torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)
            )

        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            pooled = self.features(audio.unsqueeze(1)).mean(dim=2)
            return torch.sigmoid(self.head(pooled)).squeeze(1)

    torch.manual_seed(0)
    model = Surrogate().eval()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(2, 176400),), str(path), input_names=["audio"],
            output_names=["p_ai"], dynamic_axes={"audio": {0: "batch"}, "p_ai": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    return sum(p.numel() for p in model.parameters())


def artifactnet_onnx() -> dict[str, Any]:
    """ArtifactNet's contract at its size (4.0M) through the adapter: 7 x 4 s chunks per track,
    8 tracks (56 chunks) in one `session.run` against one track (7 chunks) per run."""
    from artifactbench.audio.decode import detector_view
    from artifactbench.detectors import artifactnet_onnx as an
    from artifactbench.detectors.base import LoadContext
    from artifactbench.detectors.registry import cards

    card = cards()["artifactnet"]
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "surrogate.onnx"
        params = _conv_surrogate_onnx(graph)
        detector = an.load(card, graph, LoadContext(device="cpu"))
    rng = np.random.default_rng(0)
    views = [
        detector_view(rng.uniform(-0.5, 0.5, 30 * 44100).astype(np.float32), card.view)
        for _ in range(8)
    ]
    before = detector.run_calls
    detector.score(views)
    runs = detector.run_calls - before
    batched, single = batched_vs_single(detector.score, views)
    prov = detector.provenance
    return {
        "detector": f"ArtifactNet ONNX contract, conv surrogate ({params:,} params)",
        "input": "7 x 4 s at 44.1 kHz",
        "tracks timed": ROUNDS * len(views),
        "batched tracks/s": f"{batched:.2f} (batch 8 = 56 chunks, {runs} session.run)",
        "one at a time tracks/s": f"{single:.2f}",
        "batched / single": f"{batched / single:.2f}x",
        "runtime": f"onnxruntime {prov['onnxruntime']}, {prov['graph_optimization_level']}, "
        f"{prov['intra_op_num_threads']} intra-op threads",
    }


def clam() -> dict[str, Any]:
    """CLAM at full size (HuBERT-base-sized MERT stand-in at 24 kHz, wav2vec2-base at 16 kHz,
    random) on 100 s protocol buffers cut to 90 s per stream: both tracks through the encoders at
    once (the head still one track at a time) against one track per call. Two tracks, one round,
    no warm-up: a track costs tens of seconds on 2 cores, so first-call allocations are noise."""
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    from artifactbench.audio.decode import PROTOCOL_RATE, ViewSpec
    from artifactbench.detectors.clam import EXCERPT_SECONDS, CLAMDetector, CLAMHead, Stream
    from artifactbench.detectors.registry import cards

    torch.manual_seed(0)
    encoders = (
        ("mert", HubertModel(HubertConfig()), 24000, False),
        ("wav2vec2", Wav2Vec2Model(Wav2Vec2Config()), 16000, True),
    )
    streams = tuple(
        Stream(
            name,
            model.eval(),
            Wav2Vec2FeatureExtractor(sampling_rate=rate, do_normalize=normalize),
            ViewSpec(rate=rate, seconds=EXCERPT_SECONDS, crop="center", pad=True),
            torch.device("cpu"),
            torch.float32,
        )
        for name, model, rate, normalize in encoders
    )
    head = CLAMHead().eval()
    params = sum(p.numel() for m in (head, *(s.model for s in streams)) for p in m.parameters())
    rng = np.random.default_rng(0)
    views = [rng.uniform(-0.5, 0.5, 100 * PROTOCOL_RATE).astype(np.float32) for _ in range(2)]

    def seconds(batch: int) -> float:
        detector = CLAMDetector(cards()["clam"], head, streams, "random", {}, encoder_batch=batch)
        start = time.perf_counter()
        for i in range(0, len(views), batch):
            detector.score(views[i : i + batch])
        return time.perf_counter() - start

    batched = len(views) / seconds(2)
    single = len(views) / seconds(1)
    return {
        "detector": f"CLAM ({params:,} params)",
        "input": "90 s centred per stream (MERT 24 kHz, wav2vec2 16 kHz)",
        "tracks timed": len(views),
        "batched tracks/s": f"{batched:.3f} (encoder batch 2, head per track)",
        "one at a time tracks/s": f"{single:.3f}",
        "batched / single": f"{batched / single:.2f}x",
    }


MEASURES: dict[str, Callable[[], dict[str, Any]]] = {
    "spectttra-alpha-120s": spectttra_alpha_120s,
    "artifactnet": artifactnet_onnx,
    "clam": clam,
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
