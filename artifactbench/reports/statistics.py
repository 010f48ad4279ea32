"""Statistical sections of a report, from a predictions table alone: pure functions, no I/O.

One row per (model, track), as ``predictions.parquet``. Every figure here is computed on each
model's *scored* tracks (a failed track is excluded and counted), with AI as the positive class
and a track called AI when ``prob >= threshold``:

- :func:`model_intervals`: 95% percentile bootstrap intervals of F1, precision, recall, FPR and
  AUC per model, resampled within each label and, when the bench has a clustering column
  (:func:`cluster_ids`), by whole clusters.
- :func:`paired_comparisons`: every pair of models on the tracks both scored: paired bootstrap
  intervals of the F1 and AUC differences, DeLong's test of the AUC difference and McNemar's
  exact test of the calls at the threshold.
- :func:`operating_points_table` and :func:`calibration_table`.

:func:`build_statistics` gathers them into one JSON-safe dict (``None`` for anything undefined,
never NaN); :mod:`~artifactbench.reports.statistics_markdown` renders it and
:func:`~artifactbench.reports.plots.plot_reliability` draws its calibration. Rows are sorted by
(model, bench, track_id) first, so nothing depends on the table's row order.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.diagnostics import calibration as calibration_of
from artifactbench.analysis.diagnostics import operating_points
from artifactbench.analysis.metrics import (
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    FPR_TARGET,
    _weighted_auc,
    as_positive,
    bootstrap_intervals,
    confusion,
    rates,
)
from artifactbench.analysis.stats import (
    cluster_bootstrap_intervals,
    delong_test,
    mcnemar_test,
    paired_bootstrap,
)
from artifactbench.predictions import KEY, validate_predictions
from artifactbench.reports.data import canonical

__all__ = [
    "CLUSTER_COLUMNS",
    "build_statistics",
    "calibration_table",
    "cluster_ids",
    "model_intervals",
    "operating_points_table",
    "paired_comparisons",
]

# Columns that group tracks which are not independent evidence, in order of preference. Tracks
# of one lineage (re-encodings, stems, edits or continuations of one generation) share most of
# what a detector reacts to, and so, more loosely, do tracks taken from one source (one upload
# channel, album or scrape). Resampling them one by one treats a family of near-duplicates as
# that many independent tracks and gives intervals that are too narrow; resampling whole
# clusters does not. ``lineage_id`` is the name ArtifactBench v2 manifests use for lineage.
CLUSTER_COLUMNS: tuple[str, ...] = ("lineage", "lineage_id", "source")
CALIBRATION_BINS = 10


# --- table access ----------------------------------------------------------------------------


def _missing(values: pd.Series) -> np.ndarray:
    """Missing (None / NaN) or blank cluster ids."""
    blank = values.astype(str).str.strip() == ""
    return (values.isna() | blank).to_numpy()


def cluster_ids(preds: pd.DataFrame) -> tuple[str | None, np.ndarray | None]:
    """(column, one cluster id per row of `preds`) for resampling whole clusters, or (None, None).

    The first of :data:`CLUSTER_COLUMNS` (``lineage``, ``lineage_id``, ``source``) that the table
    has with at least one non-blank value is used: tracks from one lineage or source are not
    independent, so a bootstrap must draw them together. A row whose value is missing or blank
    gets a cluster of its own track (``bench`` and ``track_id``, the same for every model), i.e.
    it is resampled as an independent track. Ids are strings, aligned with the rows of `preds`.
    """
    for column in CLUSTER_COLUMNS:
        if column not in preds.columns:
            continue
        values = preds[column]
        missing = _missing(values)
        if missing.all():
            continue
        ids = values.astype(str).to_numpy(dtype=object).copy()
        if missing.any():
            own = (
                "\x00track\x00"
                + preds["bench"].astype(str)
                + "\x00"
                + preds["track_id"].astype(str)
            )
            ids[missing] = own.to_numpy(dtype=object)[missing]
        return column, ids
    return None, None


def _sorted(preds: pd.DataFrame) -> pd.DataFrame:
    """Rows by (model, bench, track_id), with a clean positional index.

    Rejects a table holding several variants (transform chains) of a track: every function
    here wants one row per (model, track), so filter to one variant first.
    """
    if "variant" in preds.columns and preds["variant"].astype(str).nunique() > 1:
        raise ValueError("predictions hold several variants: select one variant first")
    frame = preds.copy()
    frame["model"] = frame["model"].astype(str)
    return frame.sort_values(["model", *KEY], kind="mergesort").reset_index(drop=True)


def _with_clusters(preds: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The sorted table with a ``_cluster`` column (None without a clustering column)."""
    frame = _sorted(preds)
    column, ids = cluster_ids(frame)
    frame["_cluster"] = ids if ids is not None else None
    return frame, column


