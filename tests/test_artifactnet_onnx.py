"""The ArtifactNet ONNX adapter on tiny graphs built here: chunking, median, one run per batch,
non-finite chunks, the contract check, external weights, and the runner and CLI around it."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from artifactbench.audio.decode import chunk_starts, decode_audio, detector_view
from artifactbench.audio.encode import encode_audio
from artifactbench.benches.base import Bench
from artifactbench.detectors import artifactnet_onnx as an
from artifactbench.detectors.base import LoadContext, Scored, Unavailable
from artifactbench.detectors.registry import cards, resolve_models
from artifactbench.runner import RunOptions, run, score_row
from tests.conftest import RATE, python_cli

W = 176400
SCALE = 8.0
BIAS = -1.0


def save_graph(
    path: Path,
    nodes: list[onnx.NodeProto],
    inits: tuple[tuple[str, np.ndarray], ...] = (),
    *,
    in_shape: list[Any] | None = None,
    in_type: int = TensorProto.FLOAT,
    out_shape: list[Any] | None = None,
    extra_inputs: int = 0,
    external: bool = False,
) -> Path:
    """Input `audio` [batch, W], output `p` and float32 initializers, unless told otherwise."""
    inputs = [helper.make_tensor_value_info("audio", in_type, in_shape or ["batch", W])]
    inputs += [
        helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, ["batch"])
        for i in range(extra_inputs)
    ]
    outputs = [helper.make_tensor_value_info("p", in_type, out_shape)]
    tensors = [
        numpy_helper.from_array(v if v.dtype.kind == "i" else v.astype(np.float32), n)
        for n, v in inits
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if external:
        onnx.save_model(model, path, save_as_external_data=True,
                        location=f"{path.name}.data", size_threshold=0)  # fmt: skip
    else:
        onnx.save_model(model, path)
    return path


def mean_square_graph(path: Path, external: bool = False) -> Path:
    """P(AI) = sigmoid(SCALE * mean(x^2) + BIAS) per row, the scale held in a [W] initializer."""
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("Mul", ["sq", "scale"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("Add", ["ms", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ]
    inits = (("scale", np.full(W, SCALE)), ("bias", np.array(BIAS)))
    return save_graph(path, nodes, inits, external=external)


def expected(chunks: np.ndarray) -> np.ndarray:
    """The mean-square graph's output, computed by hand."""
    z = SCALE * np.mean(np.asarray(chunks, np.float64) ** 2, axis=-1) + BIAS
    return 1.0 / (1.0 + np.exp(-z))


def sqrt_first_sample_graph(path: Path) -> Path:
    """P(AI) = sqrt(first sample): NaN exactly for the chunks whose first sample is negative."""
    nodes = [
        helper.make_node("Gather", ["audio", "zero"], ["first"], axis=1),
        helper.make_node("Sqrt", ["first"], ["p"]),
    ]
    return save_graph(path, nodes, (("zero", np.array(0, np.int64)),))


def always_nan_graph(path: Path) -> Path:
    """sqrt(-1 - mean(x^2)): NaN for every chunk."""
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("Sub", ["minus_one", "ms"], ["neg"]),
        helper.make_node("Sqrt", ["neg"], ["p"]),
    ]
    return save_graph(path, nodes, (("minus_one", np.array(-1.0)),))


def batch_normalised_graph(path: Path) -> Path:
    """mean(x^2) / max(x^2 over the whole batch): a row's output depends on its batch mates."""
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("ReduceMax", ["sq"], ["peak"], keepdims=0),
        helper.make_node("Div", ["ms", "peak"], ["p"]),
    ]
    return save_graph(path, nodes)


def logit_graph(path: Path) -> Path:
    """10 * mean(x^2) - 3: a logit, not a probability."""
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["ms", "ten"], ["z"]),
        helper.make_node("Sub", ["z", "three"], ["p"]),
    ]
    return save_graph(path, nodes, (("ten", np.array(10.0)), ("three", np.array(3.0))))


