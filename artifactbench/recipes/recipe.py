"""What a recipe is: the YAML read and checked against the registries (bench sources, detector
cards, flows and their options, the published tables), overrides, and the assets it needs here."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from artifactbench.assets import data_folder, fetch_command
from artifactbench.audio.transforms import CODECS
from artifactbench.benches.base import SPLITS

Say = Callable[[str], None]

FLOWS: tuple[str, ...] = ("run", "codec", "ablate", "bandwidth")
# The codecs of `artifactbench codec` when a codec recipe names none.
DEFAULT_CODECS: tuple[str, ...] = tuple(CODECS)

# Each flow's options and their defaults (those of the matching command). `workers: None` is
# the commands' default, every core but one; `batch_size: None` is 4 on a CPU, 16 on CUDA.
_SCORING: dict[str, Any] = {
    "threshold": 0.5,
    "seed": 0,
    "n_per_source": None,
    "limit": None,
    "batch_size": None,
    "memory_budget": 512,  # MiB, as --memory-budget
    "workers": None,
    "device": "cpu",
    "weights": {},  # model id -> weights path, as --weights for that model
    "fit_on": None,
    "leaderboard": False,
}
FLOW_OPTIONS: dict[str, dict[str, Any]] = {
    "run": _SCORING,
    "codec": {**_SCORING, "codecs": list(DEFAULT_CODECS)},
    "ablate": {"ablation": "all", "weights": None, "unbounded_weights": None, "workers": None},
    "bandwidth": {
        "residual": "hpss",
        "weights": None,
        "n_per_source": None,
        "limit": None,
        "max_seconds": 60.0,
        "workers": None,
        "device": "cpu",
        "seed": 0,
    },
}
# Flows that score detectors name them; the others run one model of their own.
MODEL_FLOWS = frozenset({"run", "codec"})
_REQUIRED = ("reproduces", "title", "flow", "bench", "split", "assets", "compare_with")
_KEYS = frozenset({*_REQUIRED, "models", "options", "reference"})
# A bench spec whose argument is this placeholder is given by whoever runs the recipe.
PLACEHOLDER = "PATH"

# The outputs of a recipe that a reference folder keeps, and how far a run on another
# machine may stray from them (see `compare_reference`).
REFERENCE_FILES: tuple[str, ...] = (
    "leaderboard.md",
    "leaderboard.json",
    "leaderboard.html",
    "metrics.json",
)
RATE_TOLERANCE = 0.05
# The TPR at the FPR <= 5% point follows the few highest real scores (3 of 72 real tracks may
# score above it): one of them moving shifts the threshold, so it strays further between CPUs
# than the other rates (fakeprint's moved by 0.056 between the two demo fingerprints).
OPERATING_POINT_TOLERANCE = 0.10
COUNT_TOLERANCE = 4
SUBSET_TOLERANCE_TRACKS = 3
FAIL_TOLERANCE = 2


class RecipeError(ValueError):
    """An unknown recipe, a recipe that does not validate, or an override it does not take;
    the message lists the valid choices."""


class MissingAssets(RecipeError):
    """What a recipe needs is not here; `commands` make each missing asset available."""

    def __init__(self, recipe: str, commands: list[str]) -> None:
        super().__init__(
            f"recipe {recipe!r} needs {len(commands)} asset(s) that are not here; make them "
            f"available with: {'; '.join(commands)}"
        )
        self.recipe = recipe
        self.commands = commands


@dataclass(frozen=True)
class Recipe:
    """One reproducible experiment, as its YAML file says (options completed by the flow's
    defaults)."""

    name: str
    reproduces: str
    title: str
    flow: str
    bench: str
    split: str
    models: tuple[str, ...]
    options: dict[str, Any]
    assets: tuple[str, ...]
    compare_with: tuple[str, ...]
    reference: str | None = None
    path: Path | None = None


@dataclass
class ReferenceComparison:
    """A run's reference outputs against the kept ones: byte equality per file, whether the
    bench fingerprints agree, structural differences, and every metric with its tolerance."""

    fingerprint: str | None
    reference_fingerprint: str | None
    identical: dict[str, bool]
    problems: list[str]
    rows: list[dict[str, Any]]

    @property
    def same_fingerprint(self) -> bool:
        return self.fingerprint is not None and self.fingerprint == self.reference_fingerprint

    @property
    def outside(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["within"]]

    @property
    def ok(self) -> bool:
        """Same bench: every file byte-identical. Another bench fingerprint (the demo's Opus
        bytes depend on the CPU): same structure and every metric within its tolerance."""
        if self.same_fingerprint:
            return all(self.identical.values()) and len(self.identical) == len(REFERENCE_FILES)
        return not self.problems and not self.outside


@dataclass
class RecipeResult:
    """What a recipe run left: its run directories, the leaderboard when it makes one, and the
    comparison rows (published or reference figure, measured, difference) with their table."""

    recipe: Recipe
    run_dirs: list[Path]
    comparison: list[dict[str, Any]]
    markdown: str
    leaderboard_dir: Path | None = None
    reference_outputs: Path | None = None
    reference: ReferenceComparison | None = None


# --- Loading and validating ------------------------------------------------------------------


def _parse(path: Path) -> Recipe:
    """A recipe from its YAML, its options completed by the flow's defaults; structure only
    (the registries are checked by `validate`)."""
    name = path.stem
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {name}: {path} is not a mapping")
    missing = [k for k in _REQUIRED if k not in data]
    unknown = sorted(set(data) - _KEYS)
    if missing or unknown:
        raise RecipeError(f"recipe {name}: missing keys {missing}, unknown keys {unknown}")
    flow = data["flow"]
    if flow not in FLOWS:
        raise RecipeError(f"recipe {name}: unknown flow {flow!r}; choose from: {', '.join(FLOWS)}")
    options = data.get("options") or {}
    _check_option_keys(name, flow, options)
    return Recipe(
        name=name,
        reproduces=str(data["reproduces"]),
        title=" ".join(str(data["title"]).split()),
        flow=flow,
        bench=str(data["bench"]),
        split=str(data["split"]),
        models=tuple(data.get("models") or ()),
        options={**copy.deepcopy(FLOW_OPTIONS[flow]), **options},
        assets=tuple(data["assets"] or ()),
        compare_with=tuple(str(t) for t in data["compare_with"] or ()),
        reference=data.get("reference"),
        path=path,
    )


def _check_option_keys(name: str, flow: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(FLOW_OPTIONS[flow]))
    if unknown:
        raise RecipeError(
            f"recipe {name}: flow {flow!r} takes no option {', '.join(unknown)}; choose from: "
            f"{', '.join(FLOW_OPTIONS[flow])}"
        )


def _load_all() -> dict[str, Recipe]:
    return {path.stem: _parse(path) for path in sorted(data_folder("runners").glob("*.yaml"))}


# Every recipe of the packaged `runners/` folder by name.
RECIPES: dict[str, Recipe] = _load_all()


def load_recipe(name: str) -> Recipe:
    """The recipe called `name`, validated against the registries; an unknown name is a
    RecipeError listing the valid ones."""
    if name not in RECIPES:
        raise RecipeError(f"unknown recipe {name!r}; choose from: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    validate(recipe)
    return recipe


def _bench_source(spec: str) -> tuple[str, Any] | None:
    """(the BENCH_SOURCES key, its entry) that a bench spec names, or None."""
    from artifactbench.benches import BENCH_SOURCES

    name, _, arg = spec.partition(":")
    for key, source in BENCH_SOURCES.items():
        base, _, placeholder = key.partition(":")
        if base == name and bool(placeholder) == bool(arg):
            return key, source
    return None


def published_tables() -> set[str]:
    """The tables with a figure in `reports/published.csv`."""
    from artifactbench.reports.paper_published import load_published

    return {row.table for row in load_published()}


def validate(recipe: Recipe) -> None:
    """Check a recipe against the registries: its bench source, split, models (detector
    cards), flow options (codecs, ablation, residual model), the published tables it is
    compared with and its reference folder. One RecipeError lists every problem."""
    from artifactbench.detectors.registry import cards

    problems = []
    if _bench_source(recipe.bench) is None:
        from artifactbench.benches import BENCH_CHOICES

        problems.append(f"bench {recipe.bench!r} is none of: {', '.join(BENCH_CHOICES)}")
    if recipe.split not in SPLITS:
        problems.append(f"split {recipe.split!r} is none of: {', '.join(SPLITS)}")
    known = cards()
    if recipe.flow in MODEL_FLOWS:
        if not recipe.models:
            problems.append(f"flow {recipe.flow!r} needs models")
        problems += [f"unknown model {m!r}" for m in recipe.models if m not in known]
        problems += [f"weights for a model not run: {m!r}" for m in recipe.options["weights"]
                     if m not in recipe.models]  # fmt: skip
    elif recipe.models:
        problems.append(f"flow {recipe.flow!r} takes no models (its options name its model)")
    problems += _option_problems(recipe)
    tables = published_tables()
    problems += [f"no published figure of table {t!r}" for t in recipe.compare_with
                 if t not in tables]  # fmt: skip
    if recipe.reference is not None:
        folder = data_folder("reports") / recipe.reference
        if recipe.flow not in MODEL_FLOWS or not recipe.options.get("leaderboard"):
            problems.append("a reference needs the run flow with leaderboard: true")
        elif not folder.is_dir():
            problems.append(f"no reference folder {folder}")
    if problems:
        raise RecipeError(f"recipe {recipe.name}: " + "; ".join(problems))


def _option_problems(recipe: Recipe) -> list[str]:
    options = recipe.options
    if recipe.flow == "codec":
        from artifactbench.audio.transforms import CODECS

        bad = [c for c in options["codecs"] if c not in CODECS]
        if bad or not options["codecs"]:
            return [f"codecs {bad or '[]'}: choose from {', '.join(CODECS)}"]
    if recipe.flow == "ablate":
        from artifactbench.experiments.artifactnet_open.flows import ablation_choices

        if options["ablation"] not in ablation_choices():
            return [f"ablation {options['ablation']!r}: choose from "
                    f"{', '.join(ablation_choices())}"]  # fmt: skip
    if recipe.flow == "bandwidth":
        from artifactbench.experiments.bandwidth.measure import RESIDUAL_MODELS

        if options["residual"] not in RESIDUAL_MODELS:
            return [f"residual {options['residual']!r}: choose from {', '.join(RESIDUAL_MODELS)}"]
    return []


def with_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """The recipe with some settings replaced: `bench`, `split`, `models` (for the flows that
    score detectors: "all", "a,b" or a list) or any of its flow's options. An override of None
    keeps the recipe's value (an option the caller was not given). Validated."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return recipe
    top = {"bench", "split", *(["models"] if recipe.flow in MODEL_FLOWS else [])}
    unknown = sorted(set(overrides) - top - set(FLOW_OPTIONS[recipe.flow]))
    if unknown:
        choices = ", ".join([*sorted(top), *FLOW_OPTIONS[recipe.flow]])
        raise RecipeError(
            f"recipe {recipe.name} takes no setting {', '.join(unknown)}; choose from: {choices}"
        )
    changes: dict[str, Any] = {k: str(v) for k, v in overrides.items() if k in ("bench", "split")}
    if "models" in overrides:
        from artifactbench.detectors.registry import UnknownModel, resolve_models

        spec = overrides["models"]
        spec = spec if isinstance(spec, str) else ",".join(spec)
        try:
            changes["models"] = tuple(card.id for card in resolve_models(spec))
        except UnknownModel as exc:
            raise RecipeError(str(exc)) from exc
    options = {k: v for k, v in overrides.items() if k in FLOW_OPTIONS[recipe.flow]}
    changed = replace(recipe, **changes, options={**recipe.options, **options})
    validate(changed)
    return changed


