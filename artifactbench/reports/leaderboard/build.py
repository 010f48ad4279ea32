"""One leaderboard from several run directories of the same bench.

Each run contributes the rows of its primary variant from ``predictions.parquet``; the runs must
agree on everything that decides what a number means (bench and its fingerprint, split, decode
protocol, primary variant protocol, threshold and the set of tracks), else
:class:`IncompatibleRuns` names the field that differs. A model found in several runs is taken
from the latest one (``written_utc``, then the order given) when its weights and protocol hash
agree, and refused otherwise. All of it comes from ``predictions.parquet`` and its metadata
(the contract of :mod:`artifactbench.predictions`); run.json is never read.

Every figure is computed from the merged predictions frame alone (one row per model x track)
with the functions a single run's reports use, so a model's F1, AUC and intervals equal those
of its own run's ``metrics.json`` (``scored`` block) and ``statistics.json`` (``intervals``) when
the seed and resamples match.

:mod:`.markdown` and :mod:`.html` render the board, :mod:`.write` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.detection_cost import CostModel
from artifactbench.analysis.metrics import (
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    as_positive,
    compute_metrics,
    f1_curve,
    roc_points,
)
from artifactbench.analysis.sanity import evaluate_sanity
from artifactbench.predictions import KEY, PredictionsError, missing_meta, read_predictions
from artifactbench.reports import DEFAULT_THRESHOLD, primary_rows
from artifactbench.reports.data import canonical
from artifactbench.reports.leakage import (
    AuditFindings,
    audits_note,
    check_audits,
    training_marks,
)
from artifactbench.reports.paper_published import RUNNER, comparison_rows, paper_bench
from artifactbench.reports.statistics import model_intervals, paired_comparisons

ALPHA = 0.05
RANKED_METRICS: tuple[str, ...] = ("f1", "auc", "precision", "recall", "fpr")
# ASVspoof 5's detection cost and calibration, shown beside the ranked metrics (not ranked by).
COST_METRICS: tuple[str, ...] = ("min_dcf", "act_dcf", "cllr", "min_cllr")
# F1 is tabulated at 0.00, 0.01, ..., 1.00; i / 100 is the double nearest each two-decimal value,
# so a run threshold such as 0.5 falls exactly on the grid.
F1_GRID: tuple[float, ...] = tuple(i / 100 for i in range(101))
_PUBLISHED_METRICS: tuple[str, ...] = ("f1", "auc")


class IncompatibleRuns(ValueError):
    """Runs that cannot share one leaderboard; ``field`` names what differs."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class RunInfo:
    """One run directory: its primary-variant predictions and their metadata."""

    run_dir: Path
    preds: pd.DataFrame
    meta: dict[str, Any]
    variant: str | None
    models: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.run_dir)

    @property
    def finished(self) -> str:
        return str(self.meta["written_utc"])

    def primary_protocol(self) -> str | None:
        variants = self.meta["variants"]
        return self.meta["variant_protocols"].get(variants[0]) if variants else None

    def track_keys(self) -> set[tuple[str, str]]:
        keys = self.preds[KEY].astype(str).drop_duplicates()
        return set(map(tuple, keys.to_numpy().tolist()))

    def model(self, model: str) -> dict[str, Any]:
        """The model's facts in the metadata: params, paper name, weights sha256, protocol."""
        return self.meta["models"].get(model) or {}


def load_run(run_dir: str | Path) -> RunInfo:
    """The primary variant's rows of one run directory's predictions.parquet, and its
    metadata, which must be the contract's whole."""
    run_dir = Path(run_dir)
    preds_path = run_dir / "predictions.parquet"
    if not preds_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {preds_path.name} (not a run directory?)")
    every, meta = read_predictions(preds_path)
    missing = missing_meta(meta)
    if missing:
        raise PredictionsError(
            f"{preds_path}: written without the metadata a leaderboard needs "
            f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); rerun the same "
            "command: it writes a new run directory from the store, calling no model"
        )
    preds, order = primary_rows(every, meta)
    preds = preds.reset_index(drop=True)
    models = sorted(preds["model"].astype(str).unique())
    return RunInfo(run_dir, preds, meta, order[0] if order else None, models)


