"""A run end to end: select tracks, load detectors, score with an engine, then write the run
directory (predictions.parquet, run.json and every report) under a `.partial` name, renamed
when complete."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from artifactbench import __version__
from artifactbench.analysis.transfer import for_models
from artifactbench.audio.decode import DECODE_PROTOCOL
from artifactbench.audio.transforms import describe_chain
from artifactbench.benches.base import Bench, Track
from artifactbench.detectors.base import DetectorCard, Identified, trained_on
from artifactbench.detectors.devices import check_device
from artifactbench.predictions import write_predictions
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.runner.local_engine import score_tracks
from artifactbench.runner.plan import (
    ENGINES,
    Interrupted,
    NothingToScore,
    RunOptions,
    Skipped,
    extra_columns,
    load_models,
    predictions_table,
    protocol,
    say_nothing,
    select_tracks,
    variant_name,
)
from artifactbench.runner.store import ScoreStore

# A run directory is written under this suffix and renamed when complete.
PARTIAL_SUFFIX = ".partial"


@dataclass
class RunResult:
    run_dir: Path
    models: list[str]
    skipped: list[Skipped]
    n_tracks: int
    detector_calls: int
    seconds: float


def _free_name(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first name neither a run nor a partial one has."""
    path, n = base, 1
    while path.exists() or path.with_name(path.name + PARTIAL_SUFFIX).exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@dataclass
class RunDir:
    """A run directory being written (`work`) and the name it takes once complete (`final`)."""

    work: Path
    final: Path


@contextmanager
def new_run_dir(out: Path, bench: str, split: str) -> Iterator[RunDir]:
    """A run directory that appears only complete: written as NAME.partial, renamed to NAME when
    the block ends, and removed if the block raises (an interrupted run leaves none)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in bench).strip("-")
    final = _free_name(out / f"{safe}-{split}-{stamp}")
    target = RunDir(final.with_name(final.name + PARTIAL_SUFFIX), final)
    target.work.mkdir(parents=True)
    try:
        yield target
    except BaseException:
        shutil.rmtree(target.work, ignore_errors=True)
        raise
    if final.exists():  # another run took the name meanwhile
        target.final = _free_name(final)
    target.work.rename(target.final)


def is_partial_run(path: Path) -> bool:
    """A run directory still being written, or left by a run killed before it finished."""
    return path.name.endswith(PARTIAL_SUFFIX)


def _engine_record(options: RunOptions) -> dict[str, Any]:
    if options.engine != "ray":
        return {"name": options.engine}
    ray = options.ray
    return {"name": "ray", "address": ray.address or "local", "num_cpus_per_actor": ray.num_cpus,
            "num_gpus_per_actor": ray.num_gpus}  # fmt: skip


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def harness_versions() -> dict[str, str]:
    """Python and the versions of the packages a score depends on, for a run's record."""
    names = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "av", "soxr", "torch",
             "onnxruntime")  # fmt: skip
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run(
    bench: Bench,
    cards: list[DetectorCard],
    options: RunOptions,
    progress: ProgressHook = no_progress,
    store_path: Path | None = None,
    say: Callable[[str], None] = say_nothing,
    transfer: dict[str, Any] | None = None,
) -> RunResult:
    """Run the benchmark and leave every file of the results contract in a new run directory.

    `say` gets the lines a person should read as they happen (the sample a --limit kept,
    skipped models, a store that answers everything). With no model left to score nothing is
    written (NothingToScore); SIGINT stops it as Interrupted, the store keeping every committed
    answer and no run directory left behind. `transfer` (a threshold and/or calibration record
    chosen on another run, see analysis.transfer) is checked against the loaded models before
    any scoring (TransferError) and kept in the predictions metadata, which the reports read."""
    if options.engine not in ENGINES:
        raise ValueError(f"unknown engine {options.engine!r}; choose from: {', '.join(ENGINES)}")
    check_device(options.device)
    started, wall_started = time.perf_counter(), time.time()
    selected, tracks = select_tracks(
        bench, options.split, options.n_per_source, options.limit, options.seed
    )
    if len(tracks) < len(selected):
        say(_sample_line(options.limit, selected, tracks))
    store_file = (store_path or options.out / "scores.sqlite").resolve()
    store: ScoreStore | None = None
    try:
        # The Ray engine's driver scores nothing: it learns each detector from its files.
        identify_only = options.engine == "ray"
        models, skipped = load_models(cards, bench, options, progress, identify_only)
        for skip in skipped:
            say(skip.line())
        if not models:
            names = ", ".join(s.model for s in skipped) or "none chosen"
            raise NothingToScore(f"no model left to score (skipped: {names}); nothing written")
        if transfer:
            transfer = for_models(transfer, [m.card.id for m in models])
        with ScoreStore(store_file) as store:
            if options.engine == "ray":
                from artifactbench.runner import ray_engine

                shas, resolve_failures, calls = ray_engine.score_tracks(
                    bench, tracks, models, store, options, progress, say
                )
            else:
                shas, resolve_failures, calls = score_tracks(
                    tracks, models, store, options, progress, say
                )
            rows = predictions_table(
                tracks, models, store, shas, resolve_failures, options.chains, options.seed
            )
        record = _run_record(bench, options, selected, tracks, models, skipped, store_file)
        record["detector_calls"] = calls
        record["answers_written"] = store.written
        record["timeline"] = {
            "started": _utc(wall_started),
            "first_answer": _utc(store.first_write),
            "last_answer": _utc(store.last_write),
        }
        with new_run_dir(options.out, bench.name, options.split) as target:
            _write_run(
                target.work, bench, options, tracks, models, rows, record, started,
                transfer=transfer,
            )  # fmt: skip
    except KeyboardInterrupt:
        raise Interrupted(store.written if store else 0, store_file) from None
    return RunResult(
        target.final, [m.card.id for m in models], skipped, len(tracks), calls,
        time.perf_counter() - started,
    )  # fmt: skip


