"""The open ArtifactNet as a detector family: a trained `.pt` file run in torch.

The view and the song verdict are the published adapter's (7 evenly spaced 4 s chunks, median
over finite chunk P(AI)), so scores of this family and of its ONNX export compare directly.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from artifactbench.detectors.artifactnet_onnx import probe_chunks, score_chunked
from artifactbench.detectors.artifactnet_open.model import ArtifactNetConfig, ArtifactNetOpen
from artifactbench.detectors.base import (
    DetectorCard,
    Identity,
    LoadContext,
    Scored,
    Unavailable,
)
from artifactbench.detectors.devices import module_device
from artifactbench.detectors.memory import bytes_per_row, rows_per_piece
from artifactbench.util import sha256_file

TRAIN_HINT = "artifactbench train artifactnet-open --bench demo --small"


def config_from_dict(data: dict[str, Any]) -> ArtifactNetConfig:
    """The saved config (lists where the dataclass has tuples); unknown keys are an error."""
    known = {f.name for f in fields(ArtifactNetConfig)}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"unknown ArtifactNetConfig fields in weights file: {extra}")
    return ArtifactNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def read_weights(path: Path) -> tuple[ArtifactNetOpen, Tensor, dict[str, Any]]:
    """(model in eval mode, channel_means [7, n_mels], meta) from a trainer's `.pt` file.

    `weights_only=True` so a weights file can never run code when it is read.
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    missing = sorted({"config", "state_dict", "channel_means"} - set(blob))
    if missing:
        raise ValueError(f"{path}: not an artifactnet_open weights file (missing {missing})")
    model = ArtifactNetOpen(config_from_dict(dict(blob["config"])))
    model.load_state_dict(blob["state_dict"])
    means = torch.as_tensor(blob["channel_means"], dtype=torch.float32)
    expected = (7, model.config.n_mels)
    if tuple(means.shape) != expected:
        raise ValueError(f"{path}: channel_means has shape {list(means.shape)}, not {expected}")
    return model.eval(), means, dict(blob.get("meta", {}))


def _device(requested: str) -> torch.device:
    if requested.startswith("cuda") and torch.cuda.is_available():
        return torch.device(requested)
    return torch.device("cpu")


class ArtifactNetOpenDetector:
    """A loaded open ArtifactNet; the chunks of a batch go through forward passes of at most
    `chunks_per_run` rows, sized by the memory budget (detectors.memory)."""

    def __init__(
        self,
        card: DetectorCard,
        model: ArtifactNetOpen,
        device: torch.device,
        weights_sha256: str,
        provenance: dict[str, Any],
    ) -> None:
        self.card = card
        self.model = model
        self.device = device
        self.width = model.config.segment_samples
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        self.chunks_per_run: int | None = None

    def chunk_probs(self, chunks: np.ndarray) -> np.ndarray:
        """P(AI) per chunk row of a [n, width] array, without building a graph for gradients."""
        with torch.inference_mode():
            audio = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32))
            return self.model(audio.to(self.device)).cpu().numpy().astype(np.float64)

    def score(self, views: list[np.ndarray]) -> list[float | Scored]:
        """Median P(AI) over each track's finite chunks, as the published adapter computes it."""
        return score_chunked(views, self.width, self.chunk_probs, self.chunks_per_run)


def _bytes_per_chunk(detector: ArtifactNetOpenDetector, probe: np.ndarray) -> int:
    """What one chunk's forward pass holds: GPU memory on CUDA, resident memory on the CPU."""
    if detector.device.type != "cuda":
        return bytes_per_row(lambda k: detector.chunk_probs(np.resize(probe, (k, probe.shape[1]))))
    detector.chunk_probs(probe[:1])
    torch.cuda.reset_peak_memory_stats(detector.device)
    before = torch.cuda.memory_allocated(detector.device)
    detector.chunk_probs(probe[:2])
    return max(1, -(-(torch.cuda.max_memory_allocated(detector.device) - before) // 2))


def _weights_path(card: DetectorCard, weights: Path | None) -> Path:
    from artifactbench.assets import resolve_files

    if weights is None and not card.files:
        raise Unavailable(f"{card.id}: no trained weights shipped or given", TRAIN_HINT)
    try:
        path = next(iter(resolve_files(card, weights).values()))
    except Unavailable as exc:
        raise Unavailable(str(exc), TRAIN_HINT) from exc
    if not path.is_file():
        raise Unavailable(f"{card.id}: weights file {path} does not exist", TRAIN_HINT)
    return path


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The trained weights file and its sha256, without reading the model."""
    path = _weights_path(card, weights)
    return Identity(card, sha256_file(path), {"weights": str(path)})


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> ArtifactNetOpenDetector:
    """`weights` (a `.pt` from the trainer), else the card's packaged or fetched file."""
    path = _weights_path(card, weights)
    try:
        model, _, meta = read_weights(path)
    except Exception as exc:  # noqa: BLE001 - any read failure means the file is unusable
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise Unavailable(f"{card.id}: cannot read {path}: {reason}", TRAIN_HINT) from exc
    width = int(round((card.view.seconds or 0) * card.view.rate))
    if card.view.crop != "chunks" or width != model.config.segment_samples:
        raise Unavailable(
            f"{card.id}: the card's view must be chunks of {model.config.segment_samples} "
            f"samples, as the model was trained on",
            "",
        )
    device = _device(context.device)
    model.to(device)
    provenance = {
        "weights": str(path),
        "torch": torch.__version__,
        "requested_device": context.device,
        "device": module_device(model),
        "threads": torch.get_num_threads(),
        "config": asdict(model.config),
        "meta": meta,
        "aggregation": "median of finite chunk P(AI); non-finite chunks excluded and counted",
    }
    detector = ArtifactNetOpenDetector(card, model, device, sha256_file(path), provenance)
    # A chunk holds at least its own float32 input, whatever the measurement saw.
    cost = max(
        4 * detector.width, _bytes_per_chunk(detector, probe_chunks(detector.width, card.view.rate))
    )
    detector.chunks_per_run = rows_per_piece(context.memory_budget, cost, device.type)
    provenance.update(
        chunks_per_run=detector.chunks_per_run,
        bytes_per_chunk=cost,
        memory_budget=context.memory_budget,
    )
    return detector