# --- compatibility ---------------------------------------------------------------------------


def _fields(run: RunInfo) -> list[tuple[str, Any]]:
    threshold = run.meta.get("threshold", DEFAULT_THRESHOLD)
    return [
        ("bench name", run.meta["bench"]),
        ("bench fingerprint", run.meta["bench_fingerprint"]),
        ("split", run.meta["split"]),
        ("decode protocol", run.meta["decode_protocol"]),
        ("primary variant protocol", run.primary_protocol()),
        ("threshold", float(threshold)),
    ]


def _tracks_differ(first: RunInfo, other: RunInfo) -> None:
    a, b = first.track_keys(), other.track_keys()
    if a == b:
        return
    only_a, only_b = len(a - b), len(b - a)
    raise IncompatibleRuns(
        f"incompatible runs: tracks differ: {only_a + only_b} track(s) in one run only "
        f"({only_a} of {len(a)} in {first.label}, {only_b} of {len(b)} in {other.label})",
        "tracks",
    )


def compatibility(runs: list[RunInfo]) -> None:
    """Raise :class:`IncompatibleRuns` (one line: field, both values, both runs) unless every
    run has the first run's bench, fingerprint, split, decode protocol, primary variant protocol,
    threshold and tracks, and every model shared by runs has the same weights and protocol."""
    if not runs:
        raise ValueError("no run to build a leaderboard from")
    first = runs[0]
    reference = _fields(first)
    for other in runs[1:]:
        for (name, a), (_, b) in zip(reference, _fields(other), strict=True):
            if a != b:
                raise IncompatibleRuns(
                    f"incompatible runs: {name} differs: {a!r} ({first.label}) vs {b!r} "
                    f"({other.label})",
                    name,
                )
        _tracks_differ(first, other)
    seen: dict[str, RunInfo] = {}
    for run in runs:
        for model in run.models:
            if model not in seen:
                seen[model] = run
                continue
            before = seen[model]
            for key, name in (("weights_sha256", "weights"), ("protocol_hash", "protocol hash")):
                a, b = before.model(model).get(key), run.model(model).get(key)
                if a != b:
                    raise IncompatibleRuns(
                        f"incompatible runs: model {model!r} has different {name}: {a!r} "
                        f"({before.label}) vs {b!r} ({run.label})",
                        f"model {model} {name}",
                    )


