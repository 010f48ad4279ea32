"""The `artifactbench` command: parses options, calls one function, prints the result."""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from artifactbench.progress import progress_to

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from artifactbench.audio.transforms import Transform
    from artifactbench.benches import BenchOptions
    from artifactbench.benches.base import Bench
    from artifactbench.detectors.base import DetectorCard
    from artifactbench.progress import ProgressHook
    from artifactbench.runner import RayOptions, RunOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Benchmark harness for detectors of AI-generated music.",
)
# Tables stay readable when piped or logged: rich would otherwise wrap them at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 120
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True)


class Split(StrEnum):
    train = "train"
    valid = "valid"
    test = "test"
    all = "all"


class Engine(StrEnum):
    """runner.ENGINES, as choices the command line can list."""

    local = "local"
    ray = "ray"


class Teacher(StrEnum):
    auto = "auto"
    demucs = "demucs"
    hpss = "hpss"


class UsageProblem(Exception):
    """Wrong input from the user: printed as one line, exit code 2."""


def _default_workers() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


DEFAULT_WORKERS = _default_workers()
# Options shared by the commands that score a bench (run, codec, bandwidth, ...).
BenchOption = Annotated[
    str, typer.Option(help="demo | folder:PATH | artifactbench[:PATH] | sonics:PATH")
]
NPerSourceOption = Annotated[
    int | None, typer.Option(min=1, help="the same seeded N tracks per subset for every model")
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="score a seeded sample of N")]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(min=1, help="tracks per detector call (default: 4 on CPU, 16 on CUDA)"),
]
MemoryBudgetOption = Annotated[
    float,
    typer.Option(
        min=16, help="MiB of intermediates one detector call may hold, whatever the batch"
    ),
]
WorkersOption = Annotated[int, typer.Option(min=0, help="decode processes (0: in-process)")]


def _check_device(value: str) -> str:
    """The device, refused before any work when it is misspelt or unusable on this machine."""
    from artifactbench.detectors.devices import DeviceError, check_device

    try:
        return check_device(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc)) from exc


DeviceOption = Annotated[str, typer.Option(help="cpu | cuda | cuda:N", callback=_check_device)]
ThresholdOption = Annotated[float, typer.Option(min=0.0, max=1.0)]
RunsOption = Annotated[Path, typer.Option("--out", help="where run directories go")]
WeightsOption = Annotated[Path | None, typer.Option(help="weights file for the one model")]
FitOnOption = Annotated[
    str | None,
    typer.Option(help="bench whose train split bench-fitted models (fakeprint) fit on"),
]


def _say(line: str) -> None:
    """A line for the person running the command, on stderr beside the progress."""
    err.print(line, markup=False, highlight=False)


def _parse_bench(spec: str, options: BenchOptions | None = None) -> Bench:
    """The bench a spec names, with progress when it is generated on first use (the demo)."""
    from artifactbench.benches import UnknownBench, open_bench

    try:
        with progress_to(err) as progress:
            return open_bench(spec, options, progress)
    except (UnknownBench, ValueError) as exc:
        raise UsageProblem(str(exc)) from exc


def _parse_models(spec: str) -> list[DetectorCard]:
    from artifactbench.detectors.registry import UnknownModel, resolve_models

    try:
        return resolve_models(spec)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc


def _batch_size(given: int | None, device: str) -> int:
    """A batch buys throughput on a GPU; on a CPU it buys nothing measurable, only memory."""
    return given or (16 if device.startswith("cuda") else 4)


def _fit_bench(spec: str | None, cards: list[DetectorCard]) -> Bench | None:
    """The bench a bench-fitted model fits on instead of the scored one (which may have no
    train split, as an `ai/` + `real/` folder has not)."""
    if spec is None:
        return None
    if not any(card.fits_on_bench for card in cards):
        fitted = ", ".join(c.id for c in _parse_models("all") if c.fits_on_bench)
        raise UsageProblem(f"--fit-on applies to bench-fitted models ({fitted}); none is chosen")
    return _parse_bench(spec)


def _weights_for(cards: list[DetectorCard], weights: Path | None) -> dict[str, Path]:
    if weights is None:
        return {}
    if len(cards) != 1:
        raise UsageProblem("--weights applies to exactly one model; name it with --models")
    if not weights.exists():
        raise UsageProblem(f"weights not found: {weights}")
    return {cards[0].id: weights}