def _arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, prob with NaN where failed, scored mask) of some rows."""
    y = as_positive(rows["label"].astype(str).to_numpy())
    scored = (rows["status"] == "scored").to_numpy()
    prob = pd.to_numeric(rows["prob"], errors="coerce").to_numpy(dtype=float)
    return y, np.where(scored, prob, np.nan), scored


def _models(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["model"].astype(str).unique())


def _n_clusters(y: np.ndarray, ids: np.ndarray | None) -> dict[str, int] | None:
    """Distinct clusters per label stratum (a cluster holding both labels counts in both)."""
    if ids is None:
        return None
    return {"ai": len(set(ids[y])), "real": len(set(ids[~y]))}


# --- intervals -------------------------------------------------------------------------------


def _points(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Point values of the interval metrics on finite probs."""
    r = rates(**confusion(y, prob >= threshold))
    both = bool(y.any() and (~y).any())
    auc = float(_weighted_auc(y, prob, np.ones((1, y.size)))[0]) if both else None
    out: dict[str, float | None] = {name: r[name] for name in ("f1", "precision", "recall")}
    return {**out, "fpr": r["fpr"], "auc": auc}


def model_intervals(
    preds: pd.DataFrame,
    threshold: float,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, dict[str, Any]]:
    """Per model: point values and 95% percentile bootstrap intervals on its scored tracks.

    Resampling is stratified by label and seeded with `seed` for every model. With a
    clustering column (:func:`cluster_ids`) whole clusters are drawn
    (``stats.cluster_bootstrap_intervals``); without one the intervals are
    exactly ``metrics.bootstrap_intervals`` on the same rows, i.e. those of ``metrics.json``'s
    ``scored`` block.

    Keys per model: n, n_scored, n_failed, n_ai, n_real (scored), cluster_column, n_clusters
    ({ai, real} or None), point ({f1, precision, recall, fpr, auc}) and ci (per metric low,
    high and n_finite, the number of replicates where it is defined).
    """
    frame, column = _with_clusters(preds)
    out: dict[str, dict[str, Any]] = {}
    for model in _models(frame):
        rows = frame[frame["model"] == model]
        y_all, prob_all, scored = _arrays(rows)
        y, prob = y_all[scored], prob_all[scored]
        calls = prob >= threshold
        if column is None:
            ids = None
            ci = bootstrap_intervals(y, calls, prob, seed=seed, resamples=resamples)
        else:
            ids = rows["_cluster"].to_numpy(dtype=object)[scored]
            ci = cluster_bootstrap_intervals(
                y, calls, prob, seed=seed, resamples=resamples, clusters=ids
            )
        out[model] = {
            "n": int(y_all.size),
            "n_scored": int(y.size),
            "n_failed": int((~scored).sum()),
            "n_ai": int(y.sum()),
            "n_real": int((~y).sum()),
            "cluster_column": column,
            "n_clusters": _n_clusters(y, ids),
            "point": _points(y, prob, threshold),
            "ci": ci,
        }
    return out


# --- paired comparisons ----------------------------------------------------------------------


