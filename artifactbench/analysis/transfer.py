"""Threshold and calibration transfer: a decision rule chosen on one predictions table (the
source, e.g. a calibration split) applied to another (the target, e.g. the test split). Pure
functions over predictions tables, no I/O.

Detectors are deployed at one fixed threshold on catalogues nobody tuned them on, so what a
user needs to know is whether a threshold, or a calibration map, chosen on one set still holds
on another. Choosing uses the source's primary variant and its scored tracks only; the target
is evaluated as its own reports are (primary variant, scored tracks and both accountings of
failures), at the transferred rule and at its own threshold side by side.

A transfer *record* is what is chosen on the source and nothing else, so a run can store it in
its predictions metadata and rebuild the same reports without the source::

    {"threshold": {"source": {...}, "metric": "eer", "rule": "...", ["cost": {...}],
                   "models": {model: {"threshold", "n_ai", "n_real"}}, "unfit": {model: why}},
     "calibration": {"source": {...}, "method": "...",
                     "models": {model: {"a", "b", "n_ai", "n_real"}}, "unfit": {model: why}}}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from artifactbench.analysis.detection_cost import CostModel, act_dcf, cllr, llr_from_prob, min_dcf
from artifactbench.analysis.diagnostics import calibration
from artifactbench.analysis.metrics import as_positive, binary_metrics, compute_metrics
from artifactbench.analysis.transfer_rules import DEFAULT_METRIC, THRESHOLD_RULES, ThresholdRule

# The threshold-dependent metrics a transferred threshold is judged by (the threshold-free ones
# do not move with the threshold and are in the run's own metrics).
COUNT_KEYS: tuple[str, ...] = (
    "n", "n_ai", "n_real", "tp", "fp", "tn", "fn",
    "precision", "recall", "fpr", "f1", "accuracy",
)  # fmt: skip
CALIBRATION_METHOD = (
    "P' = sigmoid(a * logit(P) + b), fitted by maximum likelihood (Newton-Raphson, "
    "no regularisation) on the source's scored tracks"
)
# Newton-Raphson stops when a step moves (a, b) by less than this, relative to their size.
_STEP_TOLERANCE = 1e-10
_MAX_ITERATIONS = 100


class TransferError(ValueError):
    """A threshold or calibration that cannot be chosen on its source or carried to a run."""


def source_thresholds(y: np.ndarray, prob: np.ndarray, cost: CostModel) -> dict[str, Any]:
    """Every threshold a rule of THRESHOLD_RULES can choose, from one model's source tracks
    (labels True = AI, P(AI)); None (or inf for minDCF) where the source defines none."""
    ranked = binary_metrics(y, prob, resamples=0)
    return {
        "eer_threshold": ranked["eer_threshold"],
        "threshold_at_fpr05": ranked["threshold_at_fpr05"],
        "min_dcf_threshold": min_dcf(y, prob, cost)[1],
    }


def threshold_rule(metric: str) -> ThresholdRule:
    """The rule a metric names; an unknown one is refused naming the choices."""
    try:
        return THRESHOLD_RULES[metric]
    except KeyError:
        raise TransferError(
            f"unknown threshold metric {metric!r}; choose from: {', '.join(THRESHOLD_RULES)}"
        ) from None


# --- the rows a rule is chosen on ----------------------------------------------------------


def primary_variant(preds: pd.DataFrame, meta: dict[str, Any]) -> str | None:
    """The run's primary variant, as its reports take it: the first declared variant present,
    else the first in the table (None for a table without variants)."""
    if "variant" not in preds.columns or preds.empty:
        return None
    present = list(dict.fromkeys(preds["variant"].astype(str)))
    declared = [v for v in meta.get("variants") or [] if v in present]
    return (declared or present)[0]


def primary(preds: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The rows of the primary variant (every row for a table without variants)."""
    variant = primary_variant(preds, meta)
    if variant is None:
        return preds
    return preds[preds["variant"].astype(str) == variant]