@app.command()
def run(
    bench: BenchOption = "demo",
    models: Annotated[str, typer.Option(help="'all' or comma-separated model ids")] = "all",
    split: Annotated[Split, typer.Option(help="bench_origin to score")] = Split.test,
    audio_root: Annotated[
        list[Path] | None, typer.Option(help="where a manifest's local audio lives (repeatable)")
    ] = None,
    protocol_split: Annotated[
        str | None, typer.Option(help="v2 manifest split: calibration | validation | test")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="hub revision of a fetched bench")] = None,
    n_per_source: NPerSourceOption = None,
    limit: LimitOption = None,
    batch_size: BatchSizeOption = None,
    memory_budget: MemoryBudgetOption = 512,
    workers: WorkersOption = DEFAULT_WORKERS,
    device: DeviceOption = "cpu",
    threshold: ThresholdOption = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    out_dir: RunsOption = Path("runs"),
    weights: WeightsOption = None,
    fit_on: FitOnOption = None,
    strict: Annotated[bool, typer.Option(help="an unavailable model is an error")] = False,
    transform: Annotated[
        list[str] | None,
        typer.Option(help="also score a transformed variant, e.g. resample:16000 (repeatable)"),
    ] = None,
    engine: Annotated[
        Engine, typer.Option(help="local: this machine; ray: a Ray cluster (extra '.[ray]')")
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: auto | HEAD:6379 (default: a local one)"),
    ] = None,
    num_cpus: Annotated[float, typer.Option(min=0.01, help="CPUs per Ray detector actor")] = 1.0,
    num_gpus: Annotated[float, typer.Option(min=0.0, help="GPUs per Ray detector actor")] = 0.0,
) -> None:
    """Score a bench with detectors and write a run directory (the results contract)."""
    from artifactbench.benches import BenchOptions
    from artifactbench.runner import RunOptions

    ray_options = _ray_options(engine, address, num_cpus, num_gpus, device)
    cards = _parse_models(models)
    chains = [[], *(_parse_chain(spec) for spec in transform or [])]
    bench_options = BenchOptions(tuple(audio_root or ()), protocol_split, revision)
    bench_obj = _parse_bench(bench, bench_options)
    options = RunOptions(
        split=split.value, n_per_source=n_per_source, limit=limit,
        batch_size=_batch_size(batch_size, device), memory_budget=int(memory_budget * 2**20),
        workers=workers, device=device, threshold=threshold, seed=seed, out=out_dir,
        strict=strict, weights=_weights_for(cards, weights), chains=chains,
        engine=engine.value, ray=ray_options, fit_on=_fit_bench(fit_on, cards),
    )  # fmt: skip
    _execute(bench_obj, cards, options)


def _ray_options(
    engine: Engine, address: str | None, num_cpus: float, num_gpus: float, device: str
) -> RayOptions:
    """The Ray settings, refused when they cannot mean anything: Ray options on the local
    engine, GPUs reserved for a CPU device or a CUDA device without a GPU per actor, or the
    Ray engine without Ray installed."""
    from artifactbench.detectors.base import Unavailable
    from artifactbench.runner import RayOptions

    ray_flags = address is not None or num_cpus != 1.0 or num_gpus != 0.0
    if engine is Engine.local:
        if ray_flags:
            raise UsageProblem("--address, --num-cpus and --num-gpus need --engine ray")
        return RayOptions()
    on_cuda = device.startswith("cuda")
    if on_cuda != (num_gpus > 0):
        raise UsageProblem(
            "--engine ray: give --device cuda together with --num-gpus > 0 (GPU actors), "
            "or neither (CPU actors)"
        )
    if on_cuda and device != "cuda":
        raise UsageProblem("--engine ray: use --device cuda; Ray assigns each actor its GPU")
    from artifactbench.runner.ray_engine import ray_module

    try:
        ray_module()
    except Unavailable as exc:
        raise UsageProblem(f"{exc} (fix: {exc.hint})") from exc
    return RayOptions(address, num_cpus, num_gpus)


