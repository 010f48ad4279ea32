"""A recipe's run against the paper: published figure, this run's value and their difference,
from each run directory's paper.json, robustness.json, bandwidth.json or ablation.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artifactbench.recipes.recipe import Recipe


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _row(
    model: str,
    paper_name: str,
    table: str,
    metric: str,
    published: float | None,
    measured: float | None,
    note: str = "",
) -> dict[str, Any]:
    """One comparison row, with the keys of the run directories' paper_vs_run rows."""
    difference = None if published is None or measured is None else measured - published
    return {"model": model, "paper_name": paper_name, "table": table, "metric": metric,
            "published": published, "measured": measured, "difference": difference,
            "runner": None, "runner_difference": None, "note": note}  # fmt: skip


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _published(recipe: Recipe, table: str) -> list[Any]:
    from artifactbench.reports.paper_published import load_published

    return [r for r in load_published() if r.table == table and table in recipe.compare_with]


def _names(model: str) -> tuple[str, ...]:
    """The names a detector has in the paper's tables (its card's paper_name, else aliases)."""
    from artifactbench.detectors.registry import cards
    from artifactbench.reports.paper_published import paper_names

    card = cards().get(model)
    declared = {"models": {model: {"paper_name": card.paper_name if card else None}}}
    return paper_names(model, declared)


def paper_comparison(recipe: Recipe, run_dirs: list[Path]) -> list[dict[str, Any]]:
    """Published figure, this run's value and their difference for every table the recipe is
    compared with: the paper_vs_run rows a run directory already holds (paper.json), Table X
    from a codec run's robustness.json, Table XI from bandwidth.json, and the full model's
    Table VI figures against an ablation's baseline."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        paper = read_json(run_dir / "paper.json")
        section = (paper.get("sections") or {}).get("paper_vs_run") or {}
        rows += [r for r in section.get("rows", []) if r.get("table") in recipe.compare_with]
        rows += _codec_rows(recipe, read_json(run_dir / "robustness.json"))
        rows += _bandwidth_rows(recipe, read_json(run_dir / "bandwidth.json"))
        rows += _ablation_rows(recipe, read_json(run_dir / "ablation.json"))
    return rows


def _codec_rows(recipe: Recipe, robustness: dict[str, Any]) -> list[dict[str, Any]]:
    """Table X: AI TPR per codec (published metric `tpr_mp3_128` is codec `mp3-128`)."""
    measured = {(r["model"], r["codec"]): r for r in robustness.get("table_x") or []}
    rows = []
    for pub in _published(recipe, "X") if measured else []:
        codec = pub.metric.removeprefix("tpr_").replace("_", "-")
        for model in recipe.models:
            if any(_same(pub.model, n) for n in _names(model)):
                got = measured.get((model, codec))
                value = got["ai_tpr"] if got else None
                rows.append(_row(model, pub.model, "X", pub.metric, pub.value, value, pub.note))
    return rows


def _alnum(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _bandwidth_rows(recipe: Recipe, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Table XI: the AI and human means, and each published generator against the AI subsets
    whose name or generator contains it (their tracks pooled)."""
    table = record.get("table")
    if not table:
        return []
    generators = (record.get("settings") or {}).get("generators") or {}
    residual = (record.get("settings") or {}).get("residual", "")
    rows = []
    for pub in _published(recipe, "XI"):
        name = pub.model.casefold()
        if name.startswith("ai average"):
            value, model = table["ai"]["mean_hz"], "AI tracks"
        elif name.startswith("human"):
            value, model = table["real"]["mean_hz"], "real tracks"
        else:
            key = _alnum(pub.model)
            hits = [v for s, v in table["subsets"].items() if v["label"] == "ai"
                    and v["mean_hz"] is not None
                    and (key in _alnum(s) or key in _alnum(generators.get(s, "")))]  # fmt: skip
            n = sum(v["n"] for v in hits)
            value = sum(v["mean_hz"] * v["n"] for v in hits) / n if n else None
            model = f"AI subsets matching {pub.model!r} ({len(hits)})"
        note = f"{residual} residual; {pub.note}".strip("; ")
        rows.append(_row(model, pub.model, "XI", pub.metric, pub.value, value, note))
    return rows


# Ablation metrics and the published metric each one corresponds to.
_ABLATION_METRICS = {"f1": "f1", "auc": "auc", "tpr": "recall", "fpr": "fpr"}


def _ablation_rows(recipe: Recipe, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The full model of an ablation (its first row) against ArtifactNet's Table VI figures:
    Appendix B measures each channel's F1 change from there, and publishes no channel row."""
    if not record.get("rows"):
        return []
    base = record["rows"][0]
    names = _names("artifactnet")
    rows = []
    for pub in _published(recipe, "VI"):
        metric = next((m for m, p in _ABLATION_METRICS.items() if p == pub.metric), None)
        if metric is None or not any(_same(pub.model, n) for n in names):
            continue
        note = "the full 7-channel model; Appendix B's per-channel figures are not published"
        rows.append(_row(f"artifactnet-open ({base['ablation']})", pub.model, "VI", pub.metric,
                         pub.value, base.get(metric), note))  # fmt: skip
    return rows


def _digits(value: float) -> int:
    """Four decimals for rates and scores; none for figures in the hundreds (bandwidths in Hz)."""
    return 4 if abs(value) < 100 else 0


def value_cell(value: Any) -> str:
    """A published or measured value for a comparison table (reports' own formatter)."""
    from artifactbench.reports.format import fmt  # the reports package loads pandas and scipy

    if isinstance(value, float):
        return fmt(value, _digits(value))
    return fmt(value) if value is None or isinstance(value, int) else str(value).replace("|", "\\|")


def signed_cell(value: float | None) -> str:
    """A difference with its sign, as the reports write one."""
    from artifactbench.reports.format import signed

    return signed(value, _digits(value)) if isinstance(value, float) else signed(value)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain pipe table: comparison rows are read by eye and by grep, so no padding."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_markdown(recipe: Recipe, rows: list[dict[str, Any]]) -> str:
    """The comparison as a markdown table, under a line naming the recipe and what it
    reproduces; a line saying so when no published figure matched."""
    head = f"# Recipe {recipe.name}: {recipe.reproduces} ({', '.join(recipe.compare_with)})"
    if not rows:
        return f"{head}\n\nNo published figure matched this run (see its report.md).\n"
    runner = any(r.get("runner") is not None for r in rows)
    headers = ["model", "paper name", "table", "metric", "published", "measured",
               "measured - published"]  # fmt: skip
    headers += ["runner", "measured - runner"] if runner else []
    body = []
    for r in rows:
        cells = [r["model"], r["paper_name"], r["table"], r["metric"], value_cell(r["published"]),
                 value_cell(r["measured"]), signed_cell(r["difference"])]  # fmt: skip
        if runner:
            cells += [value_cell(r.get("runner")), signed_cell(r.get("runner_difference"))]
        body.append(
            [value_cell(c) if not isinstance(c, str) else c.replace("|", "\\|") for c in cells]
        )
    return f"{head}\n\n{markdown_table(headers, body)}\n"


# --- Reference outputs (the demo) ------------------------------------------------------------
