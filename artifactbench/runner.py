"""Bench x detectors -> score store -> run directory.

The runner owns the order of work: load each detector once, skip every (detector, audio) pair the
store already answers, decode the rest once in worker processes while the main process scores in
batches, commit each batch, then export `predictions.parquet` and hand over to the reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artifactbench import __version__
from artifactbench.audio import DECODE_PROTOCOL, ViewSpec
from artifactbench.benches.base import Bench, Track, cohort
from artifactbench.decoding import Decoded, decode_stream
from artifactbench.detectors.base import (
    Detector,
    DetectorCard,
    FitPlan,
    LoadContext,
    Scored,
    Unavailable,
)
from artifactbench.detectors.memory import DEFAULT_BUDGET
from artifactbench.detectors.registry import backend
from artifactbench.devices import check_device
from artifactbench.paths import cache_dir
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.store import ScoreKey, ScoreRow, ScoreStore
from artifactbench.transforms import Transform, chain_hash, chain_spec, describe_chain

PREDICTION_COLUMNS = (
    "model", "track_id", "bench", "subset", "label", "generator", "bench_origin",
    "prob", "status", "stage", "error", "seconds", "note", "variant",
)  # fmt: skip
# The `variant` of rows scored on the decoded audio itself, with no transform chain.
ORIGINAL = "original"


# Where scoring runs: decode worker processes and this process, or a Ray cluster.
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    """Where the Ray engine runs and what each detector actor asks the cluster for."""

    address: str | None = None  # None: start a local cluster on this machine
    num_cpus: float = 1.0  # per detector actor
    num_gpus: float = 0.0  # per detector actor


class EngineFailure(RuntimeError):
    """The engine failed the run (a lost cluster node, an actor that could not load its
    detector); every batch written before it stays in the store, so a rerun resumes."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run: the answers committed so far stay in the store and no
    run directory is left behind, so the same command resumes."""

    def __init__(self, answers: int, store: Path) -> None:
        super().__init__(
            f"interrupted: {answers} answers kept in {store}; rerun the same command to resume"
        )
        self.answers = answers
        self.store = store


class NothingToScore(ValueError):
    """Every chosen detector was skipped: no run directory is written."""


# A run directory is written under this suffix and renamed when complete.
PARTIAL_SUFFIX = ".partial"


@dataclass
class RunOptions:
    split: str = "test"
    n_per_source: int | None = None
    limit: int | None = None
    batch_size: int = 16
    workers: int = 1
    device: str = "cpu"
    threshold: float = 0.5
    seed: int = 0
    out: Path = Path("runs")
    strict: bool = False
    weights: dict[str, Path] = field(default_factory=dict)
    # Transform chains, each scored as its own variant of every track; the first is primary.
    chains: list[list[Transform]] = field(default_factory=lambda: [[]])
    engine: str = "local"  # one of ENGINES
    ray: RayOptions = field(default_factory=RayOptions)
    # Where bench-fitted detectors (fakeprint) fit: this bench's train split (None: the scored
    # bench's), for benches without a train split of their own.
    fit_on: Bench | None = None
    # Bytes of intermediates one detector call may hold, whatever the batch (detectors.memory).
    memory_budget: int = DEFAULT_BUDGET


@dataclass
class Skipped:
    model: str
    reason: str
    hint: str

    def line(self) -> str:
        """The one line a person reads: the model, why, and the command that fixes it."""
        return (
            f"skipped {self.model}: {self.reason.removeprefix(f'{self.model}: ')}; fix: {self.hint}"
        )


@dataclass
class LoadedModel:
    detector: Detector
    key: ScoreKey
    view_index: int
    variant: int = 0


def variant_name(chain: list[Transform]) -> str:
    """How a chain is named in predictions and reports: its canonical spec, or "original"."""
    return chain_spec(chain) or ORIGINAL


@dataclass
class RunResult:
    run_dir: Path
    models: list[str]
    skipped: list[Skipped]
    n_tracks: int
    detector_calls: int
    seconds: float


def _say_nothing(_line: str) -> None:
    return None


def _rank(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def limit_tracks(tracks: list[Track], limit: int | None, seed: int) -> list[Track]:
    """A seeded sample of `limit` tracks in bench order, stratified: subsets take turns (each
    giving its next track in sha256("SEED:track_id") order), so every subset is present as
    soon as `limit` reaches the number of subsets, and they stay balanced beyond it."""
    if limit is None or limit >= len(tracks):
        return tracks
    queues: dict[str, list[int]] = {}
    for i, track in enumerate(tracks):
        queues.setdefault(track.subset, []).append(i)
    turns = [
        sorted(queue, key=lambda i: _rank(seed, tracks[i].track_id))
        for _, queue in sorted(queues.items(), key=lambda item: _rank(seed, item[0]))
    ]
    keep: set[int] = set()
    depth = 0
    while len(keep) < limit:
        for queue in turns:
            if depth < len(queue) and len(keep) < limit:
                keep.add(queue[depth])
        depth += 1
    return [t for i, t in enumerate(tracks) if i in keep]


def fit_plan(
    card: DetectorCard, bench: Bench, workers: int, progress: ProgressHook = no_progress
) -> FitPlan | None:
    """How a bench-fitted detector fits: on the bench's train split only, cached by its identity."""
    train = bench.select("train")
    if not card.fits_on_bench or not train:
        return None
    ids = sorted(t.track_id for t in train)
    identity = json.dumps(
        {"card": card.id, "view": card.protocol_hash(DECODE_PROTOCOL), "bench": bench.fingerprint,
         "ids": ids},
        sort_keys=True,
    )  # fmt: skip
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    record = {
        "bench": bench.name,
        "bench_fingerprint": bench.fingerprint,
        "split": "train",
        "train_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "n_train_tracks": len(ids),
    }

    def examples() -> Iterator[tuple[np.ndarray, str]]:
        items = list(enumerate(train))
        advance = progress(f"fitting {card.id} on the train split", len(items))
        for decoded in decode_stream(items, [card.view], workers):
            advance(1)
            if decoded.views is not None:
                yield decoded.views[0], train[decoded.index].label

    return FitPlan(cache_dir() / "fits" / f"{card.id}-{digest}.json", examples, record)


