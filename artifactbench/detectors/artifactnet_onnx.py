"""ArtifactNet through its ONNX build, or any graph with the same contract (`--weights my.onnx`).

The contract: one float32 input of shape [batch, 176400] (4 s of 44.1 kHz mono per row; the
width is the card's view, so it may also be dynamic) and one output of shape [batch] or
[batch, 1] holding P(AI) per row. The output must be a probability: a graph that returns logits
cannot be told apart from one that returns P(AI) when its values happen to fall inside [0, 1],
so the contract is stated rather than guessed, and a value outside [0, 1] fails its track.

The runner hands each track as [7, 176400] chunks at `linspace(0, len - 176400, 7)` starts. The
chunks of a batch go through `session.run` in pieces of at most `chunks_per_run` rows, sized at
load by the memory budget and what one chunk was measured to cost (detectors.memory); a track's
P(AI) is the median over its finite chunk outputs (the paper's song-level verdict). A non-finite
chunk is excluded and counted in the track's note, and a track with no finite chunk fails rather
than becoming 0.5.

A graph whose rows are not independent (checked at load on a probe batch, e.g. a normalisation
over the whole batch) or whose batch is fixed at 1 runs one chunk at a time, as the reference
runner does, so a track's score never depends on the tracks batched with it; and a piece whose
run still fails to allocate memory is rerun in pieces of at most `MAX_CHUNKS_ON_MEMORY_ERROR`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench.detectors.base import DetectorCard, Identity, LoadContext, Scored, Unavailable
from artifactbench.detectors.memory import FALLBACK_BYTES_PER_ROW, peak_rise, rows_per_piece

# Semantics-preserving rewrites only (constant folding, redundant nodes, simple fusions): close
# to the unoptimised graph the reference runner executes, without the layout changes and extended
# fusions of ORT_ENABLE_ALL that reorder float arithmetic per CPU.
GRAPH_OPTIMIZATION = "ORT_ENABLE_BASIC"
INTER_OP_THREADS = 1
# cuDNN's fixed default algorithm rather than a per-run search that may pick another kernel;
# no TF32, so a GPU computes the same float32 arithmetic the CPU does.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "DEFAULT", "use_tf32": "0"}
MAX_CHUNKS_ON_MEMORY_ERROR = 64
PROBE_TOLERANCE = 1e-4
OUTPUT_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
_ALLOCATION_FAILURE = re.compile(r"alloc|out of memory", re.IGNORECASE)
_CONTRACT = (
    "the ArtifactNet contract is one float input [batch, {width}] and one output P(AI) "
    "[batch] or [batch, 1]"
)


def intra_op_threads() -> int:
    """Every core this process may use: fixed for the session and recorded."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _dynamic(dim: object) -> bool:
    return not isinstance(dim, int)


def _describe(name: str, shape: list[object] | None, kind: str) -> str:
    dims = "?" if shape is None else ", ".join(str(d) for d in shape)
    return f"{name!r} {kind} [{dims}]"


@dataclass(frozen=True)
class Contract:
    """What the graph declares: its input and output names, and how it may be batched."""

    input_name: str
    output_name: str
    fixed_batch_one: bool


def check_contract(inputs: list[Any], outputs: list[Any], width: int) -> Contract:
    """Check the graph's ORT NodeArgs against the contract; a ValueError says what differs.

    The first output is used, as the reference runner does; others are never computed.
    """
    expected = _CONTRACT.format(width=width)
    if len(inputs) != 1:
        found = "; ".join(_describe(i.name, i.shape, i.type) for i in inputs)
        raise ValueError(f"graph has {len(inputs)} inputs ({found}); {expected}")
    if not outputs:
        raise ValueError(f"graph has no output; {expected}")
    inp, out = inputs[0], outputs[0]
    if inp.type != "tensor(float)":
        raise ValueError(f"input {inp.name!r} is {inp.type}, not tensor(float); {expected}")
    shape = inp.shape
    if shape is None or len(shape) != 2:
        raise ValueError(f"input {_describe(inp.name, shape, 'has shape')}; {expected}")
    batch, cols = shape
    if not _dynamic(cols) and cols != width:
        raise ValueError(f"input {inp.name!r} takes {cols} samples per row, not {width}")
    if not _dynamic(batch) and batch != 1:
        raise ValueError(f"input {inp.name!r} has a fixed batch of {batch}; {expected}")
    if out.type not in OUTPUT_TYPES:
        raise ValueError(f"output {out.name!r} is {out.type}, not a float tensor; {expected}")
    oshape = out.shape
    if oshape is not None:
        column = len(oshape) == 2 and (oshape[1] == 1 or _dynamic(oshape[1]))
        if len(oshape) != 1 and not column:
            raise ValueError(f"output {_describe(out.name, oshape, 'has shape')}; {expected}")
        if _dynamic(batch) and not _dynamic(oshape[0]):
            raise ValueError(
                f"output {out.name!r} has {oshape[0]} row(s) whatever the batch (a per-song "
                f"aggregate?); {expected}"
            )
    return Contract(inp.name, out.name, fixed_batch_one=not _dynamic(batch))


