"""Commands that score: `run` (a bench, with variants), `codec` (codec round trips) and `score`
(loose files). Each builds the options, calls the runner once and prints."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from artifactbench.audio.transforms import CODECS
from artifactbench.benches.catalog import PROTOCOL_SPLITS
from artifactbench.cli.common import (
    DEFAULT_WORKERS,
    BatchSizeOption,
    BenchOption,
    CalibrateOnOption,
    DcfCFaOption,
    DcfCMissOption,
    DcfPAttackOption,
    DeviceOption,
    FitOnOption,
    LimitOption,
    MemoryBudgetOption,
    ModelsOption,
    NPerSourceOption,
    RunsOption,
    SeedOption,
    Split,
    SplitOption,
    ThresholdFromOption,
    ThresholdOption,
    UsageProblem,
    WeightsOption,
    WorkersOption,
    err,
    parse_bench,
    parse_chain,
    parse_models,
    parse_transfer,
    print_run,
    say,
    scoring_outcomes,
    show,
)
from artifactbench.detectors.devices import default_batch_size
from artifactbench.progress import progress_to

if TYPE_CHECKING:
    from artifactbench.audio.transforms import Transform
    from artifactbench.benches.base import Bench
    from artifactbench.detectors.base import DetectorCard
    from artifactbench.runner import RayOptions, RunOptions


class Engine(StrEnum):
    """runner.ENGINES, as choices the command line can list."""

    local = "local"
    ray = "ray"


EngineOption = Annotated[
    Engine, typer.Option(help="local: this machine; ray: a Ray cluster (extra '.[ray]')")
]
AddressOption = Annotated[
    str | None, typer.Option(help="Ray cluster to join: auto | HEAD:6379 (default: a local one)")
]
NumCpusOption = Annotated[float, typer.Option(min=0.01, help="CPUs per Ray detector actor")]
NumGpusOption = Annotated[float, typer.Option(min=0.0, help="GPUs per Ray detector actor")]


def _fit_bench(spec: str | None, cards: list[DetectorCard]) -> Bench | None:
    """The bench a bench-fitted model fits on instead of the scored one (which may have no
    train split, as an `ai/` + `real/` folder has not)."""
    if spec is None:
        return None
    if not any(card.fits_on_bench for card in cards):
        fitted = ", ".join(c.id for c in parse_models("all") if c.fits_on_bench)
        raise UsageProblem(f"--fit-on applies to bench-fitted models ({fitted}); none is chosen")
    return parse_bench(spec)


def weights_for(cards: list[DetectorCard], weights: Path | None) -> dict[str, Path]:
    if weights is None:
        return {}
    if len(cards) != 1:
        raise UsageProblem("--weights applies to exactly one model; name it with --models")
    if not weights.exists():
        raise UsageProblem(f"weights not found: {weights}")
    return {cards[0].id: weights}


def _options(
    cards: list[DetectorCard],
    chains: list[list[Transform]],
    *,
    split: Split,
    batch_size: int | None,
    memory_budget: float,
    device: str,
    weights: Path | None,
    fit_on: str | None,
    **given: object,
) -> RunOptions:
    """RunOptions from what `run` and `codec` share, checked against the chosen models."""
    from artifactbench.runner import RunOptions

    return RunOptions(
        split=split.value, batch_size=batch_size or default_batch_size(device),
        memory_budget=int(memory_budget * 2**20), device=device,
        weights=weights_for(cards, weights), chains=chains, fit_on=_fit_bench(fit_on, cards),
        **given,
    )  # fmt: skip


def run(
    ctx: typer.Context,
    bench: BenchOption = "demo",
    models: ModelsOption = "all",
    split: SplitOption = Split.test,
    audio_root: Annotated[
        list[Path] | None, typer.Option(help="where a manifest's local audio lives (repeatable)")
    ] = None,
    protocol_split: Annotated[
        str | None, typer.Option(help="v2 manifest split: " + " | ".join(PROTOCOL_SPLITS))
    ] = None,
    revision: Annotated[str | None, typer.Option(help="hub revision of a fetched bench")] = None,
    n_per_source: NPerSourceOption = None,
    limit: LimitOption = None,
    batch_size: BatchSizeOption = None,
    memory_budget: MemoryBudgetOption = 512,
    workers: WorkersOption = DEFAULT_WORKERS,
    device: DeviceOption = "cpu",
    threshold: ThresholdOption = 0.5,
    dcf_p_attack: DcfPAttackOption = 0.05,
    dcf_c_miss: DcfCMissOption = 1.0,
    dcf_c_fa: DcfCFaOption = 10.0,
    seed: SeedOption = 0,
    out_dir: RunsOption = Path("runs"),
    weights: WeightsOption = None,
    fit_on: FitOnOption = None,
    strict: Annotated[bool, typer.Option(help="an unavailable model is an error")] = False,
    transform: Annotated[
        list[str] | None,
        typer.Option(help="also score a transformed variant, e.g. resample:16000 (repeatable)"),
    ] = None,
    engine: EngineOption = Engine.local,
    address: AddressOption = None,
    num_cpus: NumCpusOption = 1.0,
    num_gpus: NumGpusOption = 0.0,
    recipe: Annotated[
        str | None,
        typer.Option(help="run this recipe (see `reproduce`); the options given here override it"),
    ] = None,
    threshold_from: ThresholdFromOption = None,
    calibrate_on: CalibrateOnOption = None,
) -> None:
    """Score a bench with detectors and write a run directory (the results contract)."""
    from artifactbench.analysis.detection_cost import CostModel
    from artifactbench.benches import BenchOptions

    if recipe is not None:
        _run_recipe(ctx, recipe, out_dir)
        return

    ray_options = _ray_options(engine, address, num_cpus, num_gpus, device)
    cards = parse_models(models)
    transfer = parse_transfer(threshold_from, calibrate_on)
    chains = [[], *(parse_chain(spec) for spec in transform or [])]
    bench_obj = parse_bench(bench, BenchOptions(tuple(audio_root or ()), protocol_split, revision))
    options = _options(
        cards, chains, split=split, batch_size=batch_size, memory_budget=memory_budget,
        device=device, weights=weights, fit_on=fit_on, n_per_source=n_per_source, limit=limit,
        workers=workers, threshold=threshold, seed=seed, out=out_dir, strict=strict,
        engine=engine.value, ray=ray_options, cost=CostModel(dcf_p_attack, dcf_c_miss, dcf_c_fa),
    )  # fmt: skip
    execute(bench_obj, cards, options, transfer=transfer)


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


def codec(
    bench: BenchOption = "demo",
    models: ModelsOption = "all",
    codecs: Annotated[
        str, typer.Option(help="comma-separated, of: " + ", ".join(CODECS))
    ] = ",".join(CODECS),
    split: SplitOption = Split.test,
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
    seed: SeedOption = 0,
    out_dir: RunsOption = Path("runs"),
    weights: WeightsOption = None,
    fit_on: FitOnOption = None,
    engine: EngineOption = Engine.local,
    address: AddressOption = None,
    num_cpus: NumCpusOption = 1.0,
    num_gpus: NumGpusOption = 0.0,
) -> None:
    """Score every track through each codec round trip (Table X, P(AI) spread, codec sanity)."""
    from artifactbench.audio.transforms import codec_chains

    ray_options = _ray_options(engine, address, num_cpus, num_gpus, device)
    prefix = parse_chain(transform) if transform else []
    try:
        chains = codec_chains(codecs.split(","), prefix)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    cards = parse_models(models)
    bench_obj = parse_bench(bench)
    options = _options(
        cards, chains, split=split, batch_size=batch_size, memory_budget=memory_budget,
        device=device, weights=weights, fit_on=fit_on, n_per_source=n_per_source, limit=limit,
        workers=workers, threshold=threshold, seed=seed, out=out_dir, engine=engine.value,
        ray=ray_options,
    )  # fmt: skip
    execute(bench_obj, cards, options)


def execute(
    bench_obj: Bench,
    cards: list[DetectorCard],
    options: RunOptions,
    transfer: dict[str, Any] | None = None,
) -> Path:
    """Run with progress, print the summary and variant tables and the run directory;
    `transfer` is a threshold / calibration record from another run (see parse_transfer)."""
    from artifactbench.runner import run as run_bench

    in_sample = [c.id for c in cards if c.fits_on_bench and c.id not in options.weights]
    if in_sample and options.split != Split.test.value and options.fit_on is None:
        say(
            f"warning: {', '.join(in_sample)} fit(s) on the train split: "
            "scores on its train tracks are in-sample"
        )
    with scoring_outcomes(), progress_to(err) as progress:
        result = run_bench(bench_obj, cards, options, progress, say=say, transfer=transfer)
    print_run(result.run_dir)
    show(f"run directory: {result.run_dir}")
    return result.run_dir


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
    from artifactbench.benches import BenchOptions
    from artifactbench.detectors.base import Unavailable
    from artifactbench.detectors.registry import UnknownModel, resolve_models
    from artifactbench.runner.files import score_files

    try:
        (card,) = resolve_models(model, allow_all=False)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc
    except ValueError as exc:
        raise UsageProblem("score takes exactly one --model") from exc
    weights_for([card], weights)
    fits = card.fits_on_bench and weights is None
    fit_bench = parse_bench(bench, BenchOptions(tuple(audio_root or ()))) if fits else None
    failures = 0
    try:
        for answer in score_files(
            card, files, weights=weights, fit_bench=fit_bench, threshold=threshold,
            workers=DEFAULT_WORKERS,
        ):  # fmt: skip
            failures += answer.error is not None
            if as_json:
                print(json.dumps(answer.record()), flush=True)
            elif answer.error is not None:
                print(f"{answer.path}\terror: {answer.error}", file=sys.stderr, flush=True)
            else:
                note = f"\t({answer.note})" if answer.note else ""
                print(f"{answer.path}\t{answer.prob:.4f}\t{answer.verdict}{note}", flush=True)
    except Unavailable as exc:
        raise UsageProblem(f"{exc}; fix: {exc.hint}") from exc
    if failures:
        raise typer.Exit(1)


def _run_recipe(ctx: typer.Context, name: str, out_dir: Path) -> None:
    """`run --recipe NAME`: the recipe, with only the options typed on the command line
    overriding its settings (a default of `run` is not a choice the user made)."""
    from artifactbench.cli.experiments import run_recipe_command

    given = {
        key: value.value if isinstance(value, StrEnum) else value
        for key, value in ctx.params.items()
        if key not in ("recipe", "out_dir")
        and getattr(ctx.get_parameter_source(key), "name", None) == "COMMANDLINE"
    }
    run_recipe_command(name, out_dir, given)