def load(path: Path, device: str = "cpu") -> an.ArtifactNetOnnx:
    return an.load(cards()["artifactnet"], path, LoadContext(device=device))


class CountingSession:
    """Wraps a session: records the rows of each run; optionally fails runs over `max_rows`."""

    def __init__(self, session: Any, max_rows: int | None = None) -> None:
        self.session = session
        self.max_rows = max_rows
        self.rows: list[int] = []

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (x,) = feed.values()
        self.rows.append(len(x))
        if self.max_rows is not None and len(x) > self.max_rows:
            raise RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for 1 GB")
        return self.session.run(names, feed)


def ramp_views(n_tracks: int, seconds: float = 10.0) -> list[np.ndarray]:
    card = cards()["artifactnet"]
    out = []
    for i in range(n_tracks):
        x = np.linspace(-1.0, 1.0, int(seconds * RATE), dtype=np.float32) * (0.5 + 0.1 * i)
        out.append(detector_view(x, card.view))
    return out


def test_card_is_the_published_onnx_build() -> None:
    card = cards()["artifactnet"]
    assert card.family == "artifactnet_onnx" and card.paper_name == "ArtifactNet v9.4"
    assert card.repo == "intrect/artifactnet"
    assert card.revision == "e915f0dc5962a57536bbe1f78b66adcb48dfae4c"
    assert [(f.name, f.optional) for f in card.files] == [
        ("artifactnet_v94_full.onnx", False),
        ("artifactnet_v94_full.onnx.data", True),
    ]
    assert (card.view.rate, card.view.seconds, card.view.crop, card.view.n_chunks) == (
        44100, 4, "chunks", 7,
    )  # fmt: skip
    assert card.published["table_vi_artifactbench_test"]["f1"] == 0.9829
    assert card.published["reference_runner_artifactbench_n2104"]["fail_count"] == 8


def test_seven_chunks_of_a_known_track_and_their_median(tmp_path: Path) -> None:
    det = load(mean_square_graph(tmp_path / "tiny.onnx"))
    audio = np.linspace(-1.0, 1.0, 10 * RATE, dtype=np.float32)
    view = detector_view(audio, det.card.view)
    starts = np.linspace(0, len(audio) - W, 7).astype(np.int64)
    assert view.shape == (7, W)
    assert np.array_equal(starts, chunk_starts(len(audio), W, 7))
    for row, start in zip(view, starts, strict=True):
        assert np.array_equal(row, audio[start : start + W])
    by_hand = [expected(audio[s : s + W]) for s in starts]
    assert len(set(np.round(by_hand, 6))) > 3  # the chunks differ, so the median means something
    (prob,) = det.score([view])
    assert isinstance(prob, float)
    assert prob == pytest.approx(float(np.median(by_hand)), abs=1e-5)

    short = audio[: 2 * RATE]
    short_view = detector_view(short, det.card.view)
    assert np.all(short_view == short_view[0]) and np.all(short_view[:, len(short) :] == 0)
    padded = np.concatenate([short, np.zeros(W - len(short), np.float32)])
    assert det.score([short_view])[0] == pytest.approx(float(expected(padded)), abs=1e-5)


