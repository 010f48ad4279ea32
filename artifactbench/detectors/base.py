"""Detector cards (facts, no code) and the small interface every detector module implements."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from artifactbench.audio.decode import ViewSpec
from artifactbench.detectors.memory import DEFAULT_BUDGET


@dataclass(frozen=True)
class AssetFile:
    """One weight file: fetched from the card's repo at its revision, or from `url`."""

    name: str
    sha256: str | None = None
    optional: bool = False
    url: str | None = None


@dataclass(frozen=True)
class EncoderRef:
    """A pretrained encoder a detector builds on, pinned to a hub revision."""

    name: str
    repo: str
    revision: str
    trust_remote_code: bool = False


@dataclass(frozen=True)
class TrainedOn:
    """Data a detector's weights were trained on, as published: a bench by the name runs record
    (`sonics`, `demo`, ...; a data set with no bench source here by its own name, e.g. `mom`)
    and its split, None where the split is not published. Reports use it to mark results on
    tracks a leakage audit found in that data."""

    bench: str
    split: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class DetectorCard:
    """Everything known about a detector without importing its backend."""

    id: str
    family: str
    view: ViewSpec
    threshold: float = 0.5
    description: str = ""
    params: str | None = None
    licence: str | None = None
    citation: str | None = None
    repo: str | None = None
    revision: str | None = None
    files: tuple[AssetFile, ...] = ()
    encoders: tuple[EncoderRef, ...] = ()
    fits_on_bench: bool = False
    module: str | None = None
    paper_name: str | None = None
    published: dict[str, Any] = field(default_factory=dict)
    trained_on: tuple[TrainedOn, ...] = ()

    def protocol_hash(self, decode_protocol: str) -> str:
        """Hash of everything between the stored bytes and the model input."""
        blob = json.dumps(
            {"decode": decode_protocol, "view": asdict(self.view), "family": self.family},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = [asdict(f) for f in self.files]
        out["encoders"] = [asdict(e) for e in self.encoders]
        out["trained_on"] = [asdict(t) for t in self.trained_on]
        return out


@dataclass(frozen=True)
class Scored:
    """P(AI) with what the model has to say about it, e.g. chunks it had to exclude.

    A non-finite `prob` marks a track the model could not score; `note` then says why.
    """

    prob: float
    note: str | None = None


class Unavailable(Exception):
    """The detector's weights or backend are not here; `hint` is the command that fixes it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class FitPlan:
    """For detectors fitted on a bench: where the fit is cached and the train examples."""

    cache_path: Path
    examples: Callable[[], Iterable[tuple[np.ndarray, str]]]
    record: dict[str, Any]


@dataclass(frozen=True)
class LoadContext:
    """What a backend's `load(card, weights, context)` may use besides its card."""

    device: str = "cpu"
    seed: int = 0
    fit_plan: FitPlan | None = None
    # Bytes of intermediates one scoring call may hold (see detectors.memory).
    memory_budget: int = DEFAULT_BUDGET


class Identified(Protocol):
    """What a run plans, keys its store and records with: a card and the exact weights."""

    card: DetectorCard
    weights_sha256: str
    provenance: dict[str, Any]


@dataclass(frozen=True)
class Identity:
    """A detector known from its card and weight files without loading it (a backend's
    `identify`): a driver that never scores, like the Ray engine's, needs no more."""

    card: DetectorCard
    weights_sha256: str
    provenance: dict[str, Any]


class Detector(Identified, Protocol):
    """A loaded detector: scores views, never decodes files and never writes results.

    `provenance` goes into run.json; its "device" is where the model actually computes ("cpu",
    "cuda:0"), which may differ from the `--device` asked for.
    """

    def score(self, views: list[np.ndarray]) -> list[float | Scored]:
        """P(AI) per view (or `Scored` with a note); NaN marks a view it could not score."""
        ...


def trained_on(model: Identified) -> list[dict[str, Any]]:
    """What a loaded (or identified) detector was trained on, for the predictions metadata: its
    card's published `trained_on`, or for a bench-fitted detector the bench and split its fit
    records (the bench it fits on differs from run to run)."""
    found = [{"bench": t.bench, "split": t.split} for t in model.card.trained_on]
    fit = model.provenance
    if model.card.fits_on_bench and fit.get("bench"):
        found.append({"bench": str(fit["bench"]), "split": fit.get("split")})
    return found