def _utc(unix: float | None) -> str | None:
    """An instant of the run's timeline, to the millisecond (None: it did not happen)."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")


def _sample_line(limit: int | None, selected: list[Track], tracks: list[Track]) -> str:
    """Which sample a --limit kept, subsets named, so a missing subset is seen before scoring."""
    present = sorted({t.subset for t in tracks})
    every = {t.subset for t in selected}
    return (
        f"warning: --limit {limit}: scoring {len(tracks)} of {len(selected)} tracks, "
        f"{len(present)} of {len(every)} subsets present (a stratified seeded sample; recorded "
        f"in run.json): {', '.join(present)}"
    )


def _write_run(
    run_dir: Path,
    bench: Bench,
    options: RunOptions,
    tracks: list[Track],
    models: list[Identified],
    rows: list[dict[str, Any]],
    record: dict[str, Any],
    started: float,
    *,
    transfer: dict[str, Any] | None = None,
) -> None:
    """predictions.parquet, run.json and every report, into a run directory being written."""
    from artifactbench.reports import write_reports

    subsets = sorted({t.subset for t in tracks})
    meta = {
        "threshold": options.threshold,
        "seed": options.seed,
        "cost_model": options.cost.to_json(),
        "bench": bench.name,
        "bench_fingerprint": bench.fingerprint,
        "split": options.split,
        "decode_protocol": DECODE_PROTOCOL,
        "variants": [variant_name(chain) for chain in options.chains],
        "variant_protocols": {
            variant_name(chain): protocol(chain, options.seed) for chain in options.chains
        },
        "subsets": {s: bench.subsets[s].rule for s in subsets},
        "models": {
            m.card.id: {
                "params": m.card.params,
                "paper_name": m.card.paper_name,
                "weights_sha256": m.weights_sha256,
                "protocol_hash": m.card.protocol_hash(DECODE_PROTOCOL),
                "trained_on": trained_on(m),
            }
            for m in models
        },
        "written_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if transfer:
        meta["transfer"] = transfer
    write_predictions(rows, meta, run_dir / "predictions.parquet", extra_columns(tracks))
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_reports(run_dir / "predictions.parquet", run_dir, seed=options.seed)


def _run_record(
    bench: Bench,
    options: RunOptions,
    selected: list[Track],
    tracks: list[Track],
    models: list[Identified],
    skipped: list[Skipped],
    store_file: Path,
) -> dict[str, Any]:
    """run.json: how the run was made (harness, bench, options, detectors, packages)."""
    return {
        "harness": {"version": __version__, "git_revision": _git_revision()},
        "bench": {"name": bench.name, "fingerprint": bench.fingerprint, "source": bench.source},
        "split": options.split,
        "seed": options.seed,
        "threshold": options.threshold,
        "device": options.device,
        "batch_size": options.batch_size,
        "memory_budget": options.memory_budget,
        "workers": options.workers,
        "engine": _engine_record(options),
        "cohort": {"n_per_source": options.n_per_source, "seed": options.seed},
        "limit": {
            "requested": options.limit,
            "original": len(selected),
            "effective": len(tracks),
            "subsets": sorted({t.subset for t in tracks}),
        },  # fmt: skip
        "fit_on": _fit_record(options.fit_on),
        "decode_protocol": DECODE_PROTOCOL,
        "variants": [
            {
                "name": variant_name(chain),
                "protocol": protocol(chain, options.seed),
                "transforms": describe_chain(chain),
            }
            for chain in options.chains
        ],  # fmt: skip
        "detectors": {
            m.card.id: {
                "card": m.card.to_json(),
                "weights_sha256": m.weights_sha256,
                "protocol_hash": m.card.protocol_hash(DECODE_PROTOCOL),
                "variant_protocol_hashes": {
                    variant_name(chain): m.card.protocol_hash(protocol(chain, options.seed))
                    for chain in options.chains
                },
                "provenance": m.provenance,
            }
            for m in models
        },
        "skipped": {s.model: {"reason": s.reason, "fix": s.hint} for s in skipped},
        "store": str(store_file),
        "packages": harness_versions(),
    }


def _fit_record(fit_on: Bench | None) -> dict[str, str] | None:
    if fit_on is None:
        return None
    return {"name": fit_on.name, "fingerprint": fit_on.fingerprint, "split": "train"}