@app.command()
def codec(
    bench: BenchOption = "demo",
    models: Annotated[str, typer.Option(help="'all' or comma-separated model ids")] = "all",
    codecs: Annotated[
        str, typer.Option(help="comma-separated: wav, mp3-128, mp3-320, aac-128, opus-128, ...")
    ] = "wav,mp3-128,mp3-320,aac-128,opus-128,opus-192",
    split: Annotated[Split, typer.Option(help="bench_origin to score")] = Split.test,
    n_per_source: NPerSourceOption = None,
    limit: LimitOption = None,
    transform: Annotated[
        str | None, typer.Option(help="a transform chain applied before every codec")
    ] = None,
    batch_size: BatchSizeOption = None,
    memory_budget: MemoryBudgetOption = 512,
    workers: WorkersOption = DEFAULT_WORKERS,
    device: DeviceOption = "cpu",
    threshold: ThresholdOption = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    out_dir: RunsOption = Path("runs"),
    weights: WeightsOption = None,
    fit_on: FitOnOption = None,
) -> None:
    """Score every track through each codec round trip (Table X, P(AI) spread, codec sanity)."""
    from artifactbench.audio.transforms import CODECS
    from artifactbench.runner import RunOptions

    names = [c.strip().lower() for c in codecs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CODECS]
    if unknown or not names:
        raise UsageProblem(
            f"unknown codec {unknown[0] if unknown else codecs!r}; choose from: {', '.join(CODECS)}"
        )
    prefix = _parse_chain(transform) if transform else []
    chains = [[*prefix, *_parse_chain(f"codec:{name}")] for name in dict.fromkeys(names)]
    cards = _parse_models(models)
    bench_obj = _parse_bench(bench)
    options = RunOptions(
        split=split.value, n_per_source=n_per_source, limit=limit,
        batch_size=_batch_size(batch_size, device), memory_budget=int(memory_budget * 2**20),
        workers=workers, device=device, threshold=threshold, seed=seed, out=out_dir,
        weights=_weights_for(cards, weights), chains=chains, fit_on=_fit_bench(fit_on, cards),
    )  # fmt: skip
    _execute(bench_obj, cards, options)


def _parse_chain(spec: str) -> list[Transform]:
    """A transform chain from its spec, loaded now so a missing backend fails before decoding."""
    from artifactbench.audio.transforms import (
        TransformUnavailable,
        describe_chain,
        parse_transforms,
    )

    try:
        chain = parse_transforms(spec)
        describe_chain(chain)
    except (ValueError, TransformUnavailable) as exc:
        raise UsageProblem(str(exc)) from exc
    return chain


def _execute(bench_obj: Bench, cards: list[DetectorCard], options: RunOptions) -> None:
    """Run with progress, print the summary and variant tables and the run directory."""
    from artifactbench.detectors.base import Unavailable
    from artifactbench.runner import EngineFailure, Interrupted, NothingToScore
    from artifactbench.runner import run as run_bench

    in_sample = [c.id for c in cards if c.fits_on_bench and c.id not in options.weights]
    if in_sample and options.split != Split.test.value and options.fit_on is None:
        _say(
            f"warning: {', '.join(in_sample)} fit(s) on the train split: "
            "scores on its train tracks are in-sample"
        )
    try:
        with progress_to(err) as progress:
            result = run_bench(bench_obj, cards, options, progress, say=_say)
    except (Unavailable, NothingToScore) as exc:
        hint = getattr(exc, "hint", None)
        raise UsageProblem(f"{exc} (fix: {hint})" if hint else str(exc)) from exc
    except EngineFailure as exc:
        err.print(f"[red]error:[/red] {exc}; scores written so far are kept, rerun to resume")
        raise typer.Exit(1) from exc
    except Interrupted as exc:
        _say(str(exc))
        raise typer.Exit(130) from None
    _print_run(result.run_dir)
    out.print(f"run directory: {result.run_dir}")


def _print_run(run_dir: Path) -> None:
    """The summary tables, then the variant comparison when the run has several variants."""
    from artifactbench.reports.console import print_run

    print_run(out, run_dir)