def score_chunked(
    views: list[np.ndarray],
    width: int,
    chunk_probs: Callable[[np.ndarray], np.ndarray],
    rows_per_call: int | None = None,
) -> list[float | Scored]:
    """Every chunk of every track through `chunk_probs`, at most `rows_per_call` rows a call
    (None: one call), then each track's median.

    Shared by the published ONNX graph and the open torch model, so both aggregate alike.
    """
    if not views:
        return []
    for view in views:
        if view.ndim != 2 or view.shape[1] != width or view.shape[0] == 0:
            raise ValueError(f"expected chunks [n, {width}], got {list(view.shape)}")
    # Row views, not a copy of the batch: only one piece at a time is made contiguous.
    rows = [row for view in views for row in view]
    step = rows_per_call or len(rows)
    probs = np.concatenate(
        [
            chunk_probs(np.ascontiguousarray(np.stack(rows[i : i + step]), dtype=np.float32))
            for i in range(0, len(rows), step)
        ]
    )
    bounds = np.cumsum([len(v) for v in views])[:-1]
    return [aggregate(p) for p in np.split(probs, bounds)]


def aggregate(chunk_probs: np.ndarray) -> float | Scored:
    """Median P(AI) over a track's finite chunks; excluded chunks and broken output in the note."""
    n = len(chunk_probs)
    finite = chunk_probs[np.isfinite(chunk_probs)]
    if finite.size == 0:
        return Scored(float("nan"), f"all {n} chunks non-finite")
    outside = finite[(finite < 0.0) | (finite > 1.0)]
    if outside.size:
        return Scored(
            float("nan"),
            f"{outside.size} of {n} chunk outputs outside [0, 1] (e.g. {outside[0]:.6g}): "
            "the graph must return P(AI), not logits",
        )
    median = float(np.median(finite))
    k = n - finite.size
    return Scored(median, f"{k} of {n} chunks non-finite, excluded") if k else median


def _is_allocation_failure(exc: Exception) -> bool:
    return isinstance(exc, MemoryError) or bool(_ALLOCATION_FAILURE.search(str(exc)))


class ArtifactNetOnnx:
    """A loaded ONNX graph under the ArtifactNet contract; `run_calls` counts `session.run`s."""

    def __init__(
        self,
        card: DetectorCard,
        session: Any,
        contract: Contract,
        width: int,
        chunks_per_run: int,
        weights_sha256: str,
        provenance: dict[str, Any],
    ) -> None:
        self.card = card
        self.session = session
        self.contract = contract
        self.width = width
        self.chunks_per_run = chunks_per_run
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        self.run_calls = 0

    def score(self, views: list[np.ndarray]) -> list[float | Scored]:
        """P(AI) per track, the batch's chunks run in pieces of `chunks_per_run` rows."""
        return score_chunked(views, self.width, self._run, self.chunks_per_run)

    def _run(self, chunks: np.ndarray) -> np.ndarray:
        try:
            return self._run_once(chunks)
        except Exception as exc:
            if not _is_allocation_failure(exc) or len(chunks) <= MAX_CHUNKS_ON_MEMORY_ERROR:
                raise
        self.provenance["batches_split_for_memory"] += 1
        step = MAX_CHUNKS_ON_MEMORY_ERROR
        parts = [self._run_once(chunks[i : i + step]) for i in range(0, len(chunks), step)]
        return np.concatenate(parts)

    def _run_once(self, chunks: np.ndarray) -> np.ndarray:
        self.run_calls += 1
        feed = {self.contract.input_name: chunks}
        out = np.asarray(self.session.run([self.contract.output_name], feed)[0])
        if out.shape not in ((len(chunks),), (len(chunks), 1)):
            raise ValueError(
                f"output {self.contract.output_name!r} has shape {list(out.shape)} for "
                f"{len(chunks)} chunks; expected [{len(chunks)}] or [{len(chunks)}, 1]"
            )
        return out.reshape(-1).astype(np.float64)