def _choose(runs: list[RunInfo]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """model -> index of the run it is taken from (latest finished, then latest given), and
    the replacements made."""
    chosen: dict[str, int] = {}
    replaced = []
    for i, run in enumerate(runs):
        for model in run.models:
            j = chosen.get(model)
            if j is None:
                chosen[model] = i
                continue
            keep, drop = (i, j) if run.finished >= runs[j].finished else (j, i)
            chosen[model] = keep
            replaced.append(
                {
                    "model": model,
                    "kept": runs[keep].label,
                    "kept_finished_utc": runs[keep].finished,
                    "replaced": runs[drop].label,
                    "replaced_finished_utc": runs[drop].finished,
                }
            )
    return chosen, replaced


# --- the board -------------------------------------------------------------------------------


def _merged(runs: list[RunInfo], chosen: dict[str, int]) -> pd.DataFrame:
    parts = []
    for model in sorted(chosen):
        run = runs[chosen[model]]
        parts.append(run.preds[run.preds["model"].astype(str) == model])
    frame = pd.concat(parts, ignore_index=True, sort=False)
    frame["model"] = frame["model"].astype(str)
    return frame.sort_values(["model", *KEY], kind="mergesort").reset_index(drop=True)


def _merged_meta(runs: list[RunInfo], chosen: dict[str, int], threshold: float) -> dict[str, Any]:
    subsets: dict[str, Any] = {}
    for run in runs:
        for name, rule in (run.meta.get("subsets") or {}).items():
            subsets.setdefault(name, rule)
    models = {}
    for model, i in chosen.items():
        models[model] = (runs[i].meta.get("models") or {}).get(model) or {}
    first = runs[0]
    return {
        "bench": first.meta["bench"],
        "split": first.meta["split"],
        "threshold": threshold,
        "subsets": subsets,
        "models": models,
    }


def _cost_model(runs: list[RunInfo], overrides: dict[str, float] | None) -> CostModel:
    """The detection cost model every run recorded (ASVspoof 5's for a run that recorded
    none), each field in `overrides` replaced; runs left with different models are refused."""
    models = []
    for run in runs:
        recorded = run.meta.get("cost_model") or {}
        models.append(CostModel.from_json({**recorded, **(overrides or {})}))
    for run, model in zip(runs[1:], models[1:], strict=True):
        if model != models[0]:
            raise IncompatibleRuns(
                f"incompatible runs: cost model differs: {models[0]} ({runs[0].label}) vs "
                f"{model} ({run.label}); choose one with --dcf-p-attack, --dcf-c-miss and "
                "--dcf-c-fa",
                "cost model",
            )
    return models[0]


def _rank_key(model: str, entry: dict[str, Any]) -> tuple[Any, ...]:
    f1, auc = entry["f1"], entry["auc"]
    return (f1 is None, -(f1 or 0.0), auc is None, -(auc or 0.0), model)


def _published(
    preds: pd.DataFrame, meta: dict[str, Any], metrics: dict[str, Any], sanity: dict[str, Any]
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The paper bench kind and, per model, the published F1 / AUC that paper.py matches (a
    paper table first, in the published file's order; the reference runner's figure else)."""
    kind = paper_bench(preds, meta)
    out: dict[str, dict[str, Any]] = {
        m: dict.fromkeys(_PUBLISHED_METRICS) for m in metrics["models"]
    }
    if kind is None:
        return None, out
    rows, _ = comparison_rows(kind, meta, metrics, sanity)
    for metric in _PUBLISHED_METRICS:
        for model in out:
            mine = [r for r in rows if r["model"] == model and r["metric"] == metric]
            paper = next((r for r in mine if r["published"] is not None), None)
            runner = next((r for r in mine if r["runner"] is not None), None)
            if paper is not None:
                value, table = paper["published"], paper["table"]
            elif runner is not None:
                value, table = runner["runner"], RUNNER
            else:
                continue
            row = paper or runner
            out[model][metric] = {
                "value": value,
                "table": table,
                "paper_name": row["paper_name"],
                "measured": row["measured"],
            }
    return kind, out


def _verdict(pair: dict[str, Any]) -> str:
    """Plain reading of a pair (A ranked above B): which tests separate them, and which way."""
    if pair["bootstrap"] is None:
        return f"not comparable ({pair['reason']})"
    better, worse = [], []
    f1 = pair["bootstrap"]["f1"]
    if f1["low"] is not None and f1["low"] > 0:
        better.append("F1, bootstrap interval above 0")
    elif f1["high"] is not None and f1["high"] < 0:
        worse.append("F1, bootstrap interval below 0")
    delong = pair["delong"]
    if delong["p"] is not None and delong["p"] < ALPHA:
        (better if delong["difference"] > 0 else worse).append(f"AUC, DeLong p < {ALPHA:g}")
    mcnemar = pair["mcnemar"]
    if mcnemar["p"] is not None and mcnemar["p"] < ALPHA and mcnemar["b"] != mcnemar["c"]:
        side = better if mcnemar["b"] > mcnemar["c"] else worse
        side.append(f"calls, McNemar p < {ALPHA:g}")
    if better and worse:
        return f"mixed (better: {'; '.join(better)}; worse: {'; '.join(worse)})"
    if better:
        return f"better ({'; '.join(better)})"
    if worse:
        return f"worse ({'; '.join(worse)})"
    return "not distinguishable"


def _curves(frame: pd.DataFrame, order: list[str]) -> dict[str, dict[str, Any]]:
    """Per model, from its scored rows (AI positive, ``prob`` the score): the ROC's corner
    points (``metrics.roc_points``, so the board stays small; None when a class is missing) and
    F1 at each threshold of :data:`F1_GRID`, by the metrics module's rule (AI when
    ``prob >= t``), so at a run threshold on the grid it is the ranking's F1."""
    scored = frame[frame["status"] == "scored"]
    grid = np.asarray(F1_GRID)
    out: dict[str, dict[str, Any]] = {}
    for model in order:
        rows = scored[scored["model"] == model]
        y = as_positive(rows["label"].astype(str).to_numpy())
        prob = pd.to_numeric(rows["prob"], errors="coerce").to_numpy(dtype=float)
        fpr, tpr, thresholds = roc_points(y, prob, corners_only=True)
        roc = None  # a class is missing: no curve
        if fpr.size:  # the first threshold is +inf (nothing called AI); canonical() writes null
            roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}
        out[model] = {
            "n_scored": int(y.size),
            "n_ai": int(y.sum()),
            "n_real": int((~y).sum()),
            "roc": roc,
            "f1": {"thresholds": list(F1_GRID), "f1": f1_curve(y, prob, grid).tolist()},
        }
    return out


