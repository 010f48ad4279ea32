"""Export a trained open ArtifactNet as one ONNX graph under the published ArtifactNet contract.

The graph maps `audio` float32 [batch, 176400] to P(AI) [batch], so the published adapter
(`artifactnet_onnx`, `--weights FILE.onnx`) runs it unchanged. The export is checked against
torch on fixed inputs before it is reported as done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from artifactbench.detectors.artifactnet_onnx import make_session, probe_chunks
from artifactbench.detectors.artifactnet_open.detector import read_weights
from artifactbench.detectors.base import sha256_file

OPSET = 17
INPUT_NAME = "audio"
OUTPUT_NAME = "p_ai"
TOLERANCE = 1e-4


def check_inputs(width: int, rate: int) -> np.ndarray:
    """The adapter's probe chunks (a loud tone, moderate and faint noise) plus clipped noise."""
    rng = np.random.default_rng(1)
    loud = np.clip(0.5 * rng.standard_normal(width), -1.0, 1.0)[None].astype(np.float32)
    return np.concatenate([probe_chunks(width, rate), loud])


def export_onnx(weights: Path, out: Path) -> dict[str, Any]:
    """Write `out` (audio -> P(AI)) and return what was checked, max |ONNX - torch| included.

    Raises ValueError, leaving no file behind, when ONNX Runtime and torch differ by more than
    `TOLERANCE` on any check input.
    """
    weights, out = Path(weights), Path(out)
    model, _, meta = read_weights(weights)
    cfg = model.config
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, cfg.segment_samples),),
        str(out),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    inputs = check_inputs(cfg.segment_samples, cfg.sample_rate)
    with torch.inference_mode():
        expected = model(torch.from_numpy(inputs)).numpy().astype(np.float64)
    session, _ = make_session(out, "cpu")
    got = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0], dtype=np.float64)
    diff = float(np.max(np.abs(got.reshape(-1) - expected)))
    if not diff <= TOLERANCE:
        out.unlink()
        raise ValueError(f"ONNX export differs from torch by {diff:.3g} (> {TOLERANCE})")
    return {
        "onnx": str(out),
        "onnx_sha256": sha256_file(out),
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "meta": meta,
        "opset": OPSET,
        "input": {"name": INPUT_NAME, "shape": ["batch", cfg.segment_samples]},
        "output": {"name": OUTPUT_NAME, "shape": ["batch"]},
        "check_inputs": len(inputs),
        "max_abs_difference": diff,
        "tolerance": TOLERANCE,
    }