def test_one_run_for_every_chunk_of_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row measured at 1 MiB (what the tiny graph takes, whatever else the process allocates
    # meanwhile): a CPU piece holds 128 of them.
    def one_mib(run: Callable[[], object]) -> int:
        run()
        return 2**20

    monkeypatch.setattr(an, "peak_rise", one_mib)
    det = load(mean_square_graph(tmp_path / "tiny.onnx"))
    assert det.provenance["rows_independent"] and det.chunks_per_run >= 35
    counting = det.session = CountingSession(det.session)
    views = ramp_views(5)
    probs = det.score(views)
    assert counting.rows == [35] and det.run_calls == 1
    for view, prob in zip(views, probs, strict=True):
        assert prob == pytest.approx(float(np.median(expected(view))), abs=1e-5)
    alone = [det.score([v])[0] for v in views]
    assert alone == pytest.approx(probs, abs=1e-6)
    assert det.run_calls == 6
    with pytest.raises(ValueError, match=r"expected chunks \[n, 176400\]"):
        det.score([views[0][:, :1000]])


def test_nan_chunks_are_excluded_and_counted(tmp_path: Path) -> None:
    det = load(sqrt_first_sample_graph(tmp_path / "nan.onnx"))
    firsts = {
        "two_nan": [0.04, -0.5, 0.16, 0.25, -0.1, 0.36, 0.49],
        "clean": [0.01, 0.04, 0.09, 0.16, 0.25, 0.36, 0.49],
        "all_nan": [-0.1] * 7,
    }
    views = []
    for values in firsts.values():
        view = np.full((7, W), 0.3, np.float32)
        view[:, 0] = values
        views.append(view)
    two_nan, clean, all_nan = det.score(views)
    assert det.run_calls == 1
    kept = [v for v in firsts["two_nan"] if v >= 0]
    assert isinstance(two_nan, Scored)
    assert two_nan.prob == pytest.approx(float(np.median(np.sqrt(kept))), abs=1e-6)
    assert two_nan.note == "2 of 7 chunks non-finite, excluded"
    assert clean == pytest.approx(0.4, abs=1e-6)
    assert isinstance(all_nan, Scored) and math.isnan(all_nan.prob)
    assert all_nan.note == "all 7 chunks non-finite"
    row = score_row(all_nan, 0.1)
    assert (row.status, row.stage, row.error) == ("failed", "inference", "all 7 chunks non-finite")
    kept_row = score_row(two_nan, 0.1)
    assert kept_row.status == "scored" and kept_row.note == "2 of 7 chunks non-finite, excluded"


def test_logits_outside_zero_one_fail_the_track(tmp_path: Path) -> None:
    det = load(logit_graph(tmp_path / "logit.onnx"))
    (result,) = det.score(ramp_views(1))
    assert isinstance(result, Scored) and math.isnan(result.prob)
    assert "outside [0, 1]" in result.note and "not logits" in result.note


def test_rows_that_share_a_batch_normalisation_run_one_chunk_at_a_time(tmp_path: Path) -> None:
    det = load(batch_normalised_graph(tmp_path / "coupled.onnx"))
    assert det.provenance["rows_independent"] is False and det.chunks_per_run == 1
    assert det.provenance["batch_probe_max_difference"] > an.PROBE_TOLERANCE
    counting = det.session = CountingSession(det.session)
    views = ramp_views(2)
    probs = det.score(views)
    assert counting.rows == [1] * 14
    for view, prob in zip(views, probs, strict=True):
        sq = view.astype(np.float64) ** 2
        assert prob == pytest.approx(float(np.median(sq.mean(axis=1) / sq.max(axis=1))), abs=1e-5)


def test_a_batch_that_cannot_allocate_is_rerun_in_pieces(tmp_path: Path) -> None:
    det = load(mean_square_graph(tmp_path / "tiny.onnx"))
    det.chunks_per_run = None  # the whole batch in one call, as a budget that holds it allows
    views = ramp_views(10)
    whole = det.score(views)
    counting = det.session = CountingSession(det.session, max_rows=an.MAX_CHUNKS_ON_MEMORY_ERROR)
    assert det.score(views) == pytest.approx(whole, abs=1e-6)
    assert counting.rows == [70, 64, 6]
    assert det.provenance["batches_split_for_memory"] == 1
    det.session = CountingSession(det.session.session, max_rows=5)
    with pytest.raises(RuntimeError, match="allocate"):
        det.score(views[:1])  # 7 chunks: nothing smaller to fall back to


def test_external_weights_beside_the_graph(tmp_path: Path) -> None:
    path = mean_square_graph(tmp_path / "ext.onnx", external=True)
    data = tmp_path / "ext.onnx.data"
    assert data.stat().st_size >= 4 * W
    det = load(path)
    assert det.provenance["external_data"] == str(data)
    views = ramp_views(2)
    assert det.score(views) == pytest.approx([float(np.median(expected(v))) for v in views])
    embedded = load(mean_square_graph(tmp_path / "embedded.onnx"))
    assert embedded.provenance["external_data"] is None
    assert det.weights_sha256 != embedded.weights_sha256
    data.rename(tmp_path / "elsewhere.data")
    with pytest.raises(Unavailable, match="beside it as ext.onnx.data"):
        load(path)


def _wrong(path: Path, kind: str) -> Path:
    mean = helper.make_node("ReduceMean", ["audio"], ["p"], axes=[1], keepdims=0)
    if kind == "double":
        return save_graph(path, [mean], in_type=TensorProto.DOUBLE)
    if kind == "width":
        return save_graph(path, [mean], in_shape=["batch", 1000])
    if kind == "inputs":
        return save_graph(path, [mean], extra_inputs=1)
    if kind == "batch":
        return save_graph(path, [mean], in_shape=[8, W])
    if kind == "aggregate":
        nodes = [
            helper.make_node("ReduceMean", ["audio"], ["all"], axes=[0, 1], keepdims=1),
            helper.make_node("Reshape", ["all", "one"], ["p"]),
        ]
        return save_graph(path, nodes, (("one", np.array([1], np.int64)),), out_shape=[1])
    assert kind == "columns"
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["m", "m"], ["p"], axis=1),
    ]
    return save_graph(path, nodes)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("double", "'audio' is tensor(double), not tensor(float)"),
        ("width", "takes 1000 samples per row, not 176400"),
        ("inputs", "graph has 2 inputs"),
        ("batch", "fixed batch of 8"),
        ("aggregate", "has 1 row(s) whatever the batch"),
        ("columns", "output 'p' has shape [batch, 2]"),
    ],
)
def test_a_wrong_contract_is_unavailable_and_says_what_differs(
    tmp_path: Path, kind: str, needle: str
) -> None:
    with pytest.raises(Unavailable) as info:
        load(_wrong(tmp_path / f"{kind}.onnx", kind))
    assert needle in str(info.value)
    assert "--weights" in info.value.hint


