"""The reference outputs of a recipe (the demo's leaderboard files in `reports/`): written
without what changes on every rerun, and compared with a fresh run, byte for byte on the same
bench or within stated tolerances on another."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

from artifactbench.recipes.compare import markdown_table, read_json, signed_cell, value_cell
from artifactbench.recipes.recipe import (
    COUNT_TOLERANCE,
    FAIL_TOLERANCE,
    OPERATING_POINT_TOLERANCE,
    RATE_TOLERANCE,
    REFERENCE_FILES,
    SUBSET_TOLERANCE_TRACKS,
    Recipe,
    RecipeError,
    RecipeResult,
    ReferenceComparison,
)


def _pinned_provenance(board: dict[str, Any], label: str) -> dict[str, Any]:
    """The board with the run's directory and finish time, which differ on every rerun,
    replaced by `label` and no time."""
    board = copy.deepcopy(board)
    for entry in board.get("ranking", []):
        entry["run"] = label
    for entry in board.get("provenance", []):
        entry["run_dir"] = label
        entry["finished_utc"] = None
    for entry in board.get("replaced", []):
        for key in ("kept", "replaced"):
            if key in entry:
                entry[key] = label
    return board


def write_reference_outputs(result: RecipeResult, target: Path) -> Path:
    """The run's outputs as a reference folder keeps them (REFERENCE_FILES): its metrics.json
    and its leaderboard with the provenance pinned to the recipe's name, so that a rerun on the
    same bench writes the same bytes. Returns `target`."""
    from artifactbench.reports.leaderboard import write_leaderboard

    if result.leaderboard_dir is None:
        raise RecipeError(f"recipe {result.recipe.name} writes no leaderboard to keep")
    board = json.loads((result.leaderboard_dir / "leaderboard.json").read_text())
    target.mkdir(parents=True, exist_ok=True)
    write_leaderboard(_pinned_provenance(board, f"recipe {result.recipe.name}"), target)
    shutil.copyfile(result.run_dirs[0] / "metrics.json", target / "metrics.json")
    return target


_RATE_KEYS = frozenset({"accuracy", "auc", "average_precision", "eer", "f1", "fpr", "precision",
                        "recall", "low", "high", "a", "b",
                        "difference", "rate"})  # fmt: skip
_OPERATING_POINT_KEYS = frozenset({"tpr_at_fpr05", "fpr_at_fpr05"})
_COUNT_KEYS = frozenset({"tp", "fp", "tn", "fn", "n_scored", "n_failed"})


def _keys_differ(a: Any, b: Any, path: str) -> list[str]:
    """Where two JSON trees differ in their keys (models, subsets, columns), recursively."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) ^ set(b)):
            out.append(f"{path}/{key}: only in the {'reference' if key in b else 'run'}")
        for key in sorted(set(a) & set(b)):
            out += _keys_differ(a[key], b[key], f"{path}/{key}")
        return out
    if isinstance(a, dict) != isinstance(b, dict):
        return [f"{path}: a mapping on one side only"]
    return []