def _latest_run(runs: Path) -> Path:
    """The newest complete run directory under `runs` (partial ones are passed over)."""
    from artifactbench.runner import is_partial_run

    found = sorted(
        (p for p in runs.glob("*/predictions.parquet") if not is_partial_run(p.parent)),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise UsageProblem(f"no run found under {runs}; give RUN_DIR or run `artifactbench run`")
    return found[-1].parent


def _predictions(run_dir: Path) -> Path:
    """The predictions of a complete run directory; anything else is refused in one line."""
    from artifactbench.runner import is_partial_run

    if is_partial_run(run_dir):
        raise UsageProblem(
            f"{run_dir} is an incomplete run directory (its run was interrupted or is still "
            "writing); rerun the command that made it to resume"
        )
    path = run_dir / "predictions.parquet"
    if not path.is_file():
        raise UsageProblem(f"{run_dir} is not a run directory (no predictions.parquet)")
    return path


@app.command()
def sanity(
    run_dir: Annotated[Path | None, typer.Argument(help="run directory (default: latest)")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="where to look for the latest")] = Path(
        "runs"
    ),
) -> None:
    """Print the per-subset sanity table of a run, from its predictions alone."""
    from artifactbench.predictions import PredictionsError, read_predictions
    from artifactbench.reports import NothingToReport, build_results
    from artifactbench.reports.tables import sanity_markdown

    directory = run_dir or _latest_run(runs)
    path = _predictions(directory)
    try:
        preds, meta = read_predictions(path)
        _, table = build_results(preds, meta)
    except NothingToReport as exc:
        raise UsageProblem(f"{directory} has no scored model: nothing to report") from exc
    except PredictionsError as exc:
        raise UsageProblem(str(exc)) from exc
    out.print(sanity_markdown(table), markup=False)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="run directory")]) -> None:
    """Rebuild every table and plot of a run from predictions.parquet (no model is called)."""
    from artifactbench.predictions import PredictionsError
    from artifactbench.reports import NothingToReport, write_reports

    try:
        written = write_reports(_predictions(run_dir), run_dir)
    except NothingToReport as exc:
        raise UsageProblem(f"{run_dir} has no scored model: nothing to report") from exc
    except PredictionsError as exc:
        raise UsageProblem(str(exc)) from exc
    _print_run(run_dir)
    out.print(f"rebuilt: {', '.join(sorted(p.name for p in written.values()))}")


