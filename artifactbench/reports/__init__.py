"""Every report of a run, rebuilt from ``predictions.parquet`` alone (no run.json, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from artifactbench.analysis.conditions import condition_matrices, run_cost_model
from artifactbench.analysis.detection_cost import CostModel
from artifactbench.analysis.metrics import BOOTSTRAP_RESAMPLES, compute_metrics
from artifactbench.analysis.sanity import evaluate_sanity
from artifactbench.analysis.transfer import transfer_results
from artifactbench.predictions import PredictionsError, read_predictions
from artifactbench.reports.conditions import conditions_markdown, plot_conditions
from artifactbench.reports.console import print_summary
from artifactbench.reports.data import canonical, json_text, write_text
from artifactbench.reports.leakage import AuditFindings, check_audits, mark_sanity
from artifactbench.reports.paper import build_paper
from artifactbench.reports.plots import plot_f1_threshold, plot_reliability, plot_roc
from artifactbench.reports.robustness import (
    WAV,
    codec_markdown,
    codec_table,
    plot_codec_probs,
    prob_spread,
    variant_metrics,
    variant_order,
    variants_markdown,
)
from artifactbench.reports.statistics import build_statistics
from artifactbench.reports.statistics_markdown import statistics_markdown
from artifactbench.reports.tables import error_summary, report_markdown, sanity_markdown
from artifactbench.reports.transfer import transfer_markdown

__all__ = [
    "NothingToReport",
    "build_results",
    "print_summary",
    "write_reports",
]

DEFAULT_THRESHOLD = 0.5
DEFAULT_SEED = 0


class NothingToReport(PredictionsError):
    """A predictions table with no row of any model: there is no table to build."""


def primary_rows(preds: pd.DataFrame, meta: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the run's primary variant (its own tables describe that one; the other
    variants are compared with it), and the variants in the run's order ([] without any).

    Raises :class:`NothingToReport` when the table has no row, i.e. no model was scored.
    """
    if preds.empty:
        raise NothingToReport("no scored model: nothing to report")
    if "variant" not in preds.columns:
        return preds, []
    order = variant_order(preds, meta)
    return preds[preds["variant"].astype(str) == order[0]], order


