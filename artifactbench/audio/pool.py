"""Decode tracks in worker processes, overlapped with whatever the caller does with the results.

Each track is read and decoded once; every view the selected detectors need is cut from that one
buffer in the worker. At most `window` tasks are in flight, so memory stays flat however long
the bench is.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from artifactbench.audio.decode import (
    PROTOCOL_RATE,
    DecodeError,
    DecodeLimits,
    ViewSpec,
    decode_audio,
    detector_view,
)
from artifactbench.audio.transforms import Transform, TransformError, apply_chain
from artifactbench.benches.base import ResolveError, Track
from artifactbench.benches.streamed import Delivery


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: a run killed with SIGKILL must not leave its workers running, and
    Ctrl-C is the parent's to handle (a worker that took it would print its own traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once (an interrupted or abandoned run): queued work is cancelled and
    running workers are terminated rather than waited for."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()


@dataclass
class Variant:
    """The views of one transform chain applied to a decoded track, or why the chain failed."""

    views: list[np.ndarray] | None
    stage: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Decoded:
    """One track after the decode stage: its views, or the stage and reason it failed at.

    `views` are those of the first chain; `variants` holds every chain's (one per chain asked
    for, in order) when the track decoded.
    """

    index: int
    audio_sha256: str | None
    views: list[np.ndarray] | None
    stage: str | None = None
    error: str | None = None
    seconds: float = 0.0
    variants: list[Variant] = field(default_factory=list)


def _variant(
    audio: np.ndarray, chain: Sequence[Transform], specs: Sequence[ViewSpec], seed: int, key: str
) -> Variant:
    """One chain on the decoded buffer: a failing codec is stage `encode`, any other step
    `transform`, and the other chains of the track are unaffected."""
    start = time.perf_counter()
    try:
        buffer = apply_chain(chain, audio, PROTOCOL_RATE, seed, key) if chain else audio
        views = [detector_view(buffer, spec) for spec in specs]
    except (TransformError, DecodeError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stage = "encode" if message.startswith("encode") else "transform"
        return Variant(None, stage, message, time.perf_counter() - start)
    return Variant(views, seconds=time.perf_counter() - start)


def decode_track(
    index: int,
    track: Track,
    specs: Sequence[ViewSpec],
    limits: DecodeLimits,
    chains: Sequence[Sequence[Transform]] = ((),),
    seed: int = 0,
) -> Decoded:
    """Read and decode once, then cut every view of every transform chain from that buffer.

    Chains are seeded by (seed, the audio's sha256), so a track gets the same noise wherever
    and whenever it is processed."""
    start = time.perf_counter()
    try:
        data = track.read_bytes()
    except ResolveError as exc:
        return Decoded(index, None, None, "resolve", str(exc), time.perf_counter() - start)
    sha = hashlib.sha256(data).hexdigest()
    try:
        audio = decode_audio(data, limits)
    except DecodeError as exc:
        return Decoded(index, sha, None, "decode", str(exc), time.perf_counter() - start)
    decoded_at = time.perf_counter()
    variants = [_variant(audio, chain, specs, seed, sha) for chain in chains]
    first = variants[0]
    if first.views is None and not chains[0]:  # the untransformed views failed: a decode failure
        return Decoded(index, sha, None, "decode", first.error, time.perf_counter() - start)
    return Decoded(index, sha, first.views, first.stage, first.error,
                   decoded_at - start + first.seconds, variants)  # fmt: skip


def _decode_chunk(
    items: list[tuple[int, Track]],
    specs: Sequence[ViewSpec],
    limits: DecodeLimits,
    chains: Sequence[Sequence[Transform]],
    seed: int,
) -> list[Decoded]:
    return [decode_track(i, t, specs, limits, chains, seed) for i, t in items]


def worker_tasks(
    tracks: Sequence[tuple[int, Track]], workers: int, chunk: int
) -> list[list[tuple[int, Track]]]:
    """The tracks in tasks, in order: each worker's first task is one track, so the first
    answers come after one decode rather than `chunk`; later tasks take `chunk` tracks, which
    costs fewer messages per track."""
    head = [[item] for item in tracks[:workers]]
    rest = tracks[workers:]
    return head + [list(rest[i : i + chunk]) for i in range(0, len(rest), chunk)]


def decode_stream(
    tracks: Sequence[tuple[int, Track]],
    specs: Sequence[ViewSpec],
    workers: int,
    limits: DecodeLimits | None = None,
    chunk: int = 2,
    chains: Sequence[Sequence[Transform]] = ((),),
    seed: int = 0,
) -> Iterator[Decoded]:
    """Yield every track decoded, in completion order; `workers=0` decodes in this process.

    Each track is decoded once and every transform chain in `chains` applied to that buffer."""
    limits = limits or DecodeLimits()
    with Delivery() as deliver:  # streamed tracks get their bytes here, in order, as handed out
        yield from _decode_all(tracks, specs, workers, limits, chunk, chains, seed, deliver)


def _decode_all(
    tracks: Sequence[tuple[int, Track]],
    specs: Sequence[ViewSpec],
    workers: int,
    limits: DecodeLimits,
    chunk: int,
    chains: Sequence[Sequence[Transform]],
    seed: int,
    deliver: Delivery,
) -> Iterator[Decoded]:
    """`decode_stream`'s work, with streamed tracks' bytes attached by `deliver`."""
    if workers <= 0:
        for index, track in tracks:
            ((_, track),) = deliver([(index, track)])
            yield decode_track(index, track, specs, limits, chains, seed)
        return
    chunks = worker_tasks(tracks, workers, chunk)
    window = max(2, workers * 3)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["artifactbench.audio.pool"])
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        in_flight: set[Future[list[Decoded]]] = set()
        next_chunk = 0
        while next_chunk < len(chunks) or in_flight:
            while next_chunk < len(chunks) and len(in_flight) < window:
                chunk_items = deliver(chunks[next_chunk])
                in_flight.add(pool.submit(_decode_chunk, chunk_items, specs, limits, chains, seed))
                next_chunk += 1
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    except BaseException:  # interrupted, or the consumer stopped early: no waiting on workers
        stop_pool(pool)
        raise
    pool.shutdown()
