"""The Ray engine: the runner's scoring stage spread over a Ray cluster.

The driver plans from the store and from each detector's identity (its card and the hashes of
its weight files: the driver loads no model), then keeps a bounded window of tracks in flight.
Decode tasks run anywhere on the cluster and return each detector pool's views as an object of
its own, so a pool's actors fetch only the views they score. Every pool starts with one actor
and is resized from what its first batches cost, so the costliest detector gets the most actors
and none waits on another. Answers are committed to the same score store the local engine uses,
each once, as they arrive. A lost node costs only its work in flight: actors restart elsewhere
and retry their calls, lost views are decoded again from their lineage, and a killed driver
resumes from the store.

Ray is imported only when this engine runs; it is the optional extra `artifactbench[ray]`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from artifactbench.audio.pool import Decoded, worker_tasks
from artifactbench.benches.base import Bench, Track
from artifactbench.benches.streamed import Delivery
from artifactbench.detectors.base import DetectorCard, Identified, Unavailable
from artifactbench.progress import ProgressHook
from artifactbench.runner.plan import (
    Completion,
    EngineFailure,
    RayOptions,
    RunOptions,
    ScorePlan,
    batch_view_bytes,
    fit_plan,
    plan_scoring,
)
from artifactbench.runner.ray_work import (
    ActorAnswer,
    ActorLoad,
    DecodedMeta,
    DetectorActor,
    PoolJob,
    WorkItem,
    decode_block,
)
from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore

# Tracks per decode task, like the local engine's chunk (each decode slot's first task: one).
DECODE_BLOCK = 2
# Memory a decode task reserves: a block of long tracks as float32 buffers and their views.
DECODE_MEMORY = 512 * 1024**2
# Calls queued on one actor: one running and one ready, so an actor never waits on the driver.
CALLS_PER_ACTOR = 2
# Seconds between two resizings of the pools.
RESIZE_EVERY = 2.0
INSTALL_HINT = "pip install -c constraints.txt -e '.[ray]'"


def ray_module() -> Any:
    """`ray`, or Unavailable with the install command."""
    try:
        import ray
    except ImportError as exc:
        raise Unavailable("the Ray engine needs Ray, which is not installed", INSTALL_HINT) from exc
    return ray


@dataclass
class Pending:
    """One decoded block's views for one pool (an object on the cluster) and what to score."""

    ref: Any
    items: list[tuple[int, int, int, str]]  # (row in the block, job position, slot, sha256)
    nbytes: int


@dataclass
class Actor:
    handle: Any
    in_flight: int = 0
    retired: bool = False  # killed by the driver: its unfinished calls go back to the queue