def _origins(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The ``bench_origin`` values of each subset's tracks (empty where the table has none), so
    a reader can tell which subsets lie wholly in one partition (ArtifactBench's ``test`` is
    its zero-shot partition)."""
    if "bench_origin" not in frame.columns:
        return {}
    tracks = frame.drop_duplicates(KEY)
    return {
        str(name): sorted(set(rows["bench_origin"].dropna().astype(str)))
        for name, rows in tracks.groupby("subset", sort=True, observed=True)
    }


def _pair(
    frame: pd.DataFrame, a: str, b: str, threshold: float, seed: int, resamples: int
) -> dict[str, Any]:
    """:func:`paired_comparisons` of A against B, with A (the higher-ranked) as its ``a``."""
    rows = frame[frame["model"].isin([a, b])].copy()
    rows["model"] = rows["model"].map({a: "0", b: "1"})
    (pair,) = paired_comparisons(rows, threshold, seed, resamples)
    pair = {**pair, "a": a, "b": b}
    pair["verdict"] = _verdict(pair)
    return pair


def build_leaderboard(
    run_dirs: list[str | Path],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    cost: dict[str, float] | None = None,
    audits: Sequence[AuditFindings] = (),
) -> dict[str, Any]:
    """The leaderboard of several compatible runs, as one canonical JSON-safe dict.

    Keys: bench, fingerprint, split, threshold, decode_protocol, primary_variant, seed,
    resamples, level, alpha, n_tracks, paper_bench, ranking (one entry per model, best first),
    pairs (each model against the next-ranked one), subsets (each one's rule, label, track count
    and the bench_origin values of its tracks, ``origins``), subset_order and heat (per-subset
    sanity rates and pass/fail), curves (per model: ROC points and F1 at thresholds 0.00 to
    1.00 on its scored tracks), provenance, replaced and cost_model (the detection cost model
    of each entry's min_dcf / act_dcf, with cllr and min_cllr and their track-bootstrap
    intervals in ``cost_ci``: the runs' recorded model, fields in `cost` replaced). With
    `audits` (leakage audits' findings), a heat cell holding tracks its model was trained on
    gets ``seen_in_training`` ({k, n}) and the board ``audits_note``.
    """
    runs = [load_run(d) for d in run_dirs]
    compatibility(runs)
    check_audits(audits, runs[0].meta)
    chosen, replaced = _choose(runs)
    if not chosen:
        raise ValueError("the runs hold no model predictions")
    first = runs[0]
    threshold = _fields(first)[-1][1]
    frame = _merged(runs, chosen)
    meta = _merged_meta(runs, chosen, threshold)
    cost_model = _cost_model(runs, cost)
    metrics = compute_metrics(frame, threshold, seed, resamples=resamples, cost=cost_model)
    intervals = model_intervals(frame, threshold, seed, resamples)
    sanity = evaluate_sanity(frame, threshold, meta["subsets"])
    kind, published = _published(frame, meta, metrics, sanity)

    entries: dict[str, dict[str, Any]] = {}
    for model, m in metrics["models"].items():
        scored, iv, sane = m["scored"], intervals[model], sanity["models"][model]
        run = runs[chosen[model]]
        entries[model] = {
            "model": model,
            "run": run.label,
            "params": run.model(model).get("params"),
            "n": m["n"],
            "n_scored": m["n_scored"],
            "n_failed": m["n_failed"],
            **{k: scored[k] for k in RANKED_METRICS},
            "ci": {k: iv["ci"][k] for k in RANKED_METRICS},
            **{k: scored[k] for k in COST_METRICS},
            "min_dcf_threshold": scored["min_dcf_threshold"],
            "cost_ci": {k: scored["ci"][k] for k in COST_METRICS},
            "cluster_column": iv["cluster_column"],
            "n_fail": sane["n_fail"],
            "n_subsets": sane["n_subsets"],
            "fail_n": sane["summary"],
            "published": published[model],
        }
    order = sorted(entries, key=lambda name: _rank_key(name, entries[name]))
    ranking = [{"rank": i + 1, **entries[name]} for i, name in enumerate(order)]
    pairs = [
        {"rank": i + 1, **_pair(frame, a, b, threshold, seed, resamples)}
        for i, (a, b) in enumerate(zip(order, order[1:], strict=False))
    ]
    heat = {
        model: {
            name: {k: cell[k] for k in ("n", "n_failed", "rate", "pass")}
            for name, cell in sanity["models"][model]["subsets"].items()
        }
        for model in order
    }
    audited = {**meta, "bench_fingerprint": first.meta["bench_fingerprint"]}
    for model, subsets in training_marks(frame, audited, audits).items():
        for name, mark in subsets.items():
            heat[model][name]["seen_in_training"] = mark
    origins = _origins(frame)
    subsets = {
        name: {**info, "origins": origins.get(name, [])} for name, info in sanity["subsets"].items()
    }
    provenance = []
    for i, run in enumerate(runs):
        provenance.append(
            {
                "run_dir": run.label,
                "fingerprint": run.meta["bench_fingerprint"],
                "finished_utc": run.finished,
                "models": sorted(m for m, j in chosen.items() if j == i),
                "replaced": sorted(r["model"] for r in replaced if r["replaced"] == run.label),
            }
        )
    fields = dict(_fields(first))
    board = {
        "bench": fields["bench name"],
        "fingerprint": fields["bench fingerprint"],
        "split": fields["split"],
        "threshold": threshold,
        "decode_protocol": fields["decode protocol"],
        "primary_variant": {"name": first.variant, "protocol": fields["primary variant protocol"]},
        "seed": int(seed),
        "resamples": int(resamples),
        "level": CI_LEVEL,
        "alpha": ALPHA,
        "n_tracks": metrics["n_tracks"],
        "paper_bench": kind,
        "ranking": ranking,
        "pairs": pairs,
        "subsets": subsets,
        "subset_order": sanity["subset_order"],
        "heat": heat,
        "curves": _curves(frame, order),
        "provenance": provenance,
        "replaced": replaced,
        "cost_model": cost_model.to_json(),
    }
    if audits:
        board["audits_note"] = audits_note(audits)
    return canonical(board)