def _scored_rows(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    rows = frame[(frame["model"] == model) & (frame["status"] == "scored")]
    return rows[[*KEY, "label", "prob", "_cluster"]]


def paired_comparisons(
    preds: pd.DataFrame,
    threshold: float,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[dict[str, Any]]:
    """Every pair of models (a before b by id) on the tracks both scored.

    A track failed by either model, or missing for one, leaves that pair only. Per pair:
    ``bootstrap`` (``stats.paired_bootstrap`` of F1(a) - F1(b) and
    AUC(a) - AUC(b), seeded, by whole clusters when :func:`cluster_ids` finds a column),
    ``delong`` (``stats.delong_test`` of the AUCs) and ``mcnemar``
    (``stats.mcnemar_test`` of the calls ``prob >= threshold``), each the
    function's own result on the common tracks sorted by (bench, track_id). With no common
    track these three are None and ``reason`` says why.

    Keys: a, b, n_common, n_scored_a, n_scored_b, n_only_a, n_only_b, n_ai, n_real,
    cluster_column, reason, bootstrap, delong, mcnemar.
    """
    frame, column = _with_clusters(preds)
    out = []
    for a, b in combinations(_models(frame), 2):
        rows_a, rows_b = _scored_rows(frame, a), _scored_rows(frame, b)
        both = rows_a.merge(rows_b, on=KEY, suffixes=("_a", "_b"), validate="one_to_one")
        both = both.sort_values(KEY, kind="mergesort")
        y = as_positive(both["label_a"].astype(str).to_numpy())
        if not np.array_equal(y, as_positive(both["label_b"].astype(str).to_numpy())):
            raise ValueError(f"models {a!r} and {b!r} disagree on a track's label")
        pa = both["prob_a"].to_numpy(dtype=float)
        pb = both["prob_b"].to_numpy(dtype=float)
        n = int(y.size)
        pair: dict[str, Any] = {
            "a": a,
            "b": b,
            "n_common": n,
            "n_scored_a": len(rows_a),
            "n_scored_b": len(rows_b),
            "n_only_a": len(rows_a) - n,
            "n_only_b": len(rows_b) - n,
            "n_ai": int(y.sum()),
            "n_real": int((~y).sum()),
            "cluster_column": column,
            "reason": None,
            "bootstrap": None,
            "delong": None,
            "mcnemar": None,
        }
        if n == 0:
            pair["reason"] = "no track scored by both models"
            out.append(pair)
            continue
        clusters = None if column is None else both["_cluster_a"].to_numpy(dtype=object)
        pair["bootstrap"] = paired_bootstrap(
            y, pa, pb, threshold, seed=seed, resamples=resamples, clusters=clusters
        )
        pair["delong"] = delong_test(y, pa, pb)
        pair["mcnemar"] = mcnemar_test(y, pa >= threshold, pb >= threshold)
        out.append(pair)
    return out


# --- operating points and calibration --------------------------------------------------------


def operating_points_table(preds: pd.DataFrame, threshold: float) -> dict[str, dict[str, Any]]:
    """``diagnostics.operating_points`` of each model; failed tracks are excluded
    (``n_excluded`` counts them). ``best_f1`` and ``at_fpr05`` are chosen on the evaluated
    tracks (``chosen_on_evaluated_data``), diagnostics rather than scores; a point that cannot
    exist is ``{"impossible": True, "reason": ...}``."""
    frame = _sorted(preds)
    out = {}
    for model in _models(frame):
        y, prob, _ = _arrays(frame[frame["model"] == model])
        out[model] = operating_points(y, prob, threshold)
    return out


def calibration_table(
    preds: pd.DataFrame, bins: int = CALIBRATION_BINS
) -> dict[str, dict[str, Any]]:
    """``diagnostics.calibration`` (Brier, ECE, equal-width bins) of each model on
    its scored tracks, plus ``reason`` (None, or why the probs cannot be read as probabilities,
    e.g. a score outside [0, 1]; then brier, ece and bins are None / empty)."""
    frame = _sorted(preds)
    out = {}
    for model in _models(frame):
        y, prob, _ = _arrays(frame[frame["model"] == model])
        try:
            out[model] = {**calibration_of(y, prob, bins), "reason": None}
        except ValueError as exc:
            finite = np.isfinite(prob)
            out[model] = {
                "n": int(finite.sum()),
                "n_excluded": int((~finite).sum()),
                "n_ai": int(y[finite].sum()),
                "n_real": int((~y[finite]).sum()),
                "brier": None,
                "ece": None,
                "bins": [],
                "reason": str(exc),
            }
    return out


# --- everything together ---------------------------------------------------------------------


def build_statistics(
    preds: pd.DataFrame,
    threshold: float,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    *,
    bins: int = CALIBRATION_BINS,
) -> dict[str, Any]:
    """Intervals, paired comparisons, operating points and calibration of a predictions table,
    as one JSON-safe dict (None where undefined, no NaN; floats are not rounded).

    Keys: threshold, seed, resamples, level, fpr_target, models, n_tracks, n_failed (rows),
    clusters ({column, n_ai, n_real} over all tracks, column None without one), intervals,
    pairs, operating_points, calibration.
    """
    validate_predictions(preds)
    frame, column = _with_clusters(preds)
    tracks = frame.drop_duplicates(KEY)
    y = as_positive(tracks["label"].astype(str).to_numpy())
    ids = None if column is None else tracks["_cluster"].to_numpy(dtype=object)
    counts = _n_clusters(y, ids) or {"ai": None, "real": None}
    result = {
        "threshold": float(threshold),
        "seed": int(seed),
        "resamples": int(resamples),
        "level": CI_LEVEL,
        "fpr_target": FPR_TARGET,
        "models": _models(frame),
        "n_tracks": len(tracks),
        "n_failed": int((frame["status"] != "scored").sum()),
        "clusters": {"column": column, "n_ai": counts["ai"], "n_real": counts["real"]},
        "intervals": model_intervals(preds, threshold, seed, resamples),
        "pairs": paired_comparisons(preds, threshold, seed, resamples),
        "operating_points": operating_points_table(preds, threshold),
        "calibration": calibration_table(preds, bins),
    }
    return canonical(result, decimals=None)
