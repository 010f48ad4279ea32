"""Statistical sections of a report, from a predictions table alone: pure functions, no I/O
(except :func:`plot_reliability`, which writes one PNG).

One row per (model, track), as ``predictions.parquet``. Every figure here is computed on each
model's *scored* tracks (a failed track is excluded and counted), with AI as the positive class
and a track called AI when ``prob >= threshold``:

- :func:`model_intervals`: 95% percentile bootstrap intervals of F1, precision, recall, FPR and
  AUC per model, resampled within each label and, when the bench has a clustering column
  (:func:`cluster_ids`), by whole clusters.
- :func:`paired_comparisons`: every pair of models on the tracks both scored: paired bootstrap
  intervals of the F1 and AUC differences, DeLong's test of the AUC difference and McNemar's
  exact test of the calls at the threshold.
- :func:`operating_points_table` and :func:`calibration_table` (with :func:`plot_reliability`).

:func:`build_statistics` gathers them into one JSON-safe dict (``None`` for anything undefined,
never NaN) and :func:`statistics_markdown` renders it. Rows are sorted by (model, bench,
track_id) first, so nothing depends on the table's row order.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from artifactbench.analysis.metrics import (
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    CI_METRICS,
    FPR_TARGET,
    _weighted_auc,
    as_positive,
    bootstrap_intervals,
    confusion,
    rates,
)
from artifactbench.analysis.stats import calibration as calibration_of
from artifactbench.analysis.stats import (
    cluster_bootstrap_intervals,
    delong_test,
    mcnemar_test,
    operating_points,
    paired_bootstrap,
)
from artifactbench.predictions import KEY, validate_predictions
from artifactbench.reports.data import canonical
from artifactbench.reports.tables import MISSING, fmt, format_p, md_table
from artifactbench.util import write_atomic

__all__ = [
    "CLUSTER_COLUMNS",
    "build_statistics",
    "calibration_table",
    "cluster_ids",
    "model_intervals",
    "operating_points_table",
    "paired_comparisons",
    "plot_reliability",
    "statistics_markdown",
]

# Columns that group tracks which are not independent evidence, in order of preference. Tracks
# of one lineage (re-encodings, stems, edits or continuations of one generation) share most of
# what a detector reacts to, and so, more loosely, do tracks taken from one source (one upload
# channel, album or scrape). Resampling them one by one treats a family of near-duplicates as
# that many independent tracks and gives intervals that are too narrow; resampling whole
# clusters does not. ``lineage_id`` is the name ArtifactBench v2 manifests use for lineage.
CLUSTER_COLUMNS: tuple[str, ...] = ("lineage", "lineage_id", "source")
# Fewer clusters than this in a label stratum make cluster-bootstrap intervals coarse.
FEW_CLUSTERS = 10
CALIBRATION_BINS = 10
_INTERVAL_NAMES = {
    "f1": "F1", "precision": "precision", "recall": "recall", "fpr": "FPR", "auc": "AUC",
}  # fmt: skip
_STYLE = {"font.family": "DejaVu Sans", "font.size": 9}
_PNG_META = {"Software": None}


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
    """``stats.operating_points`` of each model; failed tracks are excluded
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
    """``stats.calibration`` (Brier, ECE, equal-width bins) of each model on
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


def plot_reliability(calibration: dict[str, dict[str, Any]], path: Path) -> Path:
    """Reliability diagram: observed AI fraction against mean P(AI) per bin, one line per model
    with the diagonal of perfect calibration, and the bin counts per model in a lower panel."""
    path = Path(path)
    models = sorted(calibration)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 6.0))
        grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
        ax = fig.add_subplot(grid[0])
        counts_ax = fig.add_subplot(grid[1], sharex=ax)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="perfectly calibrated")
        width = 1.0 / max(1, len(models))
        for i, model in enumerate(models):
            block = calibration[model]
            filled = [b for b in block["bins"] if b["count"]]
            if not filled:
                why = block.get("reason") or "no scored tracks"
                ax.plot([], [], label=f"{model} (n/a: {why})")
                continue
            ece = block["ece"]
            label = f"{model} (ECE {ece:.3f}, Brier {block['brier']:.3f})"
            (line,) = ax.plot(
                [b["mean_prob"] for b in filled],
                [b["fraction_ai"] for b in filled],
                marker="o",
                ms=4,
                lw=1.4,
                label=label,
            )
            lows = np.array([b["lower"] for b in block["bins"]])
            bin_width = np.array([b["upper"] - b["lower"] for b in block["bins"]])
            counts_ax.bar(
                lows + bin_width * i * width,
                [b["count"] for b in block["bins"]],
                width=bin_width * width,
                align="edge",
                color=line.get_color(),
            )
        ax.set(xlim=(0, 1), ylim=(-0.01, 1.01), ylabel="observed AI fraction")
        ax.set_title("Reliability, scored tracks")
        ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        counts_ax.set(xlabel="mean P(AI) in bin", ylabel="tracks")
        counts_ax.grid(alpha=0.3, axis="y")
        fig.subplots_adjust(left=0.13, right=0.97, top=0.94, bottom=0.09)
        FigureCanvasAgg(fig)
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, metadata=_PNG_META))
    return path


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


# --- markdown --------------------------------------------------------------------------------


def _ci(block: dict[str, Any] | None) -> str:
    if not block or block.get("low") is None:
        return MISSING
    return f"[{fmt(block['low'])}, {fmt(block['high'])}]"


def _with_ci(value: float | None, block: dict[str, Any] | None) -> str:
    return f"{fmt(value)} {_ci(block)}"


def _intervals_section(result: dict[str, Any], head: str) -> list[str]:
    clusters = result["clusters"]
    column = clusters["column"]
    level = f"{result['level']:.0%}"
    title = f"{head} Intervals ({level} bootstrap, {result['resamples']} resamples, "
    title += "stratified by label" + (f", clusters: {column})" if column else ")")
    text = (
        f"Percentile intervals on each model's scored tracks (failed tracks excluded and "
        f"counted), seed {result['seed']}; `replicates` counts the resamples where a metric is "
        "defined."
    )
    if column:
        text += (
            f" Whole `{column}` clusters are drawn within each label "
            f"({clusters['n_ai']} AI and {clusters['n_real']} real cluster(s) in all), because "
            "tracks of one cluster are not independent evidence."
        )
        few = [v for v in (clusters["n_ai"], clusters["n_real"]) if v]
        if few and min(few) < FEW_CLUSTERS:
            text += f" With fewer than {FEW_CLUSTERS} clusters in a label the intervals are coarse."
    headers = ["model", "scored", "failed"]
    if column:
        headers.append("clusters AI/real")
    headers += [*(_INTERVAL_NAMES[m] for m in CI_METRICS), "replicates"]
    rows = []
    for model, m in sorted(result["intervals"].items()):
        cells = [model, str(m["n_scored"]), str(m["n_failed"])]
        if column:
            n = m["n_clusters"] or {}
            cells.append(f"{n.get('ai', 0)}/{n.get('real', 0)}")
        cells += [_with_ci(m["point"][k], m["ci"][k]) for k in CI_METRICS]
        finite = sorted({m["ci"][k]["n_finite"] for k in CI_METRICS})
        cells.append("/".join(map(str, finite)))
        rows.append(cells)
    table = md_table(headers, rows, right=set(range(1, len(headers))))
    return [title, "", text, "", table, ""]


def _pairs_section(result: dict[str, Any], head: str) -> list[str]:
    out = [f"{head} Paired comparisons", ""]
    pairs = result["pairs"]
    if not pairs:
        n = len(result["models"])
        out += [f"{n} model(s) in this run: no pair to compare.", ""]
        return out
    out += [
        "Each pair on the tracks both models scored (a track either model failed on leaves "
        "that pair). Differences are A - B with paired bootstrap intervals "
        f"({result['resamples']} shared resamples"
        + (
            f", whole `{result['clusters']['column']}` clusters"
            if result["clusters"]["column"]
            else ""
        )
        + "); DeLong tests the AUC difference; McNemar's exact test compares the calls at "
        f"threshold {result['threshold']:g} (b: only A right, c: only B right).",
        "",
    ]
    headers = ["A", "B", "common", "dropped A/B", "F1 A - B", "AUC A - B", "DeLong p"]
    headers += ["McNemar p", "b/c"]
    rows = []
    for pair in pairs:
        cells = [pair["a"], pair["b"], str(pair["n_common"])]
        cells.append(f"{pair['n_only_a']}/{pair['n_only_b']}")
        if pair["bootstrap"] is None:
            rows.append([*cells, *([MISSING] * 5)])
            continue
        boot, delong, mcn = pair["bootstrap"], pair["delong"], pair["mcnemar"]
        cells += [
            _with_ci(boot["f1"]["difference"], boot["f1"]),
            _with_ci(boot["auc"]["difference"], boot["auc"]),
            format_p(delong["p"]),
            format_p(mcn["p"]),
            f"{mcn['b']}/{mcn['c']}",
        ]
        rows.append(cells)
    out += [md_table(headers, rows, right=set(range(2, len(headers)))), ""]
    notes = []
    for pair in pairs:
        why = pair["reason"] or (pair["delong"] or {}).get("reason")
        if why:
            notes.append(f"- {pair['a']} vs {pair['b']}: {why}.")
    if len(pairs) > 1:
        notes.append(
            f"- {len(pairs)} comparisons; the p-values are not corrected for multiplicity."
        )
    return out + ([*notes, ""] if notes else [])


def _point_cells(point: dict[str, Any]) -> list[str]:
    if point.get("impossible"):
        return ["impossible", MISSING, MISSING, MISSING]
    return [fmt(point["threshold"]), fmt(point["tpr"]), fmt(point["fpr"]), fmt(point["f1"])]


def _operating_section(result: dict[str, Any], head: str) -> list[str]:
    target = f"{result['fpr_target']:.0%}"
    out = [
        f"{head} Operating points",
        "",
        f"At the run threshold {result['threshold']:g}, at the F1-max threshold and at the lowest "
        f"threshold with FPR <= {target}, on each model's scored tracks. The F1-max and "
        f"FPR <= {target} thresholds are diagnostics chosen on the evaluated data (optimistic, "
        "not scores to rank by); `impossible` marks a point no threshold reaches.",
        "",
    ]
    headers = ["model", "n", "TPR @ run", "FPR @ run", "F1 @ run", "F1-max thr", "F1-max TPR"]
    headers += ["F1-max FPR", "F1-max", f"FPR<={target} thr", f"TPR @{target}", f"FPR @{target}"]
    headers.append(f"F1 @{target}")
    rows = []
    reasons = []
    for model, ops in sorted(result["operating_points"].items()):
        run = _point_cells(ops["at_threshold"])[1:]
        cells = [model, str(ops["n"]), *run, *_point_cells(ops["best_f1"])]
        cells += _point_cells(ops["at_fpr05"])
        rows.append(cells)
        for name, key in (("F1-max", "best_f1"), (f"FPR<={target}", "at_fpr05")):
            if ops[key].get("impossible"):
                reasons.append(f"- {model}, {name}: impossible ({ops[key]['reason']}).")
    out += [md_table(headers, rows, right=set(range(1, len(headers)))), ""]
    return out + ([*reasons, ""] if reasons else [])


def _calibration_section(result: dict[str, Any], head: str, figure: str | None) -> list[str]:
    blocks = result["calibration"]
    n_bins = max((len(b["bins"]) for b in blocks.values()), default=0)
    out = [
        f"{head} Calibration",
        "",
        f"Whether P(AI) reads as a probability: Brier score (mean squared error) and expected "
        f"calibration error over {n_bins} equal-width bins (ECE: bin-size weighted "
        "|mean P(AI) - observed AI fraction|), on scored tracks. Lower is better for both.",
        "",
    ]
    rows = []
    for model, block in sorted(blocks.items()):
        filled = sum(1 for b in block["bins"] if b["count"])
        rows.append([model, str(block["n"]), fmt(block["brier"]), fmt(block["ece"]), str(filled)])
    headers = ["model", "n", "Brier", "ECE", "non-empty bins"]
    out += [md_table(headers, rows, right=set(range(1, len(headers)))), ""]
    reasons = [f"- {m}: {b['reason']}." for m, b in sorted(blocks.items()) if b.get("reason")]
    if reasons:
        out += [*reasons, ""]
    if figure:
        out += [f"![Reliability diagram]({figure})", ""]
    return out


def statistics_markdown(
    result: dict[str, Any], *, level: int = 2, figure: str | None = None
) -> str:
    """Markdown of :func:`build_statistics`: intervals, paired comparisons, operating points
    and calibration, each a heading of depth `level` (2: ``##``). `figure` (e.g.
    ``"reliability.png"``) adds an image link under the calibration table. Ends in a newline.
    """
    head = "#" * level
    lines = [
        *_intervals_section(result, head),
        *_pairs_section(result, head),
        *_operating_section(result, head),
        *_calibration_section(result, head, figure),
    ]
    return "\n".join(lines)
