"""Markdown of :func:`~artifactbench.reports.statistics.build_statistics`: the intervals,
paired comparisons, operating points and calibration sections that report.md appends.

A pure function of the JSON-safe dict that statistics.json holds, so rebuilding the report from
the same predictions writes the same text.
"""

from __future__ import annotations

from typing import Any

from artifactbench.analysis.metrics import CI_METRICS
from artifactbench.reports.format import MISSING, fmt, format_p, with_ci
from artifactbench.reports.tables import md_table

__all__ = ["statistics_markdown"]

# Fewer clusters than this in a label stratum make cluster-bootstrap intervals coarse.
FEW_CLUSTERS = 10
_INTERVAL_NAMES = {
    "f1": "F1", "precision": "precision", "recall": "recall", "fpr": "FPR", "auc": "AUC",
}  # fmt: skip


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
        cells += [with_ci(m["point"][k], m["ci"][k]) for k in CI_METRICS]
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
            with_ci(boot["f1"]["difference"], boot["f1"]),
            with_ci(boot["auc"]["difference"], boot["auc"]),
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