@app.command()
def score(
    files: Annotated[list[Path], typer.Argument(help="audio files")],
    model: Annotated[str, typer.Option(help="model id")],
    weights: Annotated[Path | None, typer.Option(help="weights file")] = None,
    bench: Annotated[str, typer.Option(help="bench a bench-fitted model fits on")] = "demo",
    audio_root: Annotated[
        list[Path] | None, typer.Option(help="local audio of that bench's manifest (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
) -> None:
    """Score audio files with one model: path, P(AI), verdict per line."""
    from artifactbench.audio.decode import DecodeError, decode_audio, detector_view
    from artifactbench.detectors.registry import UnknownModel, resolve_models
    from artifactbench.runner import RunOptions, load_models, score_row

    try:
        cards = resolve_models(model, allow_all=False)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc
    if len(cards) != 1:
        raise UsageProblem("score takes exactly one --model")
    card = cards[0]
    options = RunOptions(workers=_default_workers(), weights=_weights_for(cards, weights))
    from artifactbench.benches import BenchOptions

    fits = card.fits_on_bench and weights is None
    bench_obj = _parse_bench(bench, BenchOptions(tuple(audio_root or ()))) if fits else None
    loaded, skipped = load_models(cards, bench_obj, options)
    if skipped:
        raise UsageProblem(f"{card.id} is unavailable: {skipped[0].reason}; fix: {skipped[0].hint}")
    detector = loaded[0]
    cut = threshold if threshold is not None else card.threshold
    failures = 0
    for path in files:
        try:
            view = detector_view(decode_audio(path), card.view)
            row = score_row(detector.score([view])[0], 0.0)
            if row.status == "failed":
                raise RuntimeError(row.error)
            prob = row.prob
            verdict = "ai" if prob >= cut else "real"
            record = {"path": str(path), "prob": prob, "verdict": verdict, "model": card.id}
            if row.note:
                record["note"] = row.note
        except DecodeError as exc:
            failures += 1
            record = {"path": str(path), "prob": None, "verdict": None, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a model error costs this file, not the rest
            failures += 1
            kind = "" if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: "
            message = f"inference: {kind}{exc}".splitlines()[0]
            record = {"path": str(path), "prob": None, "verdict": None, "error": message}
        if as_json:
            print(json.dumps(record), flush=True)
        elif record["prob"] is None:
            print(f"{path}\terror: {record['error']}", file=sys.stderr, flush=True)
        else:
            note = f"\t({record['note']})" if "note" in record else ""
            print(f"{path}\t{prob:.4f}\t{verdict}{note}", flush=True)
    if failures:
        raise typer.Exit(1)


fetch_app = typer.Typer(
    no_args_is_help=True, help="Download a bench or model at its pinned revision into the cache."
)
app.add_typer(fetch_app, name="fetch")
FETCHABLE_BENCHES = ("artifactbench",)


@fetch_app.command("bench")
def fetch_bench(
    name: Annotated[str, typer.Argument(help="artifactbench")],
    revision: Annotated[str | None, typer.Option(help="hub revision (commit, tag, branch)")] = None,
) -> None:
    """Fetch a bench's published files (the hub must be reachable)."""
    if name not in FETCHABLE_BENCHES:
        raise UsageProblem(
            f"cannot fetch bench {name!r}; choose from: {', '.join(FETCHABLE_BENCHES)}"
        )
    from artifactbench.benches.artifactbench import FetchError, default_cache, fetch_artifactbench

    try:
        snapshot = fetch_artifactbench(revision, default_cache())
    except FetchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    out.print(f"fetched {name} into {snapshot}", markup=False, highlight=False)


@fetch_app.command("model")
def fetch_model_command(
    name: Annotated[str, typer.Argument(help="model id (see `artifactbench models`)")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="a file, a folder of its files, or a URL, instead of the hub"),
    ] = None,
) -> None:
    """Fetch a model's files and encoders into the cache; the first fetch records their pins."""
    from artifactbench.assets import FETCH_RECORD, FetchError, fetch_model, model_dir
    from artifactbench.detectors.registry import (
        UnknownModel,
        cards,
        fetch_refusal,
        fetchable_cards,
        resolve_models,
    )

    fetchable = fetchable_cards()
    known = cards()
    if name in known and name not in fetchable:
        raise UsageProblem(
            f"cannot fetch {name!r}: fetch one model with published weights "
            f"({fetch_refusal(known[name])}); choose from: {', '.join(fetchable)}"
        )
    try:
        chosen = resolve_models(name, allow_all=False, among=fetchable)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc
    if len(chosen) != 1:
        raise UsageProblem(f"fetch one model at a time; choose from: {', '.join(fetchable)}")
    card = chosen[0]
    try:
        record = fetch_model(card, source)
    except FetchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    files = ", ".join(f"{k} ({v[:12]})" for k, v in sorted(record["files"].items()))
    commit = f" at commit {record['resolved']}" if record.get("resolved") else ""
    out.print(
        f"fetched {card.id}{commit} into {model_dir(card)}: {files}; pins in {FETCH_RECORD}",
        markup=False,
        highlight=False,
    )


OPEN_MODELS = ("artifactnet-open",)


def _open_model(name: str) -> None:
    if name not in OPEN_MODELS:
        raise UsageProblem(
            f"unknown trainable model {name!r}; choose from: {', '.join(OPEN_MODELS)}"
        )


def _open_weights(weights: Path | None) -> Path:
    """--weights, else the demo model shipped in the package."""
    from artifactbench.detectors.artifactnet_open.detector import TRAIN_HINT
    from artifactbench.experiments.artifactnet_open.train import WEIGHTS_FILE

    if weights is not None:
        if not weights.is_file():
            raise UsageProblem(f"weights not found: {weights}")
        return weights
    from artifactbench.assets import packaged_dir

    shipped = packaged_dir() / WEIGHTS_FILE
    if not shipped.is_file():
        raise UsageProblem(f"no trained artifactnet-open weights; give --weights or: {TRAIN_HINT}")
    return shipped


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="artifactnet-open")],
    bench: Annotated[str, typer.Option(help="bench whose train split it learns")] = "demo",
    small: Annotated[
        bool, typer.Option(help="the configuration that trains on 2 CPU cores")
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="weights, checkpoints, loss log")] = Path(
        "models/artifactnet-open"
    ),
    seed: Annotated[int, typer.Option()] = 0,
    workers: Annotated[int, typer.Option(min=0)] = _default_workers(),
    teacher: Annotated[
        Teacher, typer.Option(help="phase 1 teacher; auto: demucs if its weights are on disk")
    ] = Teacher.auto,
    demucs_dir: Annotated[
        Path | None, typer.Option(help="folder with htdemucs.yaml and its model files")
    ] = None,
) -> None:
    """Train the open ArtifactNet on a bench's train split (resumable per phase)."""
    _open_model(model)
    from artifactbench.experiments.artifactnet_open.train import train as train_model

    bench_obj = _parse_bench(bench)
    try:
        with progress_to(err) as progress:
            weights = train_model(
                bench_obj, out_dir, small=small, seed=seed, workers=workers, teacher=teacher.value,
                demucs_dir=demucs_dir, progress=_say, bars=progress,
            )  # fmt: skip
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    out.print(f"weights: {weights}", markup=False, highlight=False)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="artifactnet-open")],
    onnx: Annotated[Path, typer.Option(help="output ONNX file")],
    weights: Annotated[
        Path | None, typer.Option(help="trained .pt (default: shipped demo)")
    ] = None,
    check_bench: Annotated[
        str | None, typer.Option(help="also compare ONNX and torch on every chunk of this bench")
    ] = None,
    check_split: Annotated[Split, typer.Option(help="bench_origin of --check-bench")] = Split.test,
    check_limit: Annotated[
        int | None, typer.Option(min=1, help="a seeded sample of N tracks of --check-bench")
    ] = None,
    workers: Annotated[int, typer.Option(min=0)] = _default_workers(),
) -> None:
    """Export the whole pipeline (audio in, P(AI) out) with the published ArtifactNet contract."""
    _open_model(model)
    from artifactbench.experiments.artifactnet_open.export import export_onnx

    path = _open_weights(weights)
    check = _parse_bench(check_bench) if check_bench is not None else None
    try:
        with progress_to(err) as progress:
            views = None
            if check is not None:
                label = f"checking onnx against torch on {check.name} {check_split.value}"
                labelled = _artifactnet_views(
                    check, check_split, check_limit, workers, progress, label
                )
                views = (view for view, _ in labelled)
            record = export_onnx(path, onnx, views)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    checked = f"{record['probe_chunks']} probe chunks"
    if "bench_chunks" in record:
        checked += f" and {record['bench_chunks']} chunks of {check_bench} {check_split.value}"
    out.print(
        f"exported {record['onnx']} (max |onnx - torch| = {record['max_abs_difference']:.2e} "
        f"over {checked}); score it with: artifactbench run --models artifactnet "
        f"--weights {record['onnx']}",
        markup=False,
        highlight=False,
    )