def test_not_an_onnx_file_is_unavailable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(Unavailable, match="cannot load"):
        load(bad)


def test_fixed_batch_of_one_runs_chunk_by_chunk(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["p"], axes=[1], keepdims=0),
    ]
    det = load(save_graph(tmp_path / "one.onnx", nodes, in_shape=[1, W], out_shape=[1]))
    assert det.chunks_per_run == 1 and det.provenance["chunks_per_run"] == 1
    (prob,) = det.score(ramp_views(1))
    assert det.run_calls == 7
    assert prob == pytest.approx(float(np.median((ramp_views(1)[0] ** 2).mean(axis=1))), abs=1e-6)


def test_session_options_are_fixed_and_recorded(tmp_path: Path) -> None:
    det = load(mean_square_graph(tmp_path / "tiny.onnx"), device="cuda")
    prov = det.provenance
    assert prov["requested_device"] == "cuda"
    assert prov["providers"][-1] == "CPUExecutionProvider"  # no CUDA provider in a CPU build
    assert prov["graph_optimization_level"] == an.GRAPH_OPTIMIZATION
    assert prov["intra_op_num_threads"] == an.intra_op_threads()
    assert prov["inter_op_num_threads"] == 1 and prov["deterministic_compute"] is True
    assert prov["input"] == {"name": "audio", "shape": ["batch", W]}
    assert prov["onnxruntime"]


def test_missing_weights_name_the_fetch_command() -> None:
    with pytest.raises(Unavailable) as info:
        an.load(cards()["artifactnet"], None, LoadContext())
    assert info.value.hint.startswith("artifactbench fetch model artifactnet")