def scored_arrays(
    preds: pd.DataFrame, meta: dict[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per model (sorted): labels (True = AI) and P(AI) of its scored primary-variant tracks."""
    rows = primary(preds, meta)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for model, part in rows.groupby(rows["model"].astype(str), sort=True):
        ok = part[part["status"] == "scored"]
        y = as_positive(ok["label"].astype(str).to_numpy())
        out[str(model)] = (y, pd.to_numeric(ok["prob"]).to_numpy(dtype=float))
    return out


def source_facts(preds: pd.DataFrame, meta: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Which run a rule was chosen on: its directory, bench, split, protocol split (ArtifactBench
    v2's calibration / validation / test, when the table has that column) and variant."""
    protocol = None
    if "protocol_split" in preds.columns:
        protocol = ",".join(sorted(set(preds["protocol_split"].dropna().astype(str)))) or None
    return {
        "run_dir": run_dir,
        "bench": meta.get("bench"),
        "bench_fingerprint": meta.get("bench_fingerprint"),
        "split": meta.get("split"),
        "protocol_split": protocol,
        "variant": primary_variant(preds, meta),
    }


def _one_class(y: np.ndarray) -> str | None:
    """Why a model's source tracks cannot choose anything, or None when both classes are there."""
    if y.size == 0:
        return "it scored no track of the source"
    if y.all():
        return "it scored only AI tracks of the source"
    if not y.any():
        return "it scored only real tracks of the source"
    return None


# --- threshold -----------------------------------------------------------------------------


def choose_thresholds(
    preds: pd.DataFrame,
    meta: dict[str, Any],
    metric: str = DEFAULT_METRIC,
    cost: CostModel | None = None,
    run_dir: str = "",
) -> dict[str, Any]:
    """The threshold record: each model's threshold chosen on the source by `metric` (see
    THRESHOLD_RULES), and why a model has none ("unfit"). minDCF's cost model is `cost`, else
    the one the source run recorded (``cost_model``), else the default."""
    rule = threshold_rule(metric)
    cost = cost or CostModel.from_json(meta.get("cost_model"))
    models: dict[str, Any] = {}
    unfit: dict[str, str] = {}
    for model, (y, prob) in scored_arrays(preds, meta).items():
        reason = _one_class(y)
        chosen = None if reason else source_thresholds(y, prob, cost)[rule.key]
        if chosen is None or not np.isfinite(chosen):
            unfit[model] = (
                reason or f"{metric} is reached on the source only by calling no track AI"
            )
            continue
        models[model] = {
            "threshold": float(chosen),
            "n_ai": int(y.sum()),
            "n_real": int((~y).sum()),
        }
    record: dict[str, Any] = {
        "source": source_facts(preds, meta, run_dir),
        "metric": metric,
        "rule": rule.meaning,
        "models": models,
        "unfit": unfit,
    }
    if metric == "mindcf":
        record["cost"] = cost.to_json()
    return record


# --- calibration ---------------------------------------------------------------------------


def separated(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether one cut on x puts every AI track on one side and every real track on the other
    (ties allowed): then the likelihood grows without bound and no maximum exists."""
    ai, real = x[y], x[~y]
    return not (ai.min() < real.max() and real.min() < ai.max())


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) maximising the likelihood of P(AI | x) = sigmoid(a * x + b), without
    regularisation, by Newton-Raphson with step halving (the log-likelihood is concave, so
    every accepted step climbs). Needs both classes and overlapping x (see `separated`)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=bool)
    if _one_class(y) is not None or separated(x, y):
        raise TransferError("the logistic maximum-likelihood fit needs overlapping classes")
    target = y.astype(float)
    design = np.column_stack([x, np.ones_like(x)])

    def loglik(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(target * z - np.logaddexp(0.0, z)))

    share = target.mean()
    w = np.array([0.0, np.log(share / (1.0 - share))])
    current = loglik(w)
    for _ in range(_MAX_ITERATIONS):
        p = expit(design @ w)
        grad = design.T @ (target - p)
        hess = (design * (p * (1.0 - p))[:, None]).T @ design
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while True:
            trial = w + scale * step
            value = loglik(trial)
            if value >= current or scale < 1e-12:
                break
            scale /= 2.0
        moved = np.max(np.abs(trial - w))
        w, current = trial, value
        if moved <= _STEP_TOLERANCE * (1.0 + np.max(np.abs(w))):
            return float(w[0]), float(w[1])
    raise TransferError("the logistic calibration fit did not converge")


def calibrate(prob: Any, a: float, b: float) -> np.ndarray:
    """P(AI) mapped through a fitted calibration: sigmoid(a * logit(P) + b)."""
    return expit(a * llr_from_prob(np.asarray(prob, dtype=float)) + b)


def fit_calibrations(
    preds: pd.DataFrame, meta: dict[str, Any], run_dir: str = ""
) -> dict[str, Any]:
    """The calibration record: each model's (a, b) fitted on the source's scored tracks, and
    why a model has none ("unfit": one class, or classes the scores separate completely)."""
    models: dict[str, Any] = {}
    unfit: dict[str, str] = {}
    for model, (y, prob) in scored_arrays(preds, meta).items():
        reason = _one_class(y)
        x = llr_from_prob(prob)
        if reason is None and separated(x, y):
            reason = (
                "its scores separate AI from real tracks completely on the source, so the "
                "maximum-likelihood fit does not exist (a threshold transfer still works)"
            )
        if reason is not None:
            unfit[model] = reason
            continue
        a, b = fit_logistic(x, y)
        models[model] = {"a": a, "b": b, "n_ai": int(y.sum()), "n_real": int((~y).sum())}
    return {
        "source": source_facts(preds, meta, run_dir),
        "method": CALIBRATION_METHOD,
        "models": models,
        "unfit": unfit,
    }


# --- carrying a record to a run ------------------------------------------------------------

# How each kind of record is named in an error (the option that asks for it).
KIND_OPTIONS: dict[str, str] = {"threshold": "--threshold-from", "calibration": "--calibrate-on"}


def for_models(record: dict[str, Any], models: Iterable[str]) -> dict[str, Any]:
    """The transfer record restricted to `models` (this run's); raises TransferError naming
    every model a kind cannot serve, why, and the models its source has."""
    out: dict[str, Any] = {}
    wanted = sorted(set(models))
    for kind, option in KIND_OPTIONS.items():
        part = record.get(kind)
        if part is None:
            continue
        missing = [m for m in wanted if m not in part["models"]]
        if missing:
            unfit = part.get("unfit") or {}
            why = "; ".join(f"{m}: {unfit.get(m, 'not in that run')}" for m in missing)
            has = ", ".join(sorted(part["models"])) or "none"
            raise TransferError(
                f"{option} {part['source']['run_dir']}: nothing for this run's model(s) "
                f"{', '.join(missing)} ({why}); usable models there: {has}"
            )
        kept = {m: part["models"][m] for m in wanted}
        out[kind] = {**{k: v for k, v in part.items() if k != "unfit"}, "models": kept}
    return out


def _counts(block: dict[str, Any]) -> dict[str, Any]:
    return {key: block[key] for key in COUNT_KEYS}


def _at(preds: pd.DataFrame, threshold: float) -> dict[str, dict[str, Any]]:
    """Per model, the threshold-dependent metrics at `threshold`: on scored tracks and under
    both accountings of failures (as in metrics.json, without bootstrap intervals)."""
    metrics = compute_metrics(preds, threshold, 0, resamples=0)
    return {
        model: {
            "scored": _counts(m["scored"]),
            "exclude": _counts(m["accounting"]["exclude"]),
            "impute": _counts(m["accounting"]["impute"]),
        }
        for model, m in metrics["models"].items()
    }


def _probabilistic(y: np.ndarray, prob: np.ndarray, cost: CostModel) -> dict[str, Any]:
    """What a calibration map changes: Cllr, actDCF, Brier score and ECE of scored tracks."""
    shape = calibration(y, prob)
    return {
        "cllr": cllr(y, prob),
        "act_dcf": act_dcf(y, prob, cost),
        "brier": shape["brier"],
        "ece": shape["ece"],
    }


def threshold_transfer(
    preds: pd.DataFrame, part: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """This run's metrics at each model's source threshold, beside those at its own."""
    own = _at(preds, threshold)
    at_source: dict[float, dict[str, dict[str, Any]]] = {}
    models: dict[str, Any] = {}
    for model, chosen in sorted(part["models"].items()):
        t = float(chosen["threshold"])
        if t not in at_source:
            at_source[t] = _at(preds, t)
        models[model] = {
            "threshold": t,
            "source_n_ai": chosen["n_ai"],
            "source_n_real": chosen["n_real"],
            "at_source_threshold": at_source[t][model],
            "at_run_threshold": own[model],
        }
    out = {k: v for k, v in part.items() if k != "models"}
    return {**out, "run_threshold": float(threshold), "models": models}


def calibration_transfer(
    preds: pd.DataFrame, part: dict[str, Any], threshold: float, cost: CostModel
) -> dict[str, Any]:
    """This run before and after each model's source calibration: the calls at the run's
    threshold (both accountings) and the probabilistic metrics of its scored tracks."""
    names = preds["model"].astype(str).to_numpy()
    scored = (preds["status"] == "scored").to_numpy()
    prob = pd.to_numeric(preds["prob"], errors="coerce").to_numpy(dtype=float)
    mapped = prob.copy()
    y_all = as_positive(preds["label"].astype(str).to_numpy())
    models: dict[str, Any] = {}
    for model, fit in sorted(part["models"].items()):
        rows = scored & (names == model)
        mapped[rows] = calibrate(prob[rows], fit["a"], fit["b"])
        models[model] = {
            "a": fit["a"],
            "b": fit["b"],
            "source_n_ai": fit["n_ai"],
            "source_n_real": fit["n_real"],
            "probabilistic_before": _probabilistic(y_all[rows], prob[rows], cost),
            "probabilistic_after": _probabilistic(y_all[rows], mapped[rows], cost),
        }
    before, after = _at(preds, threshold), _at(preds.assign(prob=mapped), threshold)
    for model, block in models.items():
        block["before"], block["after"] = before[model], after[model]
    out = {k: v for k, v in part.items() if k != "models"}
    return {**out, "run_threshold": float(threshold), "cost": cost.to_json(), "models": models}


def transfer_results(
    preds: pd.DataFrame,
    meta: dict[str, Any],
    threshold: float,
    cost: CostModel | None = None,
) -> dict[str, Any]:
    """metrics.json's ``transfer`` block from the record in ``meta["transfer"]``, on the run's
    primary variant ({} without a record). actDCF uses `cost`, else the run's recorded cost
    model. Raises TransferError when the record lacks a model of this run."""
    record = meta.get("transfer") or {}
    if not record:
        return {}
    rows = primary(preds, meta)
    record = for_models(record, rows["model"].astype(str).unique())
    out: dict[str, Any] = {}
    if "threshold" in record:
        out["threshold"] = threshold_transfer(rows, record["threshold"], threshold)
    if "calibration" in record:
        out["calibration"] = calibration_transfer(
            rows, record["calibration"], threshold,
            cost or CostModel.from_json(meta.get("cost_model")),
        )  # fmt: skip
    return out
