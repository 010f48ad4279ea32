"""The Ray engine: the runner's scoring stage spread over a Ray cluster through Ray Data.

Tracks are read and decoded in parallel Ray tasks (the same `decode_track` the local engine's
worker processes run), then streamed through one actor pool per detector: each actor loads its
detector once, checks that its weights hash to the key the driver planned with, and scores
batches of views for every variant of the run. The driver writes every answer into the same score
store the local engine uses, batch by batch, so what lands in the run directory does not depend
on the engine, and a killed run resumes from the store either way.

Ray is imported only when this engine runs; it is the optional extra `artifactbench[ray]`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.audio.decode import DecodeLimits, ViewSpec
from artifactbench.audio.pool import Decoded, decode_track
from artifactbench.audio.transforms import Transform
from artifactbench.benches.base import Bench, Track
from artifactbench.detectors.base import Detector, DetectorCard, FitPlan, LoadContext, Unavailable
from artifactbench.detectors.memory import DEFAULT_BUDGET
from artifactbench.detectors.registry import backend
from artifactbench.progress import ProgressHook
from artifactbench.runner.plan import (
    EngineFailure,
    RayOptions,
    RunOptions,
    ScorePlan,
    fit_plan,
    plan_scoring,
    score_batch,
    variant_failure,
)
from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore

# Tracks per decode block: the unit a Ray task decodes, like the local engine's chunk.
DECODE_BLOCK = 2
# Memory a decode task reserves: a block of long tracks as float32 buffers and their views.
DECODE_MEMORY = 512 * 1024**2
INSTALL_HINT = "pip install -c constraints.txt -e '.[ray]'"


@dataclass(frozen=True)
class ActorJob:
    """One (variant, detector) pair an actor answers: which variant's which view, and its key."""

    slot: int  # index into the runner's list of (variant, detector) pairs
    variant: int
    view_index: int
    key: ScoreKey
    done: frozenset[str]  # audio the store already answers under `key`


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


def ray_module() -> Any:
    """`ray` and `ray.data`, or Unavailable with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise Unavailable(
            "the Ray engine needs Ray Data, which is not installed", INSTALL_HINT
        ) from exc
    return ray


def _no_examples() -> Iterator[tuple[np.ndarray, str]]:
    raise RuntimeError("the fit travels with the actor; refitting on a worker is not allowed")
    yield  # pragma: no cover - makes this a generator


class DetectorActor:
    """One model load per actor; scores every job's views in batches of `batch_size`."""

    def __init__(
        self, load: ActorLoad, jobs: list[ActorJob], batch_size: int, last: bool = False
    ) -> None:
        plan = None
        if load.fit_bytes is not None and load.fit_name is not None:
            path = Path(tempfile.mkdtemp(prefix="artifactbench-fit-")) / load.fit_name
            path.write_bytes(load.fit_bytes)
            plan = FitPlan(path, _no_examples, load.fit_record or {})
        context = LoadContext(
            device=load.device, seed=load.seed, fit_plan=plan, memory_budget=load.memory_budget
        )
        self.detector = backend(load.card).load(load.card, load.weights, context)
        expected = {job.key.weights_sha256 for job in jobs}
        if self.detector.weights_sha256 not in expected:
            raise RuntimeError(
                f"{load.card.id}: weights on this node hash to "
                f"{self.detector.weights_sha256[:12]}, the driver planned with "
                f"{sorted(expected)[0][:12]}; install the same weights"
            )
        self.jobs = jobs
        self.batch_size = batch_size
        self.last = last  # the last pool drops the views: the driver needs only the answers

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded: list[Decoded] = [pickle.loads(blob) for blob in batch["payload"]]
        answers: list[list[tuple[int, ScoreRow]]] = [[] for _ in decoded]
        calls = 0
        for job in self.jobs:
            queue: list[tuple[int, str, np.ndarray]] = []
            for row, item in enumerate(decoded):
                sha = item.audio_sha256
                if sha is None or sha in job.done:
                    continue
                failure = variant_failure(item, job.variant)
                if failure is not None:
                    answers[row].append((job.slot, failure))
                else:
                    views = item.variants[job.variant].views
                    queue.append((row, sha, views[job.view_index]))  # type: ignore[index]
            for start in range(0, len(queue), self.batch_size):
                part = queue[start : start + self.batch_size]
                scored, n = score_batch(self.detector, [(sha, view) for _, sha, view in part])
                calls += n
                for (row, _, _), (_, answer) in zip(part, scored, strict=True):
                    answers[row].append((job.slot, answer))
        out = {k: v for k, v in batch.items() if not (self.last and k == "payload")}
        out[f"answers_{self.detector.card.id}"] = _objects([pickle.dumps(a) for a in answers])
        out[f"calls_{self.detector.card.id}"] = np.array(
            [calls] + [0] * (len(decoded) - 1), dtype=np.int64
        )
        return out


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def decode_block(
    batch: dict[str, np.ndarray],
    specs: list[ViewSpec],
    limits: DecodeLimits,
    chains: list[list[Transform]],
    seed: int,
) -> dict[str, np.ndarray]:
    """A Ray task: read and decode a block of tracks; each row carries its Decoded pickled."""
    rows = [
        decode_track(int(i), pickle.loads(blob), specs, limits, chains, seed)
        for i, blob in zip(batch["index"], batch["track"], strict=True)
    ]
    return {
        "index": np.array([d.index for d in rows], dtype=np.int64),
        "sha": _objects([d.audio_sha256 or "" for d in rows]),  # "": the bytes were not found
        "error": _objects([d.error or "" for d in rows]),
        "payload": _objects([pickle.dumps(d) for d in rows]),
    }


