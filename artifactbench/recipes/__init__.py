"""Run recipes: one YAML per reproducible experiment (a paper table, the demo), kept in the
top-level `runners/` folder and installed as `artifactbench.data.runners`.

A recipe says what it reproduces, the flow that runs it (`run`, `codec`, `ablate`,
`bandwidth`), the bench, split, models and options, the assets it needs and which published
figures it is compared with. `run_recipe` refuses before any work when an asset is missing here
(the error lists the commands that make each available), runs the flow through the same library
functions as the commands, and ends with the comparison: published figure, this run's value and
their difference, or for the demo (which the paper does not report) the reference outputs kept
in `reports/demo/`.

An orchestrator: it sits above the runner, the experiments and the reports, and no module of
the package imports it.
"""

from artifactbench.recipes.compare import paper_comparison
from artifactbench.recipes.recipe import (
    FLOW_OPTIONS,
    FLOWS,
    RECIPES,
    REFERENCE_FILES,
    MissingAssets,
    Recipe,
    RecipeError,
    RecipeResult,
    ReferenceComparison,
    fetch_commands,
    load_recipe,
    missing_assets,
    published_tables,
    validate,
    with_overrides,
)
from artifactbench.recipes.reference import compare_reference, write_reference_outputs
from artifactbench.recipes.run import regenerate_reference, run_recipe

__all__ = [
    "FLOWS",
    "FLOW_OPTIONS",
    "RECIPES",
    "REFERENCE_FILES",
    "MissingAssets",
    "Recipe",
    "RecipeError",
    "RecipeResult",
    "ReferenceComparison",
    "compare_reference",
    "fetch_commands",
    "load_recipe",
    "missing_assets",
    "paper_comparison",
    "published_tables",
    "regenerate_reference",
    "run_recipe",
    "validate",
    "with_overrides",
    "write_reference_outputs",
]
