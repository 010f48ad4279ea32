"""Decode tracks in worker processes, overlapped with whatever the caller does with the results.

Each track is read and decoded once; every view the selected detectors need is cut from that one
buffer in the worker. At most `window` tasks are in flight, so memory stays flat however long
the bench is.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from artifactbench.audio import DecodeError, DecodeLimits, ViewSpec, decode_audio, detector_view
from artifactbench.benches.base import ResolveError, Track
from artifactbench.processes import exit_with_parent


@dataclass
class Decoded:
    """One track after the decode stage: its views, or the stage and reason it failed at."""

    index: int
    audio_sha256: str | None
    views: list[np.ndarray] | None
    stage: str | None = None
    error: str | None = None
    seconds: float = 0.0


def decode_track(
    index: int, track: Track, specs: Sequence[ViewSpec], limits: DecodeLimits
) -> Decoded:
    start = time.perf_counter()
    try:
        data = track.read_bytes()
    except ResolveError as exc:
        return Decoded(index, None, None, "resolve", str(exc), time.perf_counter() - start)
    sha = hashlib.sha256(data).hexdigest()
    try:
        audio = decode_audio(data, limits)
        views = [detector_view(audio, spec) for spec in specs]
    except DecodeError as exc:
        return Decoded(index, sha, None, "decode", str(exc), time.perf_counter() - start)
    return Decoded(index, sha, views, seconds=time.perf_counter() - start)


def _decode_chunk(
    items: list[tuple[int, Track]], specs: Sequence[ViewSpec], limits: DecodeLimits
) -> list[Decoded]:
    return [decode_track(i, t, specs, limits) for i, t in items]


def decode_stream(
    tracks: Sequence[tuple[int, Track]],
    specs: Sequence[ViewSpec],
    workers: int,
    limits: DecodeLimits | None = None,
    chunk: int = 2,
) -> Iterator[Decoded]:
    """Yield every track decoded, in completion order; `workers=0` decodes in this process."""
    limits = limits or DecodeLimits()
    if workers <= 0:
        for index, track in tracks:
            yield decode_track(index, track, specs, limits)
        return
    chunks = [list(tracks[i : i + chunk]) for i in range(0, len(tracks), chunk)]
    window = max(2, workers * 3)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["artifactbench.decoding"])
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        in_flight: set[Future[list[Decoded]]] = set()
        next_chunk = 0
        while next_chunk < len(chunks) or in_flight:
            while next_chunk < len(chunks) and len(in_flight) < window:
                in_flight.add(pool.submit(_decode_chunk, chunks[next_chunk], specs, limits))
                next_chunk += 1
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