def _artifactnet_views(
    bench: Bench,
    split: Split,
    limit: int | None,
    workers: int,
    progress: ProgressHook,
    label: str,
) -> Iterator[tuple[np.ndarray, str]]:
    """(7-chunk view, label) per decodable track of a bench split, as the ArtifactNet card
    decodes it; a seeded sample of `limit` tracks when given. A track counts in `progress`
    when the consumer asks for the next one, i.e. once it has been used."""
    from artifactbench.audio.pool import decode_stream
    from artifactbench.detectors.registry import cards
    from artifactbench.runner import limit_tracks

    tracks = limit_tracks(bench.select(split.value), limit, seed=0)
    view = cards()["artifactnet"].view
    advance = progress(label, len(tracks))
    for decoded in decode_stream(list(enumerate(tracks)), [view], workers):
        if decoded.views is not None:
            yield decoded.views[0], tracks[decoded.index].label
        advance(1)


@app.command()
def ablate(
    channel: Annotated[str, typer.Argument(help="a channel name, all, or bounded-mask")],
    bench: Annotated[str, typer.Option(help="bench to evaluate on")] = "demo",
    split: Annotated[Split, typer.Option(help="bench_origin to evaluate")] = Split.test,
    weights: Annotated[
        Path | None, typer.Option(help="trained .pt (default: shipped demo)")
    ] = None,
    unbounded_weights: Annotated[
        Path | None,
        typer.Option(help="bounded-mask: the unbounded twin (default: trained and cached)"),
    ] = None,
    out_dir: RunsOption = Path("runs"),
    workers: Annotated[int, typer.Option(min=0)] = _default_workers(),
) -> None:
    """Replace a forensic channel by its training-set mean, or compare the mask bound, and
    report F1, AUC, TPR, FPR against the baseline."""
    from artifactbench.experiments.artifactnet_open.ablate import (
        ABLATIONS,
        compare_mask_bound,
        render_json,
        render_markdown,
    )
    from artifactbench.experiments.artifactnet_open.ablate import (
        ablate as run_ablation,
    )

    choices = f"all, bounded-mask, {', '.join(ABLATIONS)}"
    if channel not in ("all", "bounded-mask", *ABLATIONS):
        raise UsageProblem(f"unknown channel {channel!r}; choose from: {choices}")
    if unbounded_weights is not None and channel != "bounded-mask":
        raise UsageProblem("--unbounded-weights goes with bounded-mask only")
    from artifactbench.runner import new_run_dir

    path = _open_weights(weights)
    bench_obj = _parse_bench(bench)
    twin = _open_weights(unbounded_weights) if unbounded_weights else None
    try:
        if channel == "bounded-mask":
            twin = twin or _unbounded_twin(path, bench_obj, workers)
        with progress_to(err) as progress:
            examples = _artifactnet_views(
                bench_obj, split, None, workers, progress, f"ablate {channel} on {split.value}"
            )
            if twin is not None:
                result = compare_mask_bound(path, twin, examples)
            else:
                result = run_ablation(path, channel, examples)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    with new_run_dir(out_dir, f"ablate-{channel}-{bench_obj.name}", split.value) as target:
        (target.work / "ablation.md").write_text(render_markdown(result))
        (target.work / "ablation.json").write_text(render_json(result))
    out.print(render_markdown(result), markup=False, highlight=False)
    out.print(f"run directory: {target.final}", markup=False, highlight=False)


