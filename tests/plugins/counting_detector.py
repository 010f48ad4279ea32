"""A test detector that logs every view it scores, so tests can count model calls exactly.

Its score is a real function of the audio (RMS squashed into (0, 1)). It returns NaN for very
quiet views and raises on very loud ones, to exercise inference failures.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from artifactbench.detectors.base import DetectorCard, Identity, LoadContext, Unavailable

WEIGHTS_SHA256 = "counting-v1"


class CountingDetector:
    def __init__(self, card: DetectorCard) -> None:
        self.card = card
        self.weights_sha256 = WEIGHTS_SHA256
        self.provenance = {"source": "tests", "device": "cpu"}
        self.log = Path(os.environ["COUNTING_LOG"]) if "COUNTING_LOG" in os.environ else None
        self.sleep = float(os.environ.get("COUNTING_SLEEP", "0"))

    def score(self, views: list[np.ndarray]) -> list[float]:
        time.sleep(self.sleep)
        out = []
        for view in views:
            rms = float(np.sqrt(np.mean(np.square(view, dtype=np.float64))))
            if rms > 0.6:
                raise ValueError("view too loud for this model")
            out.append(float("nan") if rms < 1e-3 else 1.0 - float(np.exp(-rms * 8.0)))
        if "COUNTING_NODES" in os.environ:  # the Ray node of each call, on a cluster
            import ray

            with open(os.environ["COUNTING_NODES"], "a") as fh:
                fh.write(f"{ray.get_runtime_context().get_node_id()}\n")
        if self.log is not None:
            with open(self.log, "a") as fh:
                for view in views:
                    fh.write(hashlib.sha256(view.tobytes()).hexdigest() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return out


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """What a driver that loads nothing learns: the same key a load gives."""
    if os.environ.get("COUNTING_UNAVAILABLE"):
        raise Unavailable("counting weights are not here", "export COUNTING_UNAVAILABLE=")
    return Identity(card, WEIGHTS_SHA256, {"source": "tests"})


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> CountingDetector:
    if "COUNTING_LOADS" in os.environ:  # which processes loaded the model
        with open(os.environ["COUNTING_LOADS"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
    if os.environ.get("COUNTING_BROKEN"):
        raise RuntimeError("checkpoint is corrupt")
    if os.environ.get("COUNTING_UNAVAILABLE"):
        raise Unavailable("counting weights are not here", "export COUNTING_UNAVAILABLE=")
    return CountingDetector(card)
