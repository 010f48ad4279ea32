"""Run a recipe: refuse before any work when an asset is missing, run its flow through the same
library functions as the commands, and end with its comparison."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artifactbench.assets import data_folder
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.recipes.compare import comparison_markdown, paper_comparison
from artifactbench.recipes.recipe import (
    RECIPES,
    REFERENCE_FILES,
    MissingAssets,
    Recipe,
    RecipeError,
    RecipeResult,
    Say,
    load_recipe,
    missing_assets,
    quiet,
    with_overrides,
)
from artifactbench.recipes.reference import (
    compare_reference,
    reference_headline,
    reference_markdown,
    write_reference_outputs,
)
from artifactbench.util import default_workers


def run_recipe(
    name: str,
    out: Path,
    progress: ProgressHook = no_progress,
    say: Say = quiet,
    **overrides: Any,
) -> RecipeResult:
    """Run a recipe into `out` (where its run directories go) and compare it with the
    published figures, or with its reference outputs.

    `overrides` replace the recipe's settings (see `with_overrides`). Raises RecipeError for a
    wrong name or setting and MissingAssets, listing the commands, before any work when an
    asset is missing here; otherwise what the flow raises (the runner's Unavailable,
    NothingToScore, Interrupted; ValueError from the side flows)."""
    recipe = with_overrides(load_recipe(name), overrides)
    missing = missing_assets(recipe)
    if missing:
        raise MissingAssets(recipe.name, missing)
    out = Path(out)
    run_dirs = _FLOWS[recipe.flow](recipe, out, progress, say)
    result = RecipeResult(recipe, run_dirs, [], "")
    if recipe.options.get("leaderboard"):
        from artifactbench.reports.leaderboard import build_leaderboard, write_leaderboard

        board = build_leaderboard(run_dirs, seed=recipe.options["seed"])
        result.leaderboard_dir = out / f"leaderboard-{recipe.name}"
        write_leaderboard(board, result.leaderboard_dir)
    if recipe.reference is not None:
        target = out / f"reference-{recipe.name}"
        result.reference_outputs = write_reference_outputs(result, target)
        result.reference = compare_reference(
            result.reference_outputs, data_folder("reports") / recipe.reference
        )
        result.comparison = reference_headline(result.reference)
        result.markdown = reference_markdown(recipe, result.reference)
    else:
        result.comparison = paper_comparison(recipe, run_dirs)
        result.markdown = comparison_markdown(recipe, result.comparison)
    return result


def _workers(value: int | None) -> int:
    return default_workers() if value is None else int(value)


def _scoring_flow(recipe: Recipe, out: Path, progress: ProgressHook, say: Say) -> list[Path]:
    """`run` and `codec`: the runner once, with the recipe's models and options; a codec
    recipe scores every track through each codec round trip as a variant."""
    from artifactbench.audio.transforms import codec_chains
    from artifactbench.benches import open_bench
    from artifactbench.detectors.devices import default_batch_size
    from artifactbench.detectors.registry import resolve_models
    from artifactbench.runner import RunOptions, run

    o = recipe.options
    chains = [[]]
    if recipe.flow == "codec":
        chains = codec_chains(o["codecs"])
    bench = open_bench(recipe.bench, progress=progress)
    cards = resolve_models(",".join(recipe.models))
    batch = o["batch_size"] or default_batch_size(str(o["device"]))
    options = RunOptions(
        split=recipe.split, n_per_source=o["n_per_source"], limit=o["limit"], batch_size=batch,
        memory_budget=int(o["memory_budget"] * 2**20), workers=_workers(o["workers"]),
        device=o["device"], threshold=o["threshold"], seed=o["seed"], out=out, strict=True,
        weights={model: Path(path) for model, path in o["weights"].items()}, chains=chains,
        fit_on=open_bench(o["fit_on"], progress=progress) if o["fit_on"] else None,
    )  # fmt: skip
    return [run(bench, cards, options, progress, say=say).run_dir]


def _ablate_flow(recipe: Recipe, out: Path, progress: ProgressHook, say: Say) -> list[Path]:
    """`ablate`: Appendix B's channel ablations (or the bounded-mask comparison) of the open
    ArtifactNet, as `artifactbench ablate` runs them."""
    from artifactbench.benches import open_bench
    from artifactbench.experiments.artifactnet_open.flows import run_ablation

    o = recipe.options
    bench = open_bench(recipe.bench, progress=progress)
    _, run_dir = run_ablation(
        o["ablation"], bench, recipe.split, out, workers=_workers(o["workers"]),
        weights=Path(o["weights"]) if o["weights"] else None,
        unbounded_weights=Path(o["unbounded_weights"]) if o["unbounded_weights"] else None,
        progress=progress, say=say,
    )  # fmt: skip
    return [run_dir]


def _bandwidth_flow(recipe: Recipe, out: Path, progress: ProgressHook, say: Say) -> list[Path]:
    """`bandwidth`: Table XI, the effective bandwidth of each track's residual."""
    from artifactbench.benches import open_bench
    from artifactbench.experiments.bandwidth.run import measure_bandwidth

    o = recipe.options
    bench = open_bench(recipe.bench, progress=progress)
    run_dir = measure_bandwidth(
        bench, recipe.split, o["residual"], Path(o["weights"]) if o["weights"] else None,
        workers=_workers(o["workers"]), n_per_source=o["n_per_source"], limit=o["limit"],
        seed=o["seed"], out=out, max_seconds=o["max_seconds"], progress=progress,
        device=o["device"],
    )  # fmt: skip
    return [run_dir]


_FLOWS: dict[str, Callable[[Recipe, Path, ProgressHook, Say], list[Path]]] = {
    "run": _scoring_flow,
    "codec": _scoring_flow,
    "ablate": _ablate_flow,
    "bandwidth": _bandwidth_flow,
}


# --- Comparison with the paper ---------------------------------------------------------------


def regenerate_reference(name: str, target: Path, progress: ProgressHook = no_progress,
                         say: Say = quiet) -> RecipeResult:  # fmt: skip
    """Run recipe `name` in a temporary directory and copy its reference outputs into
    `target` (a checkout's `reports/<reference>/`). The result's comparison is against the
    outputs `target` held before; its run directories are gone with the temporary one."""
    if name in RECIPES and RECIPES[name].reference is None:
        raise RecipeError(f"recipe {name} has no reference outputs")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"recipe-{name}-") as tmp:
        result = run_recipe(name, Path(tmp), progress, say)
        for file in REFERENCE_FILES:
            shutil.copyfile(Path(tmp) / f"reference-{name}" / file, target / file)
    return result
