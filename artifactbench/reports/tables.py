"""Markdown renderings of metrics and sanity results: aligned tables, 3 decimals, no timestamps."""

from __future__ import annotations

from typing import Any

import pandas as pd

from artifactbench.predictions import STAGES
from artifactbench.reports.format import MISSING, fmt, interval
from artifactbench.reports.leakage import mark_text

TOP_ERRORS = 5
ERROR_WIDTH = 100


def md_table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A pipe table with padded columns; column indexes in `right` are right-aligned."""
    right = right or set()
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    widths = [max(w, 3) for w in widths]

    def line(cells: list[str]) -> str:
        padded = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(headers), "| " + " | ".join(rule) + " |", *map(line, rows)])


def _escape(text: str) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= ERROR_WIDTH else flat[: ERROR_WIDTH - 3] + "..."


def error_summary(preds: pd.DataFrame) -> list[dict[str, Any]]:
    """The most frequent failure messages per model and stage (count, then message, ordered)."""
    failed = preds[preds["status"] != "scored"]
    if failed.empty:
        return []
    keyed = pd.DataFrame(
        {
            "model": failed["model"].astype(str),
            "stage": failed["stage"].fillna("unknown").astype(str),
            "error": failed["error"].fillna("").astype(str),
        }
    )
    counts = keyed.value_counts().reset_index(name="count")
    counts = counts.sort_values(
        ["model", "count", "stage", "error"], ascending=[True, False, True, True], kind="mergesort"
    )
    top = counts.groupby("model", sort=True).head(TOP_ERRORS)
    return [
        {"model": r.model, "stage": r.stage, "count": int(r.count), "error": r.error}
        for r in top.itertuples(index=False)
    ]


def sanity_table(sanity: dict[str, Any]) -> str:
    """Rows subsets, columns models (rate and PASS/FAIL); then the FAIL / N line."""
    models = sorted(sanity["models"])
    marks = sanity.get("seen_in_training") or {}
    rows = []
    for name in sanity["subset_order"]:
        info = sanity["subsets"][name]
        rule = info["rule"] + (" (default)" if info["default_rule"] else "")
        cells = [name, info["label"], rule, str(info["n_tracks"])]
        for model in models:
            row = sanity["models"][model]["subsets"][name]
            verdict = "PASS" if row["pass"] else "**FAIL**"
            failed = f" ({row['n_failed']} failed)" if row["n_failed"] else ""
            seen = mark_text(marks.get(model, {}).get(name))
            cells.append(f"{fmt(row['rate'])} {verdict}{failed}" + (f" ({seen})" if seen else ""))
        rows.append(cells)
    table = md_table(["subset", "label", "rule", "n", *models], rows, right={3})
    summary = ", ".join(f"{m} **{sanity['models'][m]['summary']}**" for m in models)
    parts = [table, "", f"FAIL / N: {summary}"]
    if sanity.get("audits_note"):
        parts += ["", sanity["audits_note"]]
    if sanity["absent_subsets"]:
        parts += ["", "Declared but absent from this run: " + ", ".join(sanity["absent_subsets"])]
    return "\n".join(parts)


def run_title(results: dict[str, Any]) -> str:
    """Bench, split and threshold of a metrics or sanity dict."""
    bench, split, thr = results["bench"], results["split"], results["threshold"]
    return f"bench `{bench}`, split `{split}`, threshold {thr:g}"


def sanity_markdown(sanity: dict[str, Any]) -> str:
    """The whole ``sanity.md`` file."""
    head = f"# Sanity protocol: {run_title(sanity)}"
    return "\n".join([head, "", sanity["note"], "", sanity_table(sanity), ""])


def cost_model_line(cost: dict[str, Any]) -> str:
    """One sentence stating the detection cost model (a ``cost_model`` block) and how AI and
    real map onto ASVspoof 5's attack and bona fide classes."""
    return (
        f"minDCF, actDCF and Cllr follow ASVspoof 5 with AI as the attack class and real as bona "
        f"fide: P_attack {cost['p_attack']:g}, C_miss {cost['c_miss']:g} (a real track called "
        f"AI), C_fa {cost['c_fa']:g} (an AI track called real), costs divided by "
        f"{cost['normaliser']:g} (the better trivial system scores 1). minDCF takes the best "
        f"threshold on scored tracks; actDCF reads logit(P(AI)) as an LLR and calls AI when "
        f"P(AI) > {cost['act_dcf_prob_threshold']:.3f}; Cllr is in bits (1: uninformative), "
        "minCllr (in brackets) after the best monotone recalibration."
    )


def _cllr_cell(block: dict[str, Any]) -> str:
    """Cllr with minCllr in brackets."""
    return f"{fmt(block['cllr'])} ({fmt(block['min_cllr'])})"


def _metric_row(model: str, params: str | None, m: dict[str, Any], block: dict[str, Any]) -> list:
    return [
        model,
        params or MISSING,
        str(m["n"]),
        str(m["n_scored"]),
        str(m["n_failed"]),
        fmt(block["f1"]),
        fmt(block["precision"]),
        fmt(block["recall"]),
        fmt(block["fpr"]),
        fmt(block["accuracy"]),
        fmt(block["auc"]),
        fmt(block["eer"]),
        fmt(block["average_precision"]),
        f"{fmt(block['tpr_at_fpr05'])} @ {fmt(block['threshold_at_fpr05'])}",
        fmt(block["min_dcf"]),
        fmt(block["act_dcf"]),
        _cllr_cell(block),
    ]