def _cards(folder: Path) -> Path:
    folder.mkdir()
    for card_id in ("tiny", "tiny-nan"):
        (folder / f"{card_id}.yaml").write_text(
            f"id: {card_id}\nfamily: artifactnet_onnx\nfiles:\n  - name: {card_id}.onnx\n"
            "view:\n  rate: 44100\n  seconds: 4\n  crop: chunks\n  n_chunks: 7\n  pad: true\n"
        )
    return folder


def test_runner_records_an_all_nan_track_as_an_inference_failure(
    file_bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTBENCH_CARDS", str(_cards(tmp_path / "cards")))
    weights = {
        "tiny": mean_square_graph(tmp_path / "tiny.onnx"),
        "tiny-nan": always_nan_graph(tmp_path / "nan.onnx"),
    }
    options = RunOptions(out=tmp_path / "runs", workers=0, batch_size=4, split="all",
                         weights=weights)  # fmt: skip
    result = run(file_bench, resolve_models("tiny,tiny-nan"), options)
    assert result.models == ["tiny", "tiny-nan"] and not result.skipped
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    decoded = ~preds.stage.isin(["resolve", "decode"])
    tiny = preds[decoded & (preds.model == "tiny")]
    nan = preds[decoded & (preds.model == "tiny-nan")]
    assert len(tiny) == len(nan) > 0
    assert (tiny.status == "scored").all() and tiny.prob.between(0, 1).all()
    assert (nan.status == "failed").all() and (nan.stage == "inference").all()
    assert (nan.error == "all 7 chunks non-finite").all()
    detectors = json.loads((result.run_dir / "run.json").read_text())["detectors"]
    assert detectors["tiny"]["provenance"]["providers"] == ["CPUExecutionProvider"]
    digest = hashlib.sha256(weights["tiny"].read_bytes()).hexdigest()
    assert detectors["tiny"]["provenance"]["files"] == {"tiny.onnx": digest}


def test_cli_scores_a_file_with_a_given_graph(tmp_path: Path) -> None:
    graph = mean_square_graph(tmp_path / "tiny.onnx")
    t = np.arange(9 * RATE) / RATE
    audio = 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.3 * t)) / 2
    song = tmp_path / "song.wav"
    song.write_bytes(encode_audio(audio.astype(np.float32), RATE, "wav"))
    args = [*python_cli(), "score", str(song), "--model", "artifactnet", "--weights", str(graph),
            "--json"]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    view = detector_view(decode_audio(song), cards()["artifactnet"].view)
    assert record["model"] == "artifactnet"
    assert record["prob"] == pytest.approx(float(np.median(expected(view))), abs=1e-5)
    assert record["verdict"] == ("ai" if record["prob"] >= 0.5 else "real")


def test_cli_reports_excluded_chunks_and_an_all_nan_file(tmp_path: Path) -> None:
    """sqrt(first sample): chunks starting below zero are NaN; a negative track is all NaN."""
    graph = sqrt_first_sample_graph(tmp_path / "sqrt.onnx")
    t = np.arange(9 * RATE) / RATE
    mixed = tmp_path / "mixed.wav"
    mixed.write_bytes(encode_audio((0.5 * np.sin(2 * np.pi * 0.37 * t)).astype(np.float32),
                                   RATE, "wav"))  # fmt: skip
    negative = tmp_path / "negative.wav"
    negative.write_bytes(encode_audio(np.full(t.size, -0.25, np.float32), RATE, "wav"))
    view = detector_view(decode_audio(mixed), cards()["artifactnet"].view)
    n_nan = int((view[:, 0] < 0).sum())
    assert 0 < n_nan < 7
    args = [*python_cli(), "score", str(mixed), str(negative), "--model", "artifactnet",
            "--weights", str(graph), "--json"]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    good, bad = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert good["note"] == f"{n_nan} of 7 chunks non-finite, excluded"
    assert good["prob"] == pytest.approx(float(np.median(np.sqrt(view[view[:, 0] >= 0, 0]))))
    assert bad["prob"] is None and bad["error"] == "inference: all 7 chunks non-finite"