def probe_chunks(width: int, rate: int) -> np.ndarray:
    """Three fixed chunks of very different levels: a loud tone, moderate and faint noise."""
    rng = np.random.default_rng(0)
    t = np.arange(width) / rate
    tone = 0.9 * np.sin(2 * np.pi * 440.0 * t)
    return np.stack(
        [tone, 0.1 * rng.standard_normal(width), 1e-3 * rng.standard_normal(width)]
    ).astype(np.float32)


def single_row_cost(session: Any, contract: Contract, chunk: np.ndarray, device: str) -> int | None:
    """On a CPU, the peak rise of one run of one row, after a warm-up run (first allocations
    are no per-row cost): when that alone fills a CPU piece, every run takes one row, and
    whether rows are independent in a batch (the longer probe) does not matter. None on other
    devices or where the peak cannot be read."""
    if not device.startswith("cpu"):
        return None
    feed = {contract.input_name: chunk[None]}
    session.run([contract.output_name], feed)
    return peak_rise(lambda: session.run([contract.output_name], feed))


def rows_independent(
    session: Any, contract: Contract, chunks: np.ndarray
) -> tuple[bool, float, int]:
    """Whether a row's output is the same batched and alone, the largest difference seen, and
    what one row costs in memory: the rows run alone first (the first one warms the session
    up), then together under `memory.peak_rise`, charged to the rows beyond the first."""
    feed = contract.input_name
    alone = np.concatenate(
        [
            np.asarray(session.run([contract.output_name], {feed: c[None]})[0], np.float64)
            for c in chunks
        ]
    )
    outputs: list[np.ndarray] = []
    rise = peak_rise(lambda: outputs.append(session.run([contract.output_name], {feed: chunks})[0]))
    cost = FALLBACK_BYTES_PER_ROW if rise is None else max(1, -(-rise // (len(chunks) - 1)))
    together = np.asarray(outputs[0], np.float64).reshape(-1)
    alone = alone.reshape(-1)
    if together.shape != alone.shape:
        raise ValueError(f"{len(chunks)} probe chunks gave {together.size} outputs, not one each")
    if not np.array_equal(np.isfinite(together), np.isfinite(alone)):
        return False, float("inf"), cost
    finite = np.isfinite(together)
    diff = float(np.max(np.abs(together[finite] - alone[finite]), initial=0.0))
    return diff <= PROBE_TOLERANCE, diff, cost


def _device_id(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index else 0


def provider_device(providers: list[str], options: dict[str, dict[str, Any]]) -> str:
    """The device a session computes on: its CUDA GPU when ONNX Runtime kept the CUDA provider
    (it drops it silently when it cannot start it), else the CPU."""
    if "CUDAExecutionProvider" not in providers:
        return "cpu"
    return f"cuda:{options.get('CUDAExecutionProvider', {}).get('device_id', '0')}"


def make_session(onnx_path: Path, device: str) -> tuple[Any, dict[str, Any]]:
    """An InferenceSession with every option that affects numbers fixed, and those options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION)
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = INTER_OP_THREADS
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.use_deterministic_compute = True
    options.log_severity_level = 3
    providers: list[Any] = ["CPUExecutionProvider"]
    cuda = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    if cuda:
        cuda_options = {"device_id": str(_device_id(device)), **CUDA_OPTIONS}
        providers.insert(0, ("CUDAExecutionProvider", cuda_options))
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
    used = session.get_providers()
    provider_options = {p: session.get_provider_options().get(p, {}) for p in used}
    settings = {
        "onnxruntime": ort.__version__,
        "requested_device": device,
        "device": provider_device(used, provider_options),
        "providers": used,
        "provider_options": provider_options,
        "graph_optimization_level": GRAPH_OPTIMIZATION,
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": INTER_OP_THREADS,
        "execution_mode": "sequential",
        "deterministic_compute": True,
    }
    return session, settings


def _hint(card: DetectorCard) -> str:
    from artifactbench.assets import fetch_command

    return f"{fetch_command(card)} (or --weights FILE.onnx with its .onnx.data beside it)"


def _weight_files(card: DetectorCard, weights: Path | None) -> tuple[Path, Path, dict[str, Path]]:
    """The graph, where its external weights would sit, and the files its sha256 covers."""
    from artifactbench.assets import resolve_files

    if card.view.crop != "chunks" or card.view.seconds is None:
        raise Unavailable(f"{card.id}: the card's view must be chunks of fixed length", "")
    files = resolve_files(card, weights)
    primary = next(f.name for f in card.files if not f.optional)
    onnx_path = files[primary]
    data_path = onnx_path.with_name(onnx_path.name + ".data")
    hashed = {primary: onnx_path}
    if data_path.is_file():
        hashed[primary + ".data"] = data_path
    return onnx_path, data_path, hashed


def _files_record(onnx_path: Path, data_path: Path, hashed: dict[str, Path]) -> dict[str, Any]:
    from artifactbench.assets import cached_sha256

    return {
        "onnx": str(onnx_path),
        "external_data": str(data_path) if data_path in hashed.values() else None,
        "files": {name: cached_sha256(path) for name, path in sorted(hashed.items())},
    }


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The graph's files and their sha256, without starting a session."""
    from artifactbench.assets import files_sha256

    onnx_path, data_path, hashed = _weight_files(card, weights)
    return Identity(card, files_sha256(hashed), _files_record(onnx_path, data_path, hashed))


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> ArtifactNetOnnx:
    """The card's ONNX graph (`weights`, else the fetch cache), its contract checked on load.

    External weights are read from `NAME.onnx.data` beside `NAME.onnx`; `weights_sha256` covers
    both files.
    """
    from artifactbench.assets import files_sha256

    onnx_path, data_path, hashed = _weight_files(card, weights)
    width = int(round((card.view.seconds or 0) * card.view.rate))
    hint = _hint(card)
    try:
        import onnxruntime  # noqa: F401 - only to say how to install it when it is missing
    except ImportError as exc:
        raise Unavailable(
            f"{card.id} needs onnxruntime", "pip install 'artifactbench[models]'"
        ) from exc
    try:
        session, settings = make_session(onnx_path, context.device)
    except Exception as exc:  # noqa: BLE001 - any ORT load error means the graph is unusable
        reason = str(exc).splitlines()[0][:300]
        if "External data path" in reason:
            reason = f"its external weights must sit beside it as {data_path.name}: {reason}"
        raise Unavailable(f"{card.id}: cannot load {onnx_path}: {reason}", hint) from exc
    try:
        contract = check_contract(session.get_inputs(), session.get_outputs(), width)
        cost = None
        independent: bool | None
        if contract.fixed_batch_one:
            independent, diff = True, 0.0
        else:
            probe = probe_chunks(width, card.view.rate)
            first = single_row_cost(session, contract, probe[0], settings["device"])
            if first is not None and rows_per_piece(context.memory_budget, first, "cpu") == 1:
                independent, diff, cost = None, None, first  # one row a run: nothing to batch
            else:
                independent, diff, cost = rows_independent(session, contract, probe)
    except Exception as exc:  # noqa: BLE001 - a graph that fails its contract is unusable
        raise Unavailable(f"{card.id}: {onnx_path.name}: {exc}", hint) from exc
    if cost is not None:  # a row holds at least its own float32 input
        cost = max(cost, 4 * width)
    coupled = contract.fixed_batch_one or not independent
    chunks_per_run = (
        1
        if coupled or cost is None
        else rows_per_piece(context.memory_budget, cost, settings["device"])
    )
    provenance = {
        **_files_record(onnx_path, data_path, hashed),
        **settings,
        "input": {"name": contract.input_name, "shape": session.get_inputs()[0].shape},
        "output": {"name": contract.output_name, "shape": session.get_outputs()[0].shape},
        "aggregation": "median of finite chunk P(AI); non-finite chunks excluded and counted",
        "chunks_per_run": chunks_per_run,
        "bytes_per_chunk": cost,
        "memory_budget": context.memory_budget,
        "rows_independent": independent,
        "batch_probe_max_difference": diff,
        "max_chunks_on_memory_error": MAX_CHUNKS_ON_MEMORY_ERROR,
        "batches_split_for_memory": 0,
    }
    return ArtifactNetOnnx(
        card, session, contract, width, chunks_per_run, files_sha256(hashed), provenance
    )
