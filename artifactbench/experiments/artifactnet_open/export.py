"""Export a trained open ArtifactNet as one ONNX graph under the published ArtifactNet contract.

The graph maps `audio` float32 [batch, 176400] to P(AI) [batch], so the published adapter
(`artifactnet_onnx`, `--weights FILE.onnx`) runs it unchanged. The export is checked against
torch on fixed inputs, and optionally on every chunk of a bench split, before it is reported
as done.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artifactbench.detectors.artifactnet_onnx import make_session, probe_chunks
from artifactbench.detectors.artifactnet_open.detector import read_weights
from artifactbench.util import sha256_file

OPSET = 17
INPUT_NAME = "audio"
OUTPUT_NAME = "p_ai"
TOLERANCE = 1e-4


def check_inputs(width: int, rate: int) -> np.ndarray:
    """The adapter's probe chunks (a loud tone, moderate and faint noise) plus clipped noise."""
    rng = np.random.default_rng(1)
    loud = np.clip(0.5 * rng.standard_normal(width), -1.0, 1.0)[None].astype(np.float32)
    return np.concatenate([probe_chunks(width, rate), loud])


def max_difference(
    model: torch.nn.Module, session: Any, chunks: Iterable[np.ndarray], batch: int = 16
) -> tuple[float, int]:
    """(max |ONNX - torch| of P(AI), number of chunks) over [n, width] chunk arrays."""
    worst = 0.0
    n = 0
    pending: list[np.ndarray] = []

    def flush() -> float:
        x = np.concatenate(pending).astype(np.float32)
        pending.clear()
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy().astype(np.float64)
        got = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], dtype=np.float64)
        return float(np.max(np.abs(got.reshape(-1) - expected)))

    for view in chunks:
        pending.append(view)
        n += len(view)
        if sum(len(v) for v in pending) >= batch:
            worst = max(worst, flush())
    if pending:
        worst = max(worst, flush())
    return worst, n


def export_onnx(
    weights: Path, out: Path, check_views: Iterable[np.ndarray] | None = None
) -> dict[str, Any]:
    """Write `out` (audio -> P(AI)) and return what was checked, max |ONNX - torch| included.

    The graph is always checked on fixed probe inputs and, when `check_views` are given (each a
    track's [n_chunks, width] view, e.g. a bench split as the runner decodes it), on every one
    of their chunks. Raises ValueError, leaving no file behind, when ONNX Runtime and torch
    differ by more than `TOLERANCE` anywhere.
    """
    weights, out = Path(weights), Path(out)
    model, _, meta = read_weights(weights)
    cfg = model.config
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The tracer warns that fixed sizes (segment length, padding indices) become constants:
        # they are constants of the contract, and the checks below prove the graph right.
        warnings.simplefilter("ignore")
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
    session, _ = make_session(out, "cpu")
    probes = check_inputs(cfg.segment_samples, cfg.sample_rate)
    diff, _ = max_difference(model, session, [probes])
    checked = {"probe_chunks": len(probes), "probe_max_abs_difference": diff}
    if check_views is not None:
        bench_diff, n_chunks = max_difference(model, session, check_views)
        checked.update(bench_chunks=n_chunks, bench_max_abs_difference=bench_diff)
        diff = max(diff, bench_diff)
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
        **checked,
        "max_abs_difference": diff,
        "tolerance": TOLERANCE,
    }