def _actor_load(card: DetectorCard, bench: Bench, options: RunOptions) -> ActorLoad:
    weights = options.weights.get(card.id)
    plan = None if card.id in options.weights else fit_plan(card, options.fit_on or bench, 0)
    load = ActorLoad(card, weights, options.device, options.seed, options.memory_budget)
    if plan is None or not plan.cache_path.is_file():
        return load
    fit = plan.cache_path
    return dataclasses.replace(
        load, fit_name=fit.name, fit_bytes=fit.read_bytes(), fit_record=plan.record
    )


def pool_size(ray: Any, ray_options: RayOptions) -> int:
    """How many actors of one detector the cluster can hold at once, from its resources."""
    resources = ray.cluster_resources()
    if ray_options.num_gpus > 0:
        return max(1, math.floor(resources.get("GPU", 0.0) / ray_options.num_gpus))
    return max(1, math.floor(resources.get("CPU", 1.0) / max(ray_options.num_cpus, 1e-6)))


def score_tracks(
    bench: Bench,
    tracks: list[Track],
    models: list[Detector],
    store: ScoreStore,
    options: RunOptions,
    progress: ProgressHook,
    say: Callable[[str], None],
) -> tuple[dict[int, str], dict[int, Decoded], int]:
    """The Ray counterpart of `local_engine.score_tracks`: same plan, same store, same return;
    progress counts the tracks of each batch once its answers are committed."""
    ray = ray_module()
    plan = plan_scoring(tracks, models, store, options)
    shas, done = plan.shas, plan.done
    resolve_failures: dict[int, Decoded] = {}
    if not plan.todo or not models:
        say(f"all {len(tracks)} tracks answered by the store")
        return shas, resolve_failures, 0
    advance = progress("scoring (ray)", len(plan.todo))
    started_here = not ray.is_initialized()
    if started_here:
        connect(ray, options.ray, len(models))
    calls = 0
    try:
        check_resources(ray, options.ray, len(models))
        dataset = _pipeline(ray, bench, plan, models, options)
        for batch in dataset.iter_batches(batch_size=options.batch_size, batch_format="numpy"):
            results: list[tuple[ScoreKey, str, ScoreRow]] = []
            seen: list[tuple[str, str]] = []
            for row, (index, sha) in enumerate(zip(batch["index"], batch["sha"], strict=True)):
                index = int(index)
                if not sha:
                    error = str(batch["error"][row])
                    resolve_failures[index] = Decoded(index, None, None, "resolve", error)
                    continue
                shas[index] = sha
                seen.append((plan.locators[index], sha))
                for model in models:
                    for slot, answer in pickle.loads(batch[f"answers_{model.card.id}"][row]):
                        if sha not in done[slot]:  # audio met twice in this run: first answer
                            done[slot].add(sha)
                            results.append((plan.loaded[slot].key, sha, answer))
            calls += sum(int(batch[f"calls_{m.card.id}"].sum()) for m in models)
            store.write(results, seen)
            advance(len(batch["index"]))
    except ray.exceptions.RayError as exc:
        raise EngineFailure(f"the Ray engine stopped: {_first_line(exc)}") from exc
    finally:
        if started_here:
            ray.shutdown()
    return shas, resolve_failures, calls