# --- Assets ----------------------------------------------------------------------------------


def fetch_commands(recipe: Recipe) -> list[str]:
    """The `artifactbench fetch ...` commands that provide everything the recipe downloads,
    whether or not it is here already: its bench's, then each model's with published
    weights."""
    from artifactbench.detectors.registry import cards, fetch_refusal

    commands = []
    found = _bench_source(recipe.bench)
    if found is not None and found[1].fetch is not None:
        commands.append(f"artifactbench fetch bench {recipe.bench.partition(':')[0]}")
    known = cards()
    for model in recipe.models:
        if model in known and fetch_refusal(known[model]) is None:
            commands.append(fetch_command(known[model]))
    return commands


def missing_assets(recipe: Recipe) -> list[str]:
    """What the recipe needs that is not here, each as the command (or, where nothing fetches
    it, the one step) that makes it available; [] when it can run. Reads local state only:
    the benches' status, the detectors' availability, the Demucs folder."""
    from artifactbench.detectors.registry import availability, cards

    needed = []
    found = _bench_source(recipe.bench)
    if found is not None:
        key, source = found
        arg = recipe.bench.partition(":")[2]
        if arg == PLACEHOLDER:
            needed.append(f"give the bench's location: bench={key} ({source.needs})")
        elif arg and not Path(arg).expanduser().exists():
            needed.append(f"bench {recipe.bench}: {arg} does not exist ({source.needs})")
        elif source.fetch is not None and not source.status().startswith("ready"):
            needed.append(f"artifactbench fetch bench {key}")
    known = cards()
    for model in recipe.models:
        if model in recipe.options.get("weights", {}):
            continue
        if not availability(known[model]).startswith("available"):
            needed.append(fetch_command(known[model]))
    if recipe.flow == "bandwidth" and recipe.options["residual"] == "demucs":
        from artifactbench.audio.separation import demucs_available

        weights = recipe.options["weights"]
        reason = demucs_available(Path(weights) if weights else None)
        if reason is not None:
            needed.append(f"Demucs: {reason}")
    return needed


# --- Running ---------------------------------------------------------------------------------


def quiet(_line: str) -> None:
    pass
