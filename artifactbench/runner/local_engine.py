"""The local engine: decode in worker processes, score in batches in this process, commit each
batch to the store."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from artifactbench.audio.pool import Decoded, decode_stream
from artifactbench.benches.base import Track
from artifactbench.detectors.base import (
    Detector,
)
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.runner.plan import (
    Completion,
    LoadedModel,
    RunOptions,
    batch_view_bytes,
    plan_scoring,
    say_nothing,
    score_batch,
    variant_failure,
)
from artifactbench.runner.store import ScoreKey, ScoreRow, ScoreStore


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
        self.buffers: list[list[tuple[str, np.ndarray]]] = [[] for _ in models]
        self.buffered = [0 for _ in models]
        self.pending_locators: list[tuple[str, str]] = []
        self.calls = 0
        self.completion = Completion(advance)

    def expect(self, sha: str, answers: int) -> None:
        self.completion.expect(sha, answers)

    def _commit(self, rows: list[tuple[ScoreKey, str, ScoreRow]]) -> None:
        self.store.write(rows, self._take_locators())
        self.completion.committed(sha for _, sha, _ in rows)

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


def score_tracks(
    tracks: list[Track],
    models: list[Detector],
    store: ScoreStore,
    options: RunOptions,
    progress: ProgressHook = no_progress,
    say: Callable[[str], None] = say_nothing,
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