def _first_line(exc: BaseException) -> str:
    """The root cause of a Ray error in one line: the last line of the deepest exception in the
    chain that says anything (Ray wraps the actor's traceback in its own, and may chain an empty
    system exception below it)."""
    found = type(exc).__name__
    link: BaseException | None = exc
    while link is not None:
        lines = [line.strip() for line in str(link).splitlines() if line.strip()]
        if lines:
            found = lines[-1]
        link = link.__cause__
    return found[:300]


def connect(ray: Any, ray_options: RayOptions, n_models: int) -> None:
    """Join the cluster at `address`, or start a local one bound to the loopback interface.

    A local cluster advertises at least one CPU per detector actor plus one for decoding: an
    actor waiting for views holds its CPU without using it, and on a machine with fewer cores
    than pools the pipeline would otherwise wait forever for a decode slot."""
    quiet = {"log_to_driver": False, "logging_level": "warning", "include_dashboard": False}
    if ray_options.address:
        ray.init(address=ray_options.address, **quiet)
    else:
        needed = math.ceil(n_models * ray_options.num_cpus) + 1
        cpus = max(os.cpu_count() or 1, needed)
        ray.init(_node_ip_address="127.0.0.1", num_cpus=cpus, **quiet)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def check_resources(ray: Any, ray_options: RayOptions, n_models: int) -> None:
    """Refuse a cluster that cannot hold one actor per detector and a decode task at once."""
    have = ray.cluster_resources()
    cpus = n_models * ray_options.num_cpus + 1
    gpus = n_models * ray_options.num_gpus
    if have.get("CPU", 0.0) < cpus or have.get("GPU", 0.0) < gpus:
        raise Unavailable(
            f"the Ray cluster has {have.get('CPU', 0.0):g} CPU and {have.get('GPU', 0.0):g} GPU; "
            f"{n_models} detector pool(s) at --num-cpus {ray_options.num_cpus:g} / --num-gpus "
            f"{ray_options.num_gpus:g} per actor plus decoding need {cpus:g} CPU and {gpus:g} GPU",
            "lower --num-cpus/--num-gpus, score fewer models per run, or add nodes",
        )


def _pipeline(
    ray: Any, bench: Bench, plan: ScorePlan, models: list[Detector], options: RunOptions
) -> Any:
    """Decode tasks, then one actor pool per detector, each adding its answers to the rows."""
    items = [{"index": i, "track": pickle.dumps(t)} for i, t in plan.todo]
    blocks = max(1, math.ceil(len(items) / DECODE_BLOCK))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        decode_block,
        fn_kwargs={"specs": plan.specs, "limits": DecodeLimits(), "chains": options.chains,
                   "seed": options.seed},
        batch_size=DECODE_BLOCK,
        num_cpus=1,
        # A decode task reserves memory for its block, which also makes its resources differ
        # from the actors': Ray Data then keeps decoding in tasks of its own instead of fusing
        # it into the first detector's actors, where it would hold up the model.
        memory=DECODE_MEMORY,
    )  # fmt: skip
    size = pool_size(ray, options.ray)
    for n, model in enumerate(models, start=1):
        jobs = [
            ActorJob(slot, m.variant, m.view_index, m.key, frozenset(plan.done[slot]))
            for slot, m in enumerate(plan.loaded)
            if m.detector is model
        ]
        dataset = dataset.map_batches(
            DetectorActor,
            fn_constructor_kwargs={"load": _actor_load(model.card, bench, options), "jobs": jobs,
                                   "batch_size": options.batch_size, "last": n == len(models)},
            batch_size=options.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size),
            num_cpus=options.ray.num_cpus,
            num_gpus=options.ray.num_gpus,
        )  # fmt: skip
    return dataset
