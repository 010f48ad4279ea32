"""Bench x detectors -> score store -> run directory.

The runner owns the order of work: load each detector once, skip every (detector, audio) pair the
store already answers, decode the rest once and score it with an engine (`local_engine`: worker
processes and this process; `ray_engine`: a Ray cluster), commit each batch, then export
`predictions.parquet` and hand over to the reports. `plan` holds what both engines share and
depends on neither; `run` ties it together.
"""

from artifactbench.runner.plan import (
    ENGINES,
    EngineFailure,
    Interrupted,
    NothingToScore,
    RayOptions,
    RunOptions,
    Skipped,
    fit_plan,
    limit_tracks,
    load_models,
    plan_scoring,
    score_batch,
    score_key,
    score_row,
    select_tracks,
    variant_failure,
)
from artifactbench.runner.run import (
    RunResult,
    harness_versions,
    is_partial_run,
    new_run_dir,
    run,
)

__all__ = [
    "ENGINES",
    "EngineFailure",
    "Interrupted",
    "NothingToScore",
    "RayOptions",
    "RunOptions",
    "RunResult",
    "Skipped",
    "fit_plan",
    "harness_versions",
    "is_partial_run",
    "limit_tracks",
    "load_models",
    "new_run_dir",
    "plan_scoring",
    "run",
    "score_batch",
    "score_key",
    "score_row",
    "select_tracks",
    "variant_failure",
]