def _unbounded_twin(weights: Path, bench: Bench, workers: int) -> Path:
    """The unbounded twin of `weights`, trained the same way on first use and cached."""
    from artifactbench.experiments.artifactnet_open.train import WEIGHTS_FILE, train_twin
    from artifactbench.paths import cache_dir
    from artifactbench.util import sha256_file

    twin_dir = cache_dir() / "artifactnet-open" / f"unbounded-twin-{sha256_file(weights)[:16]}"
    if (twin_dir / WEIGHTS_FILE).is_file():
        return twin_dir / WEIGHTS_FILE
    err.print(
        f"training the unbounded twin of {weights.name} on {bench.name!r} as it was trained "
        f"(once; cached in {twin_dir})",
        markup=False,
        highlight=False,
    )
    with progress_to(err) as progress:
        return train_twin(
            weights, bench, twin_dir, bounded=False, workers=workers, progress=_say,
            bars=progress,
        )  # fmt: skip


@app.command()
def bandwidth(
    bench: BenchOption = "demo",
    split: Annotated[Split, typer.Option(help="bench_origin to measure")] = Split.test,
    residual: Annotated[
        str, typer.Option(help="residual model: hpss | artifactnet-open | demucs")
    ] = "hpss",
    weights: Annotated[
        Path | None, typer.Option(help="artifactnet-open .pt, or the demucs weights folder")
    ] = None,
    n_per_source: Annotated[
        int | None, typer.Option(min=1, help="the same seeded N tracks per subset")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N tracks")] = None,
    max_seconds: Annotated[
        float, typer.Option(min=0.0, help="measure the centred N s of each track (0: whole track)")
    ] = 60.0,
    workers: Annotated[int, typer.Option(min=0)] = _default_workers(),
    device: DeviceOption = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    out_dir: RunsOption = Path("runs"),
) -> None:
    """Effective bandwidth of each track's residual (Appendix C): Table XI and its figure."""
    from artifactbench.audio.separation import DemucsUnavailable
    from artifactbench.detectors.base import Unavailable
    from artifactbench.experiments.bandwidth.measure import RESIDUAL_MODELS
    from artifactbench.experiments.bandwidth.run import measure_bandwidth

    if residual not in RESIDUAL_MODELS:
        raise UsageProblem(
            f"unknown residual {residual!r}; choose from: {', '.join(RESIDUAL_MODELS)}"
        )
    bench_obj = _parse_bench(bench)
    try:
        with progress_to(err) as progress:
            run_dir = measure_bandwidth(
                bench_obj, split.value, residual, weights, workers=workers,
                n_per_source=n_per_source, limit=limit, seed=seed, out=out_dir,
                max_seconds=max_seconds or None, progress=progress, device=device,
            )  # fmt: skip
    except (ValueError, DemucsUnavailable) as exc:
        raise UsageProblem(str(exc)) from exc
    except Unavailable as exc:
        raise UsageProblem(f"{exc} (fix: {exc.hint})") from exc
    out.print((run_dir / "bandwidth.md").read_text(), markup=False, highlight=False)
    out.print(f"run directory: {run_dir}", markup=False, highlight=False)


@app.command()
def leaderboard(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories to merge")],
    out_dir: Annotated[Path, typer.Option("--out", help="where leaderboard files go")] = Path(
        "leaderboard"
    ),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Merge runs of one bench, split and protocol into a ranked leaderboard."""
    from artifactbench.reports.leaderboard.build import build_leaderboard, write_leaderboard

    for run_dir in run_dirs:
        _predictions(run_dir)
    try:
        board = build_leaderboard(run_dirs, seed=seed)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageProblem(str(exc).splitlines()[0]) from exc
    paths = write_leaderboard(board, out_dir)
    out.print(paths["leaderboard.md"].read_text(), markup=False, highlight=False)
    out.print(f"leaderboard: {out_dir}", markup=False, highlight=False)


@app.command()
def benches() -> None:
    """List every bench source, whether it is ready here, and what it needs."""
    from artifactbench.benches import BENCH_SOURCES

    for spec, source in BENCH_SOURCES.items():
        print(f"{spec}\t{source.status()}\t{source.needs}")


@app.command()
def models(
    details: Annotated[
        bool,
        typer.Option(help="add parameters, weights and their pins, cached fits, view, threshold"),
    ] = False,
) -> None:
    """List detectors (from their cards) and whether each can run here."""
    from artifactbench.detectors.registry import availability, cards

    for card in cards().values():
        print(f"{card.id}\t{card.family}\t{availability(card)}")
        if details:
            for line in _card_details(card):
                print(f"    {line}")
    if details:
        from artifactbench.detectors.artifactnet_open.model import architecture_counts

        print("artifactnet-open architectures (counted trainable parameters):")
        for name, counts in architecture_counts().items():
            print(f"    {name}: {_counts_line(counts)}")


def _counts_line(counts: dict[str, int]) -> str:
    return (
        f"ArtifactUNet {counts['unet']:,} + classifier {counts['classifier']:,} "
        f"= {counts['total']:,}"
    )


def _card_details(card: DetectorCard) -> list[str]:
    """Facts from the card, where each file's sha256 pin comes from (the card, or the record of
    the first fetch), cached fits of a bench-fitted model, and for the open ArtifactNet the
    counts of its shipped weights."""
    from artifactbench.assets import cached_fits, fetch_record, file_pins

    record = fetch_record(card)
    resolved = record.get("resolved")
    source = (
        f"{card.repo}@{card.revision}"
        if card.repo
        else f"revision {card.revision}"
        if card.revision
        else "packaged or user-supplied"
    )
    if isinstance(resolved, str) and resolved != card.revision:
        source += f" (resolved to {resolved} at first fetch)"
    view = card.view
    crop = f"{view.n_chunks} x {view.seconds} s chunks" if view.crop == "chunks" else view.crop
    origins = {
        "card": "pinned by the card",
        "recorded": "recorded at first fetch",
        "none": "not pinned yet: the first fetch records it",
    }
    files = ", ".join(
        f"{name} sha256 {(sha or '-')[:12]} ({origins[origin]})"
        for name, (sha, origin) in file_pins(card).items()
    )
    weights = f"{source}; {files}" if card.files else "none (fitted on the bench's train split)"
    lines = [
        f"params: {card.params or 'unknown'}",
        f"weights: {weights}",
        f"view: {view.rate} Hz, {crop if view.seconds else 'whole track'}; "
        f"threshold {card.threshold}",
    ]
    if card.fits_on_bench:
        fits = cached_fits(card)
        if not fits:
            lines.append("cached fits: none yet (a run on a bench fits and caches one)")
        for path, fit in fits:
            lines.append(
                f"cached fit: {path} (bench {fit.get('bench', '?')}, "
                f"{fit.get('bench_fingerprint', '?')}, {fit.get('split', '?')} split, "
                f"{fit.get('n_train_tracks', '?')} tracks); use with --weights {path}"
            )
    if card.family == "artifactnet_open":
        from artifactbench.assets import resolve_files
        from artifactbench.detectors.artifactnet_open.detector import read_weights
        from artifactbench.detectors.artifactnet_open.model import parameter_counts
        from artifactbench.detectors.base import Unavailable

        try:
            model, _, _ = read_weights(next(iter(resolve_files(card, None).values())))
        except (Unavailable, StopIteration, OSError, ValueError) as exc:
            lines.append(f"counted: weights not readable here ({exc})")
        else:
            lines.append(f"counted: {_counts_line(parameter_counts(model))}")
    return lines


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def _terminate(_signum: int, _frame: object) -> None:
    """SIGTERM stops a command as Ctrl-C does: committed work is kept, nothing half-written."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: wrong input is one line on stderr and exit code 2, never a traceback;
    SIGINT and SIGTERM are one line and exit code 130."""
    signal.signal(signal.SIGTERM, _terminate)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="artifactbench", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except UsageProblem as exc:
        _fail(str(exc))
    except typer.TyperException as exc:  # click's usage errors, vendored by typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message() + "\n")
            sys.exit(0)
        message = " ".join(exc.format_message().replace("Value error, ", "").split())
        if "No such command" in message:
            message += f" Commands: {', '.join(command.commands)}."
        _fail(message, getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
