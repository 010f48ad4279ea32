"""Detectors work in pieces sized by a memory budget: measured per row at load, never more rows
per call than the budget holds, and the same scores as one call over the whole batch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from artifactbench.detectors.base import LoadContext
from artifactbench.detectors.memory import (
    CPU_PIECE_BYTES,
    bytes_per_row,
    peak_rise,
    rows_per_piece,
)
from artifactbench.detectors.registry import cards
from tests.test_artifactnet_onnx import CountingSession, mean_square_graph, ramp_views

MIB = 2**20
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc peak counter")


@linux_only
def test_peak_rise_sees_memory_that_was_freed_again() -> None:
    def hold(mib: int) -> None:
        block = np.ones(mib * MIB // 8)  # touched, so resident
        del block

    assert 60 * MIB <= peak_rise(lambda: hold(64)) <= 80 * MIB  # type: ignore[operator]
    assert peak_rise(lambda: None) < 8 * MIB  # type: ignore[operator]


@linux_only
def test_bytes_per_row_charges_each_row_what_it_holds() -> None:
    def rows(k: int) -> None:
        block = np.ones(k * 40 * MIB // 8)
        del block

    cost = bytes_per_row(rows)
    # 40 MiB a row; up to 60 when the backend frees between calls (3 rows charged to 2), plus
    # the pages the process touches meanwhile.
    assert 40 * MIB <= cost <= 64 * MIB
    assert rows_per_piece(512 * MIB, cost, "cuda") in range(8, 13)
    assert rows_per_piece(10 * MIB, cost, "cuda") == 1  # never less than one row


def test_cpu_pieces_stay_within_what_caches_can_use_whatever_the_budget() -> None:
    assert rows_per_piece(512 * MIB, 95 * MIB, "cuda") == 5
    assert rows_per_piece(512 * MIB, 95 * MIB, "cpu") == 1
    assert rows_per_piece(512 * MIB, MIB, "cpu") == CPU_PIECE_BYTES // MIB
    assert rows_per_piece(16 * MIB, MIB, "cpu") == 16  # a smaller budget still rules


def test_onnx_runs_never_exceed_what_the_budget_holds(tmp_path: Path) -> None:
    path = mean_square_graph(tmp_path / "tiny.onnx")
    card = cards()["artifactnet"]
    whole = an_load(card, path, 512 * MIB)
    small = an_load(card, path, 4 * MIB)
    cost = small.provenance["bytes_per_chunk"]
    assert small.chunks_per_run == max(1, 4 * MIB // cost) < whole.chunks_per_run
    assert small.provenance["memory_budget"] == 4 * MIB
    counting = small.session = CountingSession(small.session)
    views = ramp_views(6)
    assert small.score(views) == pytest.approx(whole.score(views), abs=0)
    assert max(counting.rows) == small.chunks_per_run and sum(counting.rows) == 42


def test_open_artifactnet_pieces_give_the_same_scores() -> None:
    card = cards()["artifactnet-open-demo"]
    from artifactbench.detectors.artifactnet_open import detector as open_detector

    det = open_detector.load(card, None, LoadContext(memory_budget=1))
    assert det.chunks_per_run == 1 and det.provenance["bytes_per_chunk"] > 0
    calls: list[int] = []
    original = det.chunk_probs

    def counted(chunks: np.ndarray) -> np.ndarray:
        calls.append(len(chunks))
        return original(chunks)

    rng = np.random.default_rng(0)
    views = [0.1 * rng.standard_normal((7, det.width)).astype(np.float32) for _ in range(2)]
    det.chunk_probs = counted  # type: ignore[method-assign]
    pieces = det.score(views)
    assert calls == [1] * 14
    det.chunks_per_run = None
    assert det.score(views) == pytest.approx(pieces, abs=1e-7)
    assert calls[-1] == 14


def an_load(card, path: Path, budget: int):  # type: ignore[no-untyped-def]
    from artifactbench.detectors import artifactnet_onnx as an

    return an.load(card, path, LoadContext(memory_budget=budget))


def test_a_graph_whose_one_row_fills_a_cpu_piece_runs_a_row_at_a_time_without_batch_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from artifactbench.detectors import artifactnet_onnx as an

    path = mean_square_graph(tmp_path / "tiny.onnx")
    card = cards()["artifactnet"]
    probed = []
    monkeypatch.setattr(an, "rows_independent", lambda *a: probed.append(a) or (True, 0.0, 1))
    small = an_load(card, path, 512 * MIB)  # the tiny graph's first row: far below a piece
    assert probed and small.chunks_per_run > 1
    probed.clear()

    def half_a_piece(run: object) -> int:
        run()  # type: ignore[operator]
        return CPU_PIECE_BYTES // 2 + 1

    monkeypatch.setattr(an, "peak_rise", half_a_piece)
    det = an_load(card, path, 512 * MIB)
    assert not probed  # one row a run: batching is never tried, so it is not probed
    assert det.chunks_per_run == 1 and det.provenance["rows_independent"] is None
    assert det.provenance["bytes_per_chunk"] == CPU_PIECE_BYTES // 2 + 1
    counting = det.session = CountingSession(det.session)
    views = ramp_views(2)
    assert det.score(views) == pytest.approx(small.score(views), abs=0)
    assert counting.rows == [1] * 14


@linux_only
def test_scoring_a_batch_copies_one_piece_at_a_time_not_the_batch() -> None:
    from artifactbench.detectors.artifactnet_onnx import score_chunked

    width = 176_400
    views = [np.full((7, width), 0.25, np.float32) for _ in range(40)]  # 198 MB of views
    seen: list[int] = []

    def probs(chunks: np.ndarray) -> np.ndarray:
        seen.append(len(chunks))
        return np.full(len(chunks), 0.5)

    rise = peak_rise(lambda: score_chunked(views, width, probs, rows_per_call=7))
    assert seen == [7] * 40
    assert rise is not None and rise < 32 * MIB  # a piece is 5 MB; the batch would be 198 MB


@linux_only
def test_an_ablation_holds_one_chunk_of_the_unet_at_a_time_whatever_its_batch() -> None:
    from artifactbench.assets import packaged_dir
    from artifactbench.experiments.artifactnet_open.ablate import ablate

    rng = np.random.default_rng(0)
    tracks = [
        (0.1 * rng.standard_normal((7, 176_400)).astype(np.float32), label)
        for label in ("ai", "real", "ai", "real")
    ]
    weights = packaged_dir() / "artifactnet_open.pt"
    result: list[dict[str, object]] = []
    rise = peak_rise(lambda: result.append(ablate(weights, "mel_H", iter(tracks), batch_size=4)))
    assert result[0]["n_tracks"] == 4
    # 28 chunks at once would hold about 2.5 GB of U-Net intermediates; one holds about 90 MB.
    assert rise is not None and rise < 600 * MIB