def metrics_table(metrics: dict[str, Any]) -> str:
    """One row per model: counts and every point metric on its scored tracks."""
    headers = [
        "model", "params", "n", "scored", "failed", "F1", "precision", "recall", "FPR",
        "accuracy", "AUC", "EER", "AP", "TPR @ thr (FPR<=5%)", "minDCF", "actDCF",
        "Cllr (min)",
    ]  # fmt: skip
    rows = [
        _metric_row(name, m.get("params"), m, m["scored"])
        for name, m in sorted(metrics["models"].items())
    ]
    return md_table(headers, rows, right=set(range(2, len(headers))))


def accounting_table(metrics: dict[str, Any]) -> str:
    """Each model on its scored tracks and under both accountings of failures."""
    headers = ["model", "population", "n", "F1", "F1 95% CI", "precision", "recall", "FPR", "AUC"]
    headers += ["minDCF", "actDCF"]
    rows = []
    for model, m in sorted(metrics["models"].items()):
        blocks = [("scored", m["scored"]), *sorted(m["accounting"].items())]
        for label, b in blocks:
            rows.append(
                [
                    model,
                    label,
                    str(b["n"]),
                    fmt(b["f1"]),
                    interval(b["ci"]["f1"]),
                    fmt(b["precision"]),
                    fmt(b["recall"]),
                    fmt(b["fpr"]),
                    fmt(b["auc"]),
                    fmt(b["min_dcf"]),
                    fmt(b["act_dcf"]),
                ]
            )
    return md_table(headers, rows, right=set(range(2, len(headers))))


def failure_table(metrics: dict[str, Any]) -> str:
    """Failures per model and stage."""
    stages = [*STAGES, "unknown"]
    rows = []
    for model, m in sorted(metrics["models"].items()):
        rows.append([model, *(str(m["failures"][s]) for s in stages), str(m["n_failed"])])
    return md_table(["model", *stages, "total"], rows, right=set(range(1, len(stages) + 2)))


def errors_table(errors: list[dict[str, Any]]) -> str:
    """The most frequent failure messages."""
    rows = [[e["model"], e["stage"], str(e["count"]), _escape(e["error"])] for e in errors]
    return md_table(["model", "stage", "count", "error"], rows, right={2})


# Keys an accounting block adds to the metrics of the population it describes.
_ACCOUNTING_KEYS = frozenset({"n_dropped", "n_imputed", "threshold_free_on"})


def accountings_differ(metrics: dict[str, Any]) -> list[str]:
    """Models (sorted) for which an accounting of failures differs from the scored-track
    metrics, found by comparing the blocks themselves: a failed track changes ``impute``, and
    a track any model failed on or lacks a row for changes ``exclude``."""
    differ = []
    for model, m in sorted(metrics["models"].items()):
        for block in m["accounting"].values():
            own = {k: v for k, v in block.items() if k not in _ACCOUNTING_KEYS}
            if own != m["scored"]:
                differ.append(model)
                break
    return differ


def report_markdown(
    metrics: dict[str, Any],
    sanity: dict[str, Any],
    errors: list[dict[str, Any]],
    paper: str = "",
) -> str:
    """The whole ``report.md``: metrics, intervals, accountings, failures, sanity, then the
    paper-layout sections (`paper`, empty for benches the paper does not report)."""
    thr = metrics["threshold"]
    any_failed = any(m["n_failed"] for m in metrics["models"].values())
    out = [
        f"# ArtifactBench report: {run_title(metrics)}",
        "",
        f"Rebuilt from `predictions.parquet` alone: {len(metrics['models'])} model(s), "
        f"{metrics['n_tracks']} track(s), seed {metrics['seed']}. A track is called AI when "
        f"P(AI) >= {thr:g}; AI is the positive class. `n/a` marks an undefined value "
        "(zero denominator, or a class missing).",
        "",
        "## Metrics on scored tracks",
        "",
        "EER is interpolated on the ROC curve; AP is average precision; TPR @ thr is "
        f"the TPR at the lowest threshold whose FPR <= {metrics['fpr_target']:.0%}, and that "
        "threshold. " + cost_model_line(metrics["cost_model"]),
        "",
        metrics_table(metrics),
        "",
        "## Failures",
        "",
        failure_table(metrics),
        "",
    ]
    if any_failed:
        out += ["Most frequent failure messages:", "", errors_table(errors), ""]
    differ = accountings_differ(metrics)
    if differ:
        same = sorted(set(metrics["models"]) - set(differ))
        which = f"The accountings differ from the scored-track metrics for {', '.join(differ)}"
        which += f"; for {', '.join(same)} they equal them." if same else "."
        out += [
            "### Both accountings of failures",
            "",
            f"- `exclude`: only the {metrics['n_common_scored']} track(s) scored by every model; "
            "a track any model failed on or lacks a row for is dropped from every model, so "
            "denominators match.",
            "- `impute`: every row of the model; a failed AI track counts as a miss (FN) and a "
            "failed real track as a false positive (FP); actDCF counts them as errors too "
            "(ASVspoof's false alarm and miss). Its AUC, minDCF and Cllr are computed on scored "
            "tracks only.",
            "",
            which,
            "",
            accounting_table(metrics),
            "",
        ]
    else:
        out += [
            "No track failed or is missing: both accountings equal the scored-track metrics.",
            "",
        ]
    out += ["## Sanity protocol", "", sanity["note"], "", sanity_table(sanity), ""]
    if paper:
        out += [paper]
    return "\n".join(out)
