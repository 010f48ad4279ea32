"""What the Ray engine runs on the cluster's workers: decode tasks and detector actors.

A decode task reads and decodes a block of tracks once and returns the views cut apart, one
object per detector pool, so each pool's actors fetch only their own views; the driver gets a
small summary per track (`DecodedMeta`) and never the audio. A detector actor loads its model
once, checks that the weights on its node hash to what the driver planned with, and scores the
views of the blocks it is handed.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.audio.decode import DecodeLimits, ViewSpec
from artifactbench.audio.pool import decode_track
from artifactbench.audio.transforms import Transform
from artifactbench.benches.base import Track
from artifactbench.detectors.base import DetectorCard, FitPlan, LoadContext
from artifactbench.detectors.memory import DEFAULT_BUDGET
from artifactbench.detectors.registry import backend
from artifactbench.runner.plan import score_batch, variant_failure
from artifactbench.runner.store import ScoreRow


@dataclass(frozen=True)
class PoolJob:
    """One (variant, detector) pair of a pool: its slot in the plan and which view it scores."""

    slot: int
    variant: int
    view_index: int


@dataclass
class DecodedMeta:
    """A decoded track as the driver sees it: its audio's identity and failures, no views."""

    index: int
    sha: str | None  # None: the bytes could not be read (`error` says why)
    error: str | None
    failures: dict[int, ScoreRow]  # slot -> the failure of a variant that has no views
    pool_bytes: list[int]  # bytes of this track's views in each pool's object
    seconds: float  # what decoding it cost


@dataclass
class ActorAnswer:
    """One call's answers, what they cost, and where they were computed."""

    answers: list[tuple[int, str, ScoreRow]]  # (slot, audio sha256, row)
    calls: int
    busy: float  # seconds spent scoring
    node: str
    provenance: dict[str, Any] = field(default_factory=dict)


# A view to score: (block position in the call, row in the block, job position, slot, sha256).
WorkItem = tuple[int, int, int, int, str]


@dataclass(frozen=True)
class ActorLoad:
    """What an actor needs to load the driver's detector exactly: card, weights, context, and a
    bench-fitted detector's fit file carried as bytes (cluster nodes need not share a cache)."""

    card: DetectorCard
    weights: Path | None
    device: str
    seed: int
    memory_budget: int = DEFAULT_BUDGET
    fit_name: str | None = None
    fit_bytes: bytes | None = None
    fit_record: dict[str, Any] | None = None


def decode_block(
    items: list[tuple[int, Track]],
    specs: Sequence[ViewSpec],
    chains: Sequence[Sequence[Transform]],
    seed: int,
    pools: list[list[PoolJob]],
) -> tuple[Any, ...]:
    """A Ray task: decode a block once; returns the summaries, then each pool's views (per
    track, per job of the pool; None where that variant failed)."""
    metas: list[DecodedMeta] = []
    per_pool: list[list[list[np.ndarray | None]]] = [[] for _ in pools]
    for index, track in items:
        decoded = decode_track(index, track, specs, DecodeLimits(), chains, seed)
        failures: dict[int, ScoreRow] = {}
        sizes = []
        for views_of_pool, jobs in zip(per_pool, pools, strict=True):
            views: list[np.ndarray | None] = []
            for job in jobs:
                failure = variant_failure(decoded, job.variant) if decoded.audio_sha256 else None
                if decoded.audio_sha256 is None or failure is not None:
                    if failure is not None:
                        failures[job.slot] = failure
                    views.append(None)
                else:
                    views.append(decoded.variants[job.variant].views[job.view_index])  # type: ignore[index]
            views_of_pool.append(views)
            sizes.append(sum(v.nbytes for v in views if v is not None))
        metas.append(
            DecodedMeta(index, decoded.audio_sha256, decoded.error, failures, sizes,
                        decoded.seconds)
        )  # fmt: skip
    return (metas, *per_pool)


def _node_id() -> str:
    """The Ray node this process runs on (the host name outside a Ray worker)."""
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except ImportError:
        pass
    return socket.gethostname()


def _no_examples() -> Iterator[tuple[np.ndarray, str]]:
    raise RuntimeError("the fit travels with the actor; refitting on a worker is not allowed")
    yield  # pragma: no cover - makes this a generator


class DetectorActor:
    """One model load per actor; scores the views it is handed in batches of `batch_size`."""

    def __init__(self, load: ActorLoad, weights_sha256: str, batch_size: int) -> None:
        plan = None
        if load.fit_bytes is not None and load.fit_name is not None:
            path = Path(tempfile.mkdtemp(prefix="artifactbench-fit-")) / load.fit_name
            path.write_bytes(load.fit_bytes)
            plan = FitPlan(path, _no_examples, load.fit_record or {})
        context = LoadContext(
            device=load.device, seed=load.seed, fit_plan=plan, memory_budget=load.memory_budget
        )
        self.detector = backend(load.card).load(load.card, load.weights, context)
        if self.detector.weights_sha256 != weights_sha256:
            raise RuntimeError(
                f"{load.card.id}: weights on this node hash to "
                f"{self.detector.weights_sha256[:12]}, the driver planned with "
                f"{weights_sha256[:12]}; install the same weights"
            )
        self.batch_size = batch_size
        self.node = _node_id()
        self.told = False

    def score(self, work: list[WorkItem], *blocks: list[list[np.ndarray | None]]) -> ActorAnswer:
        """Score each work item's view (Ray hands the blocks over already fetched)."""
        start = time.perf_counter()
        answers: list[tuple[int, str, ScoreRow]] = []
        calls = 0
        for first in range(0, len(work), self.batch_size):
            part = work[first : first + self.batch_size]
            batch = [(sha, blocks[b][row][job]) for b, row, job, _, sha in part]
            scored, n = score_batch(self.detector, batch)  # type: ignore[arg-type]
            calls += n
            answers.extend((slot, sha, answer) for (*_, slot, sha), (_, answer) in zip(
                part, scored, strict=True))  # fmt: skip
        provenance = {} if self.told else dict(self.detector.provenance)
        self.told = True
        return ActorAnswer(answers, calls, time.perf_counter() - start, self.node, provenance)