def _metric_rows(file: str, model: str, run: Any, ref: Any, path: str, subset_n: int | None
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """Every metric leaf under `ref` with its tolerance: rates RATE_TOLERANCE (the TPR and FPR at
    the FPR <= 5% point OPERATING_POINT_TOLERANCE; a per-subset
    rate, SUBSET_TOLERANCE_TRACKS of its `subset_n` tracks), confusion counts COUNT_TOLERANCE,
    FAIL counts FAIL_TOLERANCE. Score thresholds, test statistics and curves are not metrics
    and are left out."""
    rows = []
    if isinstance(ref, dict):
        for key, value in ref.items():
            if isinstance(run, dict) and key in run:
                rows += _metric_rows(file, model, run[key], value, f"{path}/{key}", subset_n)
        return rows
    key = path.rsplit("/", 1)[-1]
    if isinstance(ref, bool) or not isinstance(ref, int | float):
        return rows
    if key == "rate" and subset_n:
        tolerance: float = SUBSET_TOLERANCE_TRACKS / subset_n
    elif key in _RATE_KEYS:
        tolerance = RATE_TOLERANCE
    elif key in _OPERATING_POINT_KEYS:
        tolerance = OPERATING_POINT_TOLERANCE
    elif key in _COUNT_KEYS:
        tolerance = COUNT_TOLERANCE
    elif key == "n_fail":
        tolerance = FAIL_TOLERANCE
    else:
        return rows
    measured = run if isinstance(run, int | float) and not isinstance(run, bool) else None
    difference = None if measured is None else measured - ref
    within = difference is not None and math.isfinite(difference)
    within = within and abs(difference) <= tolerance + 1e-9
    return [{"file": file, "model": model, "metric": path.lstrip("/"), "reference": ref,
             "measured": measured, "difference": difference, "tolerance": tolerance,
             "within": within}]  # fmt: skip


def compare_reference(produced: Path, reference: Path) -> ReferenceComparison:
    """A run's reference outputs (`write_reference_outputs`) against a kept reference folder.

    The demo bench's Opus tracks are encoded by libopus, whose bytes depend on the CPU, so the
    bench fingerprint (and a few tracks' scores) can differ between machines. With the same
    fingerprint every file must be byte-identical. With another, the structure must agree
    (the bench, split, threshold and track count; the models, subsets and every key of
    metrics.json and leaderboard.json) and every metric must lie within its tolerance: rates
    over the split and their intervals within RATE_TOLERANCE (0.05, about 3 of the 72 tracks
    of a class; the TPR and FPR at the FPR <= 5% point within OPERATING_POINT_TOLERANCE, 0.10),
    confusion counts within COUNT_TOLERANCE tracks, per-subset sanity rates within
    SUBSET_TOLERANCE_TRACKS tracks of the subset and FAIL counts within FAIL_TOLERANCE
    subsets."""
    identical = {}
    problems = []
    for name in REFERENCE_FILES:
        mine, kept = produced / name, reference / name
        if not kept.is_file() or not mine.is_file():
            problems.append(f"{name}: missing from the {'reference' if mine.is_file() else 'run'}")
            continue
        identical[name] = mine.read_bytes() == kept.read_bytes()
    run_board = read_json(produced / "leaderboard.json")
    ref_board = read_json(reference / "leaderboard.json")
    for key in ("bench", "split", "threshold", "n_tracks", "decode_protocol", "subset_order"):
        if run_board.get(key) != ref_board.get(key):
            problems.append(f"leaderboard.json {key}: {run_board.get(key)!r} in this run, "
                            f"{ref_board.get(key)!r} in the reference")  # fmt: skip
    rows = []
    for name in ("metrics.json", "leaderboard.json"):
        run_json, ref_json = read_json(produced / name), read_json(reference / name)
        skip = {"curves", "pairs"} if name == "leaderboard.json" else set()
        problems += [f"{name}{p}" for p in _keys_differ(
            {k: v for k, v in run_json.items() if k not in skip},
            {k: v for k, v in ref_json.items() if k not in skip}, "")]  # fmt: skip
    run_metrics = read_json(produced / "metrics.json").get("models") or {}
    for model, block in (read_json(reference / "metrics.json").get("models") or {}).items():
        for part in ("scored", "accounting"):
            rows += _metric_rows("metrics.json", model, (run_metrics.get(model) or {}).get(part),
                                 block.get(part), part, None)  # fmt: skip
    run_ranking = {e["model"]: e for e in run_board.get("ranking", [])}
    for entry in ref_board.get("ranking", []):
        model = entry["model"]
        rows += _metric_rows("leaderboard.json", model, run_ranking.get(model), entry,
                             "ranking", None)  # fmt: skip
        sizes = ref_board.get("subsets") or {}
        for subset, cell in (ref_board.get("heat") or {}).get(model, {}).items():
            mine = ((run_board.get("heat") or {}).get(model) or {}).get(subset)
            n = (sizes.get(subset) or {}).get("n_tracks")
            rows += _metric_rows("leaderboard.json", model, mine, {"rate": cell.get("rate")},
                                 f"heat/{subset}", n)  # fmt: skip
    return ReferenceComparison(
        run_board.get("fingerprint"), ref_board.get("fingerprint"), identical, problems, rows
    )


_HEADLINE = ("ranking/f1", "ranking/precision", "ranking/recall", "ranking/fpr", "ranking/auc",
             "ranking/n_fail")  # fmt: skip


def reference_headline(check: ReferenceComparison) -> list[dict[str, Any]]:
    """The rows a person reads first: each model's ranked metrics and FAIL count."""
    rows = [r for r in check.rows if r["file"] == "leaderboard.json" and r["metric"] in _HEADLINE]
    return sorted(rows, key=lambda r: (r["model"], _HEADLINE.index(r["metric"])))


def reference_markdown(recipe: Recipe, check: ReferenceComparison) -> str:
    """The reference comparison: whether the bench is the reference's, the verdict, and each
    model's headline metrics against the kept ones."""
    head = f"# Recipe {recipe.name}: {recipe.reproduces}, against reports/{recipe.reference}/"
    if check.same_fingerprint:
        same = [n for n, ok in check.identical.items() if ok]
        verdict = (f"Same bench fingerprint as the reference: {len(same)} of "
                   f"{len(REFERENCE_FILES)} files byte-identical.")  # fmt: skip
    else:
        verdict = (
            f"Bench fingerprint {str(check.fingerprint)[:12]} differs from the reference's "
            f"{str(check.reference_fingerprint)[:12]} (the demo's Opus bytes depend on the "
            f"CPU): {len(check.rows) - len(check.outside)} of {len(check.rows)} metrics within "
            "tolerance."
        )
    lines = [head, "", verdict + (" OK." if check.ok else " NOT OK."), ""]
    lines += [f"- {p}" for p in check.problems]
    lines += [f"- outside tolerance: {r['model']} {r['metric']} {value_cell(r['measured'])} vs "
              f"{value_cell(r['reference'])}" for r in check.outside]  # fmt: skip
    headers = ["model", "metric", "reference", "measured", "measured - reference", "tolerance"]
    body = [[r["model"], r["metric"].removeprefix("ranking/"), value_cell(r["reference"]),
             value_cell(r["measured"]), signed_cell(r["difference"]), value_cell(r["tolerance"])]
            for r in reference_headline(check)]  # fmt: skip
    return "\n".join([*lines, *([""] if check.problems or check.outside else []),
                      markdown_table(headers, body), ""])  # fmt: skip