def load_models(
    cards: Iterable[DetectorCard],
    bench: Bench | None,
    options: RunOptions,
    progress: ProgressHook = no_progress,
) -> tuple[list[Detector], list[Skipped]]:
    """Load every chosen detector once; an unavailable one is skipped with its fix (or raised).

    Bench-fitted detectors fit on `options.fit_on` when given, else on `bench`."""
    loaded, skipped = [], []
    fit_bench = options.fit_on or bench
    for card in cards:
        plan = None if fit_bench is None else fit_plan(card, fit_bench, options.workers, progress)
        context = LoadContext(options.device, options.seed, plan, options.memory_budget)
        weights = options.weights.get(card.id)
        try:
            loaded.append(backend(card).load(card, weights, context))
        except Unavailable as exc:
            if options.strict:
                raise
            skipped.append(Skipped(card.id, str(exc), exc.hint))
        except Exception as exc:  # noqa: BLE001 - a model that cannot load costs that model only
            reason = f"{card.id} failed to load: {type(exc).__name__}: {exc}".splitlines()[0]
            if options.strict:
                raise Unavailable(reason, "check --weights and the card") from exc
            skipped.append(Skipped(card.id, reason[:300], "check --weights and the card"))
    return loaded, skipped


class _Scorer:
    """Buffers views per detector, scores full batches and commits each to the store.

    A batch is full at `batch_size` tracks or once its views hold `batch_bytes`, whichever
    comes first, so a large `--batch-size` of long views cannot hold memory without bound.
    A track counts as done (`advance`) only once every answer it needs is committed."""

    def __init__(
        self,
        models: list[LoadedModel],
        store: ScoreStore,
        batch_size: int,
        advance: Callable[[int], None],
        batch_bytes: int,
    ) -> None:
        self.models = models
        self.store = store
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.advance = advance
        self.buffers: list[list[tuple[str, np.ndarray]]] = [[] for _ in models]
        self.buffered = [0 for _ in models]
        self.pending_locators: list[tuple[str, str]] = []
        self.calls = 0
        self.missing: dict[str, int] = {}  # audio sha256 -> answers not yet committed
        self.waiting: dict[str, int] = {}  # audio sha256 -> tracks done when it is answered

    def expect(self, sha: str, answers: int) -> None:
        """A track whose audio still needs `answers` answers (0: the store has them all)."""
        self.missing[sha] = self.missing.get(sha, 0) + answers
        self.waiting[sha] = self.waiting.get(sha, 0) + 1
        self._settle([sha])

    def _commit(self, rows: list[tuple[ScoreKey, str, ScoreRow]]) -> None:
        self.store.write(rows, self._take_locators())
        for _, sha, _ in rows:
            self.missing[sha] -= 1
        self._settle({sha for _, sha, _ in rows})

    def _settle(self, shas: Iterable[str]) -> None:
        for sha in shas:
            if self.missing.get(sha) == 0:
                del self.missing[sha]
                self.advance(self.waiting.pop(sha))

    def add(self, model_index: int, sha: str, view: np.ndarray) -> None:
        self.buffers[model_index].append((sha, view))
        self.buffered[model_index] += view.nbytes
        full = len(self.buffers[model_index]) >= self.batch_size
        if full or self.buffered[model_index] >= self.batch_bytes:
            self.flush(model_index)

    def fail(self, rows: list[tuple[ScoreKey, str, ScoreRow]]) -> None:
        self._commit(rows)

    def remember(self, locator: str, sha: str) -> None:
        self.pending_locators.append((locator, sha))

    def _take_locators(self) -> list[tuple[str, str]]:
        taken, self.pending_locators = self.pending_locators, []
        return taken

    def flush(self, model_index: int) -> None:
        batch = self.buffers[model_index]
        if not batch:
            return
        self.buffers[model_index] = []
        self.buffered[model_index] = 0
        model = self.models[model_index]
        rows = [(model.key, sha, row) for sha, row in self._score(model.detector, batch)]
        self._commit(rows)

    def flush_all(self) -> None:
        for i in range(len(self.models)):
            self.flush(i)
        if self.pending_locators:
            self.store.write([], self._take_locators())

    def _score(
        self, detector: Detector, batch: list[tuple[str, np.ndarray]]
    ) -> list[tuple[str, ScoreRow]]:
        rows, calls = score_batch(detector, batch)
        self.calls += calls
        return rows


