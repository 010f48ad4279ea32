"""What a run scores and with what: options, model loading, the store's plan, scoring one batch.

Shared by both engines (local_engine, ray_engine), which depend on this module and never on each
other; `predictions_table` turns the store's answers into the rows of the results contract.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.analysis.detection_cost import CostModel
from artifactbench.audio.decode import DECODE_PROTOCOL, ViewSpec
from artifactbench.audio.pool import Decoded, decode_stream
from artifactbench.audio.transforms import Transform, chain_hash, chain_spec
from artifactbench.benches.base import Bench, Track, cohort
from artifactbench.detectors.base import (
    Detector,
    DetectorCard,
    FitPlan,
    Identified,
    LoadContext,
    Scored,
    Unavailable,
)
from artifactbench.detectors.memory import DEFAULT_BUDGET
from artifactbench.detectors.registry import backend, identify
from artifactbench.paths import cache_dir
from artifactbench.predictions import COLUMNS, ORIGINAL
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore

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
    # The detection cost model of minDCF / actDCF, recorded in the predictions metadata.
    cost: CostModel = field(default_factory=CostModel)


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
    detector: Identified
    key: ScoreKey
    view_index: int
    variant: int = 0


def variant_name(chain: list[Transform]) -> str:
    """How a chain is named in predictions and reports: its canonical spec, or "original"."""
    return chain_spec(chain) or ORIGINAL


def say_nothing(_line: str) -> None:
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


def select_tracks(
    bench: Bench, split: str, n_per_source: int | None, limit: int | None, seed: int
) -> tuple[list[Track], list[Track]]:
    """The tracks every flow scores: the split, then the same seeded N per subset
    (`n_per_source`), then a stratified seeded sample of `limit`. Returns (before the limit,
    after it), so a caller can say what the limit left out."""
    selected = bench.select(split)
    if n_per_source is not None:
        selected = cohort(selected, n_per_source, seed)
    return selected, limit_tracks(selected, limit, seed)


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
    identify_only: bool = False,
) -> tuple[list[Any], list[Skipped]]:
    """Load every chosen detector once; an unavailable one is skipped with its fix (or raised).

    `identify_only` learns each detector's identity from its card and files instead (see
    `registry.identify`), for a driver whose models load elsewhere. Bench-fitted detectors fit
    on `options.fit_on` when given, else on `bench`."""
    loaded, skipped = [], []
    fit_bench = options.fit_on or bench
    for card in cards:
        plan = None if fit_bench is None else fit_plan(card, fit_bench, options.workers, progress)
        context = LoadContext(options.device, options.seed, plan, options.memory_budget)
        weights = options.weights.get(card.id)
        try:
            if identify_only:
                loaded.append(identify(card, weights, context))
            else:
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


def score_key(
    detector: Identified, chain: list[Transform] | None = None, seed: int = 0
) -> ScoreKey:
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


def batch_view_bytes(options: RunOptions) -> int:
    """What the views of one detector's batch may hold: half the memory budget, the other half
    being for the intermediates of a call."""
    return max(1, options.memory_budget // 2)


class Completion:
    """Which tracks are done: a track counts (`advance`) once every answer its audio needs is
    committed to the store, however its answers are spread over batches and detectors."""

    def __init__(self, advance: Callable[[int], None]) -> None:
        self.advance = advance
        self.missing: dict[str, int] = {}  # audio sha256 -> answers not yet committed
        self.waiting: dict[str, int] = {}  # audio sha256 -> tracks done when it is answered

    def expect(self, sha: str, answers: int) -> None:
        """A track whose audio still needs `answers` answers (0: the store has them all)."""
        self.missing[sha] = self.missing.get(sha, 0) + answers
        self.waiting[sha] = self.waiting.get(sha, 0) + 1
        self._settle([sha])

    def committed(self, shas: Iterable[str]) -> None:
        """One answer each for these audio (a sha256 once per answer) is in the store."""
        shas = list(shas)
        for sha in shas:
            self.missing[sha] -= 1
        self._settle(set(shas))

    def _settle(self, shas: Iterable[str]) -> None:
        for sha in shas:
            if self.missing.get(sha) == 0:
                del self.missing[sha]
                self.advance(self.waiting.pop(sha))


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
    tracks: list[Track], models: Sequence[Identified], store: ScoreStore, options: RunOptions
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


def extra_columns(tracks: list[Track]) -> list[str]:
    """Bench-specific track fields (e.g. SONICS `fake_type`) carried into the predictions."""
    names = {name for t in tracks for name, _ in t.extra}
    return sorted(names - set(COLUMNS))


def predictions_table(
    tracks: list[Track],
    models: Sequence[Identified],
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