def build_results(
    preds: pd.DataFrame, meta: dict[str, Any], seed: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, sanity) in their canonical JSON form, from a predictions table and its metadata,
    on the primary variant's rows.

    The threshold, subset rules and detection cost model (``cost_model``, ASVspoof 5's when
    absent) come from the metadata; `seed` overrides the metadata's seed.
    """
    preds, order = primary_rows(preds, meta)
    variant = order[0] if order else None
    threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
    use_seed = int(seed if seed is not None else meta.get("seed", DEFAULT_SEED))
    cost = CostModel.from_json(meta.get("cost_model"))
    metrics = compute_metrics(preds, threshold, use_seed, cost=cost)
    metrics["bench"] = meta.get("bench")
    metrics["split"] = meta.get("split")
    metrics["variant"] = variant
    declared = meta.get("models") or {}
    for model, block in metrics["models"].items():
        block["params"] = (declared.get(model) or {}).get("params")
    sanity = evaluate_sanity(preds, threshold, meta.get("subsets"))
    sanity["bench"] = metrics["bench"]
    sanity["split"] = metrics["split"]
    sanity["variant"] = variant
    return canonical(metrics), canonical(sanity)


def sanity_text(predictions_path: Path) -> str:
    """The sanity table of a run as markdown, from its predictions file alone."""
    _, sanity = build_results(*read_predictions(predictions_path))
    return sanity_markdown(sanity)


def write_reports(
    predictions_path: Path,
    out_dir: Path,
    seed: int | None = None,
    transfer: dict[str, Any] | None = None,
    cost: dict[str, float] | None = None,
    audits: Sequence[AuditFindings] = (),
) -> dict[str, Path]:
    """Write metrics.json, sanity.json, sanity.md, report.md, roc.png and f1_threshold.png,
    and paper.json when the bench is one the paper reports (SONICS, ArtifactBench). A run with
    several variants (transform chains) is reported on its primary variant, and robustness.json
    plus a report section compare the variants (codec runs: Table X, codec_probs.png), with the
    subset x variant condition matrices (EER, minDCF, TPR/FPR; conditions.png).
    statistics.json, reliability.png and their report sections add clustered intervals, paired
    model comparisons, operating points and calibration. A transfer record (a threshold or a
    calibration chosen on another run: the metadata's ``transfer``, each kind replaced by
    `transfer`'s when given) adds metrics.json's ``transfer`` block and its report section.
    `cost` replaces fields of the metadata's detection cost model (p_attack, c_miss, c_fa).
    `audits` (leakage audits' findings) mark sanity cells holding tracks a model was trained on.

    Text outputs are byte-identical when rebuilt from the same parquet. Returns file name -> path.
    """
    predictions_path, out_dir = Path(predictions_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    every, meta = read_predictions(predictions_path)
    check_audits(audits, meta)
    if cost:
        meta = {**meta, "cost_model": {**(meta.get("cost_model") or {}), **cost}}
    if transfer:
        meta = {**meta, "transfer": {**(meta.get("transfer") or {}), **transfer}}
    preds, order = primary_rows(every, meta)
    metrics, sanity = build_results(preds, meta, seed)
    sanity = mark_sanity(sanity, preds, meta, audits)
    if meta.get("transfer"):
        metrics["transfer"] = canonical(transfer_results(preds, meta, metrics["threshold"]))
    aucs = {model: m["scored"]["auc"] for model, m in metrics["models"].items()}
    paper = build_paper(preds, meta, metrics, sanity)
    texts = {
        "metrics.json": json_text(metrics),
        "sanity.json": json_text(sanity),
        "sanity.md": sanity_markdown(sanity),
        "report.md": report_markdown(
            metrics, sanity, error_summary(preds), paper.markdown() if paper else ""
        ),
    }
    if paper is not None:
        texts["paper.json"] = json_text(paper.to_json())
    use_seed = int(seed if seed is not None else meta.get("seed", DEFAULT_SEED))
    statistics = build_statistics(preds, metrics["threshold"], use_seed, BOOTSTRAP_RESAMPLES)
    texts["statistics.json"] = json_text(statistics)
    texts["report.md"] += "\n" + statistics_markdown(statistics, figure="reliability.png")
    codec_run = bool(order) and all(v.startswith("codec:") for v in order)
    if len(order) > 1:
        compared = variant_metrics(every, metrics["threshold"], order)
        robustness: dict[str, Any] = {"primary": order[0], "order": order, "variants": compared}
        section = variants_markdown(compared, order[0])
        if codec_run:
            reference = WAV if WAV in order else order[0]
            robustness["reference"] = reference
            robustness["table_x"] = codec_table(compared, reference)
            robustness["prob_spread"] = prob_spread(every, order)
            section = codec_markdown(robustness["table_x"], robustness["prob_spread"], reference)
        robustness["matrices"] = condition_matrices(
            every, metrics["threshold"], order, meta.get("subsets"), run_cost_model(meta)
        )
        texts["robustness.json"] = json_text(robustness)
        texts["report.md"] += "\n" + section + "\n" + conditions_markdown(robustness["matrices"])
    if "transfer" in metrics:
        texts["report.md"] += "\n" + transfer_markdown(metrics["transfer"])
    paths = {name: write_text(out_dir / name, text) for name, text in texts.items()}
    if codec_run and len(order) > 1:
        paths["codec_probs.png"] = plot_codec_probs(every, order, out_dir / "codec_probs.png")
    if len(order) > 1:
        paths["conditions.png"] = plot_conditions(
            robustness["matrices"], out_dir / "conditions.png"
        )
    paths["roc.png"] = plot_roc(preds, aucs, out_dir / "roc.png")
    paths["reliability.png"] = plot_reliability(
        statistics["calibration"], out_dir / "reliability.png"
    )
    paths["f1_threshold.png"] = plot_f1_threshold(
        preds, metrics["threshold"], out_dir / "f1_threshold.png"
    )
    return paths