def batch_view_bytes(options: RunOptions) -> int:
    """What the views of one detector's batch may hold: half the memory budget, the other half
    being for the intermediates of a call."""
    return max(1, options.memory_budget // 2)


def score_batch(
    detector: Detector, batch: list[tuple[str, np.ndarray]]
) -> tuple[list[tuple[str, ScoreRow]], int]:
    """Score a batch; if it raises, score its tracks one by one so one bad track fails alone.

    Returns a row per (audio sha256, view) and the number of detector calls made."""
    start = time.perf_counter()
    try:
        probs = detector.score([view for _, view in batch])
        per = (time.perf_counter() - start) / len(batch)
        return [(sha, score_row(p, per)) for (sha, _), p in zip(batch, probs, strict=True)], 1
    except Exception as exc:  # noqa: BLE001 - a model error is a recorded failure
        if len(batch) == 1:
            return [(batch[0][0], _inference_failure(exc))], 1
    out = []
    for sha, view in batch:
        one = time.perf_counter()
        try:
            prob = detector.score([view])[0]
            out.append((sha, score_row(prob, time.perf_counter() - one)))
        except Exception as exc:  # noqa: BLE001 - a model error is a recorded failure
            out.append((sha, _inference_failure(exc)))
    return out, 1 + len(batch)


def _inference_failure(exc: Exception) -> ScoreRow:
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return ScoreRow(None, "failed", "inference", message, 0.0)


def score_row(result: float | Scored | None, seconds: float) -> ScoreRow:
    prob, note = (result.prob, result.note) if isinstance(result, Scored) else (result, None)
    if prob is None or not np.isfinite(prob):
        message = note or "model returned a non-finite score"
        return ScoreRow(None, "failed", "inference", message, seconds)
    if not 0.0 <= prob <= 1.0:
        message = f"model returned {prob:g}, not a probability in [0, 1]"
        return ScoreRow(None, "failed", "inference", message, seconds, note)
    return ScoreRow(float(prob), "scored", None, None, seconds, note)


def score_key(detector: Detector, chain: list[Transform] | None = None, seed: int = 0) -> ScoreKey:
    """The store namespace of a loaded detector: id, exact weights, and its input protocol,
    which includes the transform chain applied after decoding (none: the plain protocol)."""
    card = detector.card
    return ScoreKey(card.id, detector.weights_sha256, card.protocol_hash(protocol(chain, seed)))


def protocol(chain: list[Transform] | None, seed: int = 0) -> str:
    """The decode protocol, then the transform chain's hash when there is one, and the seed
    when a step draws random numbers (noise differs from seed to seed)."""
    if not chain:
        return DECODE_PROTOCOL
    seeded = f"|seed:{seed}" if any(t.seeded for t in chain) else ""
    return f"{DECODE_PROTOCOL}|transforms:{chain_hash(chain)}{seeded}"


@dataclass
class ScorePlan:
    """What a run still has to score, worked out from the store before any track is decoded.

    `loaded` holds one entry per (variant, detector) pair, `done[j]` the audio each pair already
    has an answer for, `shas` the tracks the store answers completely and `todo` the rest."""

    specs: list[ViewSpec]
    loaded: list[LoadedModel]
    done: list[set[str]]
    locators: dict[int, str]
    shas: dict[int, str]
    todo: list[tuple[int, Track]]


def plan_scoring(
    tracks: list[Track], models: list[Detector], store: ScoreStore, options: RunOptions
) -> ScorePlan:
    """Every (variant, detector) pair with its view, and the tracks the store leaves to do."""
    specs: list[ViewSpec] = []
    loaded = []
    for det in models:
        if det.card.view not in specs:
            specs.append(det.card.view)
    for v, chain in enumerate(options.chains):
        for det in models:
            view = specs.index(det.card.view)
            loaded.append(LoadedModel(det, score_key(det, chain, options.seed), view, v))
    done = [store.scored_audio(m.key) for m in loaded]
    locators = {i: t.locator() for i, t in enumerate(tracks)}
    known = store.known_audio(locators.values())
    shas: dict[int, str] = {}
    todo: list[tuple[int, Track]] = []
    for i, track in enumerate(tracks):
        sha = known.get(locators[i])
        if sha is not None and all(sha in d for d in done):
            shas[i] = sha
        else:
            todo.append((i, track))
    return ScorePlan(specs, loaded, done, locators, shas, todo)


def variant_failure(decoded: Decoded, variant: int) -> ScoreRow | None:
    """The failure row of one variant of a decoded track, or None when its views exist."""
    if not decoded.variants:
        return ScoreRow(None, "failed", decoded.stage, decoded.error, decoded.seconds)
    chosen = decoded.variants[variant]
    if chosen.views is None:
        return ScoreRow(None, "failed", chosen.stage, chosen.error, chosen.seconds)
    return None


def score_tracks(
    tracks: list[Track],
    models: list[Detector],
    store: ScoreStore,
    options: RunOptions,
    progress: ProgressHook = no_progress,
    say: Callable[[str], None] = _say_nothing,
) -> tuple[dict[int, str], dict[int, Decoded], int]:
    """Fill the store for every (model, track) pair not yet answered, on this machine.

    Progress counts tracks whose answers are all committed to the store. Returns the audio
    sha256 of each track index, the resolve failures by index, and the number of detector calls
    made.
    """
    plan = plan_scoring(tracks, models, store, options)
    loaded, done, shas = plan.loaded, plan.done, plan.shas
    if not plan.todo:
        say(f"all {len(tracks)} tracks answered by the store")
        return shas, {}, 0
    advance = progress("scoring", len(plan.todo))
    scorer = _Scorer(loaded, store, options.batch_size, advance, batch_view_bytes(options))
    resolve_failures: dict[int, Decoded] = {}
    decoded_stream = decode_stream(
        plan.todo, plan.specs, options.workers, chains=options.chains, seed=options.seed
    )
    for decoded in decoded_stream:
        if decoded.audio_sha256 is None:
            resolve_failures[decoded.index] = decoded
            advance(1)
            continue
        sha = decoded.audio_sha256
        shas[decoded.index] = sha
        scorer.remember(plan.locators[decoded.index], sha)
        needs = [j for j, d in enumerate(done) if sha not in d]
        for j in needs:
            done[j].add(sha)
        scorer.expect(sha, len(needs))
        for j in needs:
            failure = variant_failure(decoded, loaded[j].variant)
            if failure is not None:
                scorer.fail([(loaded[j].key, sha, failure)])
            else:
                views = decoded.variants[loaded[j].variant].views
                scorer.add(j, sha, views[loaded[j].view_index])  # type: ignore[index]
    scorer.flush_all()
    return shas, resolve_failures, scorer.calls


def extra_columns(tracks: list[Track]) -> list[str]:
    """Bench-specific track fields (e.g. SONICS `fake_type`) carried into the predictions."""
    names = {name for t in tracks for name, _ in t.extra}
    return sorted(names - set(PREDICTION_COLUMNS))


def predictions_table(
    tracks: list[Track],
    models: list[Detector],
    store: ScoreStore,
    shas: dict[int, str],
    resolve_failures: dict[int, Decoded],
    chains: list[list[Transform]] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (model, variant, track), from the store alone plus this run's resolve
    failures."""
    extras = extra_columns(tracks)
    rows = []
    pairs = [(chain, det) for chain in (chains or [[]]) for det in models]
    for chain, det in pairs:
        answers = store.fetch(score_key(det, chain, seed), shas.values())
        for i, track in enumerate(tracks):
            fields = dict(track.extra)
            base = {
                "model": det.card.id, "track_id": track.track_id, "bench": track.bench,
                "subset": track.subset, "label": track.label, "generator": track.generator,
                "bench_origin": track.bench_origin, "variant": variant_name(chain),
                **{name: fields.get(name) for name in extras},
            }  # fmt: skip
            if i in resolve_failures:
                failure = resolve_failures[i]
                rows.append({**base, "prob": None, "status": "failed", "stage": "resolve",
                             "error": failure.error, "seconds": 0.0, "note": None})  # fmt: skip
                continue
            answer = answers[shas[i]]
            rows.append({**base, "prob": answer.prob, "status": answer.status,
                         "stage": answer.stage, "error": answer.error,
                         "seconds": answer.seconds, "note": answer.note})  # fmt: skip
    return rows


def write_predictions(
    rows: list[dict[str, Any]], meta: dict[str, Any], path: Path, extras: list[str]
) -> None:
    """Write the contract file atomically, with the sanity rules and threshold as metadata."""
    floats = {"prob", "seconds"}
    fields = [
        (name, pa.float64() if name in floats else pa.string()) for name in PREDICTION_COLUMNS
    ]
    fields += [(name, pa.string()) for name in extras]
    schema = pa.schema(fields, metadata={"artifactbench": json.dumps(meta, sort_keys=True)})
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _free_name(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first name neither a run nor a partial one has."""
    path, n = base, 1
    while path.exists() or path.with_name(path.name + PARTIAL_SUFFIX).exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@dataclass
class RunDir:
    """A run directory being written (`work`) and the name it takes once complete (`final`)."""

    work: Path
    final: Path


@contextmanager
def new_run_dir(out: Path, bench: str, split: str) -> Iterator[RunDir]:
    """A run directory that appears only complete: written as NAME.partial, renamed to NAME when
    the block ends, and removed if the block raises (an interrupted run leaves none)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in bench).strip("-")
    final = _free_name(out / f"{safe}-{split}-{stamp}")
    target = RunDir(final.with_name(final.name + PARTIAL_SUFFIX), final)
    target.work.mkdir(parents=True)
    try:
        yield target
    except BaseException:
        shutil.rmtree(target.work, ignore_errors=True)
        raise
    if final.exists():  # another run took the name meanwhile
        target.final = _free_name(final)
    target.work.rename(target.final)


def is_partial_run(path: Path) -> bool:
    """A run directory still being written, or left by a run killed before it finished."""
    return path.name.endswith(PARTIAL_SUFFIX)


def _engine_record(options: RunOptions) -> dict[str, Any]:
    if options.engine != "ray":
        return {"name": options.engine}
    ray = options.ray
    return {"name": "ray", "address": ray.address or "local", "num_cpus_per_actor": ray.num_cpus,
            "num_gpus_per_actor": ray.num_gpus}  # fmt: skip


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    names = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "av", "soxr", "torch",
             "onnxruntime")  # fmt: skip
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run(
    bench: Bench,
    cards: list[DetectorCard],
    options: RunOptions,
    progress: ProgressHook = no_progress,
    store_path: Path | None = None,
    say: Callable[[str], None] = _say_nothing,
) -> RunResult:
    """Run the benchmark and leave every file of the results contract in a new run directory.

    `say` gets the lines a person should read as they happen (the sample a --limit kept,
    skipped models, a store that answers everything). With no model left to score nothing is
    written (NothingToScore); SIGINT stops it as Interrupted, the store keeping every committed
    answer and no run directory left behind."""
    if options.engine not in ENGINES:
        raise ValueError(f"unknown engine {options.engine!r}; choose from: {', '.join(ENGINES)}")
    check_device(options.device)
    started, wall_started = time.perf_counter(), time.time()
    selected = bench.select(options.split)
    if options.n_per_source is not None:
        selected = cohort(selected, options.n_per_source, options.seed)
    tracks = limit_tracks(selected, options.limit, options.seed)
    if len(tracks) < len(selected):
        say(_sample_line(options.limit, selected, tracks))
    store_file = (store_path or options.out / "scores.sqlite").resolve()
    store: ScoreStore | None = None
    try:
        models, skipped = load_models(cards, bench, options, progress)
        for skip in skipped:
            say(skip.line())
        if not models:
            names = ", ".join(s.model for s in skipped) or "none chosen"
            raise NothingToScore(f"no model left to score (skipped: {names}); nothing written")
        with ScoreStore(store_file) as store:
            if options.engine == "ray":
                from artifactbench import ray_engine

                shas, resolve_failures, calls = ray_engine.score_tracks(
                    bench, tracks, models, store, options, progress, say
                )
            else:
                shas, resolve_failures, calls = score_tracks(
                    tracks, models, store, options, progress, say
                )
            rows = predictions_table(
                tracks, models, store, shas, resolve_failures, options.chains, options.seed
            )
        record = _run_record(bench, options, selected, tracks, models, skipped, store_file)
        record["detector_calls"] = calls
        record["timeline"] = {
            "started": _utc(wall_started),
            "first_answer": _utc(store.first_write),
            "last_answer": _utc(store.last_write),
        }
        with new_run_dir(options.out, bench.name, options.split) as target:
            _write_run(target.work, bench, options, tracks, models, rows, record, started)
    except KeyboardInterrupt:
        raise Interrupted(store.written if store else 0, store_file) from None
    return RunResult(
        target.final, [m.card.id for m in models], skipped, len(tracks), calls,
        time.perf_counter() - started,
    )  # fmt: skip


def _utc(unix: float | None) -> str | None:
    """An instant of the run's timeline, to the millisecond (None: it did not happen)."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")


def _sample_line(limit: int | None, selected: list[Track], tracks: list[Track]) -> str:
    """Which sample a --limit kept, subsets named, so a missing subset is seen before scoring."""
    present = sorted({t.subset for t in tracks})
    every = {t.subset for t in selected}
    return (
        f"warning: --limit {limit}: scoring {len(tracks)} of {len(selected)} tracks, "
        f"{len(present)} of {len(every)} subsets present (a stratified seeded sample; recorded "
        f"in run.json): {', '.join(present)}"
    )


def _write_run(
    run_dir: Path,
    bench: Bench,
    options: RunOptions,
    tracks: list[Track],
    models: list[Detector],
    rows: list[dict[str, Any]],
    record: dict[str, Any],
    started: float,
) -> None:
    """predictions.parquet, run.json and every report, into a run directory being written."""
    from artifactbench.reports import write_reports

    subsets = sorted({t.subset for t in tracks})
    meta = {
        "threshold": options.threshold,
        "seed": options.seed,
        "bench": bench.name,
        "split": options.split,
        "variants": [variant_name(chain) for chain in options.chains],
        "subsets": {s: bench.subsets[s].rule for s in subsets},
        "models": {
            m.card.id: {"params": m.card.params, "paper_name": m.card.paper_name} for m in models
        },
    }
    write_predictions(rows, meta, run_dir / "predictions.parquet", extra_columns(tracks))
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_reports(run_dir / "predictions.parquet", run_dir, seed=options.seed)


def _run_record(
    bench: Bench,
    options: RunOptions,
    selected: list[Track],
    tracks: list[Track],
    models: list[Detector],
    skipped: list[Skipped],
    store_file: Path,
) -> dict[str, Any]:
    """run.json: how the run was made (harness, bench, options, detectors, packages)."""
    return {
        "harness": {"version": __version__, "git_revision": _git_revision()},
        "bench": {"name": bench.name, "fingerprint": bench.fingerprint, "source": bench.source},
        "split": options.split,
        "seed": options.seed,
        "threshold": options.threshold,
        "device": options.device,
        "batch_size": options.batch_size,
        "memory_budget": options.memory_budget,
        "workers": options.workers,
        "engine": _engine_record(options),
        "cohort": {"n_per_source": options.n_per_source, "seed": options.seed},
        "limit": {
            "requested": options.limit,
            "original": len(selected),
            "effective": len(tracks),
            "subsets": sorted({t.subset for t in tracks}),
        },  # fmt: skip
        "fit_on": _fit_record(options.fit_on),
        "decode_protocol": DECODE_PROTOCOL,
        "variants": [
            {
                "name": variant_name(chain),
                "protocol": protocol(chain, options.seed),
                "transforms": describe_chain(chain),
            }
            for chain in options.chains
        ],  # fmt: skip
        "detectors": {
            m.card.id: {
                "card": m.card.to_json(),
                "weights_sha256": m.weights_sha256,
                "protocol_hash": m.card.protocol_hash(DECODE_PROTOCOL),
                "variant_protocol_hashes": {
                    variant_name(chain): m.card.protocol_hash(protocol(chain, options.seed))
                    for chain in options.chains
                },
                "provenance": m.provenance,
            }
            for m in models
        },
        "skipped": {s.model: {"reason": s.reason, "fix": s.hint} for s in skipped},
        "store": str(store_file),
        "packages": _versions(),
    }


def _fit_record(fit_on: Bench | None) -> dict[str, str] | None:
    if fit_on is None:
        return None
    return {"name": fit_on.name, "fingerprint": fit_on.fingerprint, "split": "train"}