@dataclass
class Pool:
    """One detector's actors, the views waiting for them, and what its answers have cost."""

    model: Identified
    jobs: list[PoolJob]
    load: ActorLoad
    actors: list[Actor] = field(default_factory=list)
    pending: deque[Pending] = field(default_factory=deque)
    busy: float = 0.0  # actor-seconds spent scoring
    views: int = 0  # views answered
    peak: int = 0  # the most actors it had at once
    per_node: Counter[str] = field(default_factory=Counter)

    def cost_per_track(self) -> float:
        return self.busy / self.views * len(self.jobs)

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the pool: its size and where its answers were computed."""
        seconds = round(self.cost_per_track(), 4) if self.views else None
        return {"actors_peak": self.peak, "seconds_per_track": seconds,
                "answers_per_node": dict(sorted(self.per_node.items()))}  # fmt: skip


@dataclass
class Call:
    pool: Pool
    actor: Actor
    blocks: list[Pending]


def pool_targets(
    costs: list[float],
    decode_cost: float,
    cores: float,
    resources: dict[str, float],
    ray_options: RayOptions,
    caps: list[int],
) -> list[int]:
    """Actors per pool so that every pool keeps pace with the others and the cores stay busy.

    `costs[k]` is an actor's seconds per track in pool k, `decode_cost` a decode task's. CPU
    actors: at a throughput of L tracks/s pool k keeps L * costs[k] actors busy, and the `cores`
    run at most L = cores / (decode + sum of costs, each times its actor's CPUs); each pool gets
    its share rounded up (a pool at 1.8 actors needs 2, or it is the bottleneck), then the pool
    most above its share loses one until all fit the cluster's CPUs less one for decoding. GPU
    actors share the GPUs in proportion to their costs. Every pool keeps one actor and at most
    `caps[k]`."""
    spare_cpus = max(resources.get("CPU", 0.0) - 1.0, 0.0)
    per_cpu = max(ray_options.num_cpus, 1e-6)
    weights = costs if sum(costs) > 0 else [1.0] * len(costs)
    if ray_options.num_gpus > 0:
        slots = math.floor(resources.get("GPU", 0.0) / ray_options.num_gpus + 1e-9)
        exact = [slots * w / sum(weights) for w in weights]
    else:
        rate = cores / (decode_cost + sum(w * ray_options.num_cpus for w in weights))
        exact = [rate * w for w in weights]
    targets = [max(1, min(math.ceil(x - 0.05), cap)) for x, cap in zip(exact, caps, strict=True)]
    fits = spare_cpus / per_cpu + 1e-9
    while sum(targets) > fits and max(targets) > 1:  # trim the pool most above its share
        over = [t / x if t > 1 else -math.inf for t, x in zip(targets, exact, strict=True)]
        targets[over.index(max(over))] -= 1
    return targets


class _Engine:
    """The driver's loop: decode tasks and actor calls in flight, answers into the store."""

    def __init__(
        self, ray: Any, bench: Bench, plan: ScorePlan, models: list[Identified],
        store: ScoreStore, options: RunOptions, advance: Callable[[int], None],
        cores: int | None = None,
    ) -> None:  # fmt: skip
        self.ray, self.plan, self.store, self.options = ray, plan, store, options
        self.cores = cores  # the machine's cores, on a cluster this run started (else its CPUs)
        self.pools: list[Pool] = []
        self.where: dict[int, tuple[int, int]] = {}  # slot -> (pool, job position)
        for p, model in enumerate(models):
            jobs = [PoolJob(slot, m.variant, m.view_index)
                    for slot, m in enumerate(plan.loaded) if m.detector is model]  # fmt: skip
            self.where.update({job.slot: (p, j) for j, job in enumerate(jobs)})
            self.pools.append(Pool(model, jobs, _actor_load(model.card, bench, options)))
        ray_options = options.ray
        self.actor_class = ray.remote(DetectorActor).options(
            num_cpus=ray_options.num_cpus, num_gpus=ray_options.num_gpus,
            max_restarts=-1, max_task_retries=-1,  # a lost node: restart elsewhere, retry calls
        )  # fmt: skip
        self.decode = ray.remote(decode_block).options(
            num_cpus=1, memory=DECODE_MEMORY, num_returns=1 + len(self.pools), max_retries=3
        )
        slots = self._decode_slots()
        self.blocks = deque(worker_tasks(plan.todo, slots, DECODE_BLOCK))
        self.deliver = Delivery()  # streamed tracks' bytes, attached as each block leaves
        self.decoding: dict[Any, list[Any]] = {}  # summary ref -> each pool's views ref
        self.calls: dict[Any, Call] = {}
        self.open = 0  # tracks handed to decoding and not yet fully answered
        self.remaining = len(plan.todo)
        self.advance = advance
        self.completion = Completion(self._finished)
        self.shas = plan.shas
        self.resolve_failures: dict[int, Decoded] = {}
        self.detector_calls = 0
        self.decode_seconds, self.decoded = 0.0, 0
        self.last_resize = time.monotonic()
        self.cpus = ray.cluster_resources().get("CPU", 0.0)

    def _finished(self, tracks: int) -> None:
        self.open -= tracks
        self.remaining -= tracks
        self.advance(tracks)

    def _actor_cpus(self) -> float:
        return sum(len(p.actors) for p in self.pools) * self.options.ray.num_cpus

    def _decode_slots(self) -> int:
        free = self.ray.cluster_resources().get("CPU", 0.0) - self._actor_cpus()
        return max(1, math.floor(free))

    def run(self) -> None:
        for pool in self.pools:
            self._grow(pool)
        while self.blocks or self.decoding or self.calls or any(p.pending for p in self.pools):
            self._submit_decodes()
            self._dispatch()
            ready, _ = self.ray.wait([*self.decoding, *self.calls], num_returns=1)
            for ref in ready:
                if ref in self.decoding:
                    self._decoded(ref)
                else:
                    self._answered(ref)
            self._resize()
        for pool in self.pools:
            pool.model.provenance["ray_pool"] = pool.record()

    def stop(self) -> None:
        """Free the cluster: every actor this run started is killed."""
        for pool in self.pools:
            for actor in pool.actors:
                self.ray.kill(actor.handle)

    def _submit_decodes(self) -> None:
        """Decode tasks while there is room: a decode slot free and the window not full (the
        window bounds the views alive on the cluster, whatever the bench's length)."""
        actors = sum(len(p.actors) for p in self.pools)
        window = CALLS_PER_ACTOR * self.options.batch_size * actors + 2 * DECODE_BLOCK * (
            self._decode_slots()
        )
        while self.blocks and len(self.decoding) <= self._decode_slots() and self.open < window:
            block = self.deliver(self.blocks.popleft())
            jobs = [pool.jobs for pool in self.pools]
            refs = self.decode.remote(
                block, self.plan.specs, self.options.chains, self.options.seed, jobs
            )
            self.decoding[refs[0]] = refs[1:]
            self.open += len(block)

    def _dispatch(self) -> None:
        """Hand each pool's waiting views to its least busy actor: a full batch (`batch_size`
        tracks, or half the memory budget of views), or what there is when the actor is idle
        or decoding is over, so a short run is not starved by the batch grain."""
        drained = not self.blocks and not self.decoding
        cap_bytes = batch_view_bytes(self.options)
        for pool in self.pools:
            cap_items = self.options.batch_size * len(pool.jobs)
            while pool.pending:
                actor = min(pool.actors, key=lambda a: a.in_flight)
                if actor.in_flight >= CALLS_PER_ACTOR:
                    break
                items = sum(len(b.items) for b in pool.pending)
                nbytes = sum(b.nbytes for b in pool.pending)
                full = items >= cap_items or nbytes >= cap_bytes
                if not (full or drained or actor.in_flight == 0):
                    break
                taken = [pool.pending.popleft()]
                while pool.pending and (
                    sum(len(b.items) for b in taken) + len(pool.pending[0].items) <= cap_items
                    and sum(b.nbytes for b in taken) + pool.pending[0].nbytes <= cap_bytes
                ):
                    taken.append(pool.pending.popleft())
                self._call(pool, actor, taken)

    def _call(self, pool: Pool, actor: Actor, blocks: list[Pending]) -> None:
        work: list[WorkItem] = [
            (b, row, job, slot, sha)
            for b, pending in enumerate(blocks)
            for row, job, slot, sha in pending.items
        ]
        ref = actor.handle.score.remote(work, *[b.ref for b in blocks])
        self.calls[ref] = Call(pool, actor, blocks)
        actor.in_flight += 1

    def _decoded(self, ref: Any) -> None:
        """A block's summaries: failures committed now, views queued for their pools."""
        views = self.decoding.pop(ref)
        metas: list[DecodedMeta] = self.ray.get(ref)
        loaded, done = self.plan.loaded, self.plan.done
        failures: list[tuple[ScoreKey, str, ScoreRow]] = []
        seen: list[tuple[str, str]] = []
        queued = [Pending(view, [], 0) for view in views]
        for row, meta in enumerate(metas):
            self.decode_seconds += meta.seconds
            self.decoded += 1
            if meta.sha is None:
                failure = Decoded(meta.index, None, None, "resolve", meta.error)
                self.resolve_failures[meta.index] = failure
                self._finished(1)
                continue
            sha = meta.sha
            self.shas[meta.index] = sha
            seen.append((self.plan.locators[meta.index], sha))
            needs = [slot for slot, answered in enumerate(done) if sha not in answered]
            for slot in needs:
                done[slot].add(sha)
            self.completion.expect(sha, len(needs))
            for slot in needs:
                if slot in meta.failures:
                    failures.append((loaded[slot].key, sha, meta.failures[slot]))
                    continue
                p, job = self.where[slot]
                if not queued[p].items or queued[p].items[-1][0] != row:
                    queued[p].nbytes += meta.pool_bytes[p]
                queued[p].items.append((row, job, slot, sha))
        self.store.write(failures, seen)
        self.completion.committed(sha for _, sha, _ in failures)
        for pool, pending in zip(self.pools, queued, strict=True):
            if pending.items:
                pool.pending.append(pending)

    def _answered(self, ref: Any) -> None:
        """A call's answers into the store; a retired actor's call goes back to the queue."""
        call = self.calls.pop(ref)
        call.actor.in_flight -= 1
        try:
            answer: ActorAnswer = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            if not call.actor.retired:
                raise
            call.pool.pending.extendleft(reversed(call.blocks))
            return
        loaded = self.plan.loaded
        rows = [(loaded[slot].key, sha, row) for slot, sha, row in answer.answers]
        self.store.write(rows, [])
        self.completion.committed(sha for _, sha, _ in rows)
        pool = call.pool
        self.detector_calls += answer.calls
        pool.busy += answer.busy
        pool.views += len(rows)
        pool.per_node[answer.node] += len(rows)
        pool.model.provenance.update(answer.provenance)

    def _grow(self, pool: Pool) -> None:
        handle = self.actor_class.remote(
            pool.load, pool.model.weights_sha256, self.options.batch_size
        )
        pool.actors.append(Actor(handle))
        pool.peak = max(pool.peak, len(pool.actors))

    def _retire(self, pool: Pool, actor: Actor) -> None:
        actor.retired = True
        pool.actors.remove(actor)
        self.ray.kill(actor.handle)

    def _resize(self) -> None:
        """Every few seconds, once each pool has answered: actors per pool from the measured
        costs. A cluster that lost CPUs (a node) retires actors at once, busy or not (their
        calls return to the queue); otherwise only idle actors are retired."""
        resources = self.ray.cluster_resources()
        cpus = resources.get("CPU", 0.0)
        shrunk, self.cpus = cpus < self.cpus, cpus
        now = time.monotonic()
        measured = all(p.views for p in self.pools) and self.decoded
        if not shrunk and (now - self.last_resize < RESIZE_EVERY or not measured):
            return
        self.last_resize = now
        costs = [p.cost_per_track() if p.views else 1.0 for p in self.pools]
        decode_cost = self.decode_seconds / self.decoded if self.decoded else 0.0
        caps = [max(1, math.ceil(self.remaining / self.options.batch_size))] * len(self.pools)
        cores = min(self.cores, cpus) if self.cores else cpus
        targets = pool_targets(costs, decode_cost, cores, resources, self.options.ray, caps)
        for pool, target in zip(self.pools, targets, strict=True):
            while len(pool.actors) < target:
                self._grow(pool)
            for actor in sorted(pool.actors, key=lambda a: a.in_flight):
                if len(pool.actors) <= target or (actor.in_flight and not shrunk):
                    break
                self._retire(pool, actor)


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


def score_tracks(
    bench: Bench,
    tracks: list[Track],
    models: list[Identified],
    store: ScoreStore,
    options: RunOptions,
    progress: ProgressHook,
    say: Callable[[str], None],
) -> tuple[dict[int, str], dict[int, Decoded], int]:
    """The Ray counterpart of `local_engine.score_tracks`: same plan, same store, same return;
    `models` need only be identified (`load_models(..., identify_only=True)`)."""
    ray = ray_module()
    plan = plan_scoring(tracks, models, store, options)
    if not plan.todo or not models:
        say(f"all {len(tracks)} tracks answered by the store")
        return plan.shas, {}, 0
    advance = progress("scoring (ray)", len(plan.todo))
    started_here = not ray.is_initialized()
    if started_here:
        connect(ray, options.ray, len(models))
    engine = None
    try:
        check_resources(ray, options.ray, len(models))
        cores = (os.cpu_count() or 1) if started_here else None
        engine = _Engine(ray, bench, plan, models, store, options, advance, cores)
        engine.run()
    except ray.exceptions.RayError as exc:
        raise EngineFailure(f"the Ray engine stopped: {_first_line(exc)}") from exc
    finally:
        if engine is not None:
            engine.deliver.close()
        if engine is not None and not started_here:
            engine.stop()
        if started_here:
            ray.shutdown()
    return engine.shas, engine.resolve_failures, engine.detector_calls


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

    A local cluster advertises one CPU per pool more than the machine has (and at least one per
    pool plus one for decoding): pools are sized by rounding up (a pool at 1.8 actors gets 2),
    and a cheap pool's actor, mostly waiting, would otherwise hold a core it does not use."""
    quiet = {"log_to_driver": False, "logging_level": "warning", "include_dashboard": False}
    if ray_options.address:
        ray.init(address=ray_options.address, **quiet)
        return
    per_pools = math.ceil(n_models * ray_options.num_cpus)
    cpus = max(os.cpu_count() or 1, per_pools + 1) + per_pools
    # "local": a cluster of its own, never one another run left behind on this machine.
    ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=cpus, **quiet)


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
