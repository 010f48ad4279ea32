"""The paper's published figures beside this run's: which benches and models the paper
reports, the figures it publishes (the top-level ``reports/published.csv``, matched by paper
name, given in the run's metadata or by a built-in alias of the card id) and the "Paper versus
this run" section with measured - published for every matched figure.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from artifactbench.benches.catalog import AI_GROUPS, REAL_GROUPS
from artifactbench.reports.format import fmt, signed
from artifactbench.reports.paper_layouts import POINT_METRICS, Section, pool_groups
from artifactbench.reports.tables import md_table

ARTIFACTBENCH = "artifactbench"
SONICS = "sonics"
PAPER_SPLIT = "test"
PAPER_THRESHOLD = 0.5
RUNNER = "runner"

# Card ids of the published detectors and the names the paper's tables give them; an id maps
# to every version the tables use (the table decides which one a row is about).
ALIASES: dict[str, tuple[str, ...]] = {
    "artifactnet": ("ArtifactNet v9.4", "ArtifactNet v9.5"),
    "spectttra-alpha-120s": ("SpecTTTra alpha-120s",),
    "clam": ("CLAM",),
    "fakeprint": ("fakeprint",),
}
# Group metrics of Tables VIII / IX and the catalog group each one pools.
GROUP_METRICS: dict[str, str] = {
    "tpr_group_sonics": "SONICS",
    "tpr_group_mom": "MoM",
    "tpr_group_aime": "AIME",
    "tpr_group_latest_cdn": "latest CDN",
    "fpr_group_sonics_real": "SONICS real",
    "fpr_group_mom_real": "MoM real",
    "fpr_group_hardneg": "hard negatives",
}
# Which accounting block of metrics.json a published table's point metrics correspond to.
TABLE_ACCOUNTING: dict[str, str] = {"IV": "impute", "IV-A": "exclude", "VI": "impute"}
COUNT_METRICS: frozenset[str] = frozenset({"fail_count"})
METRIC_NAMES: dict[str, str] = {
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "fpr": "FPR",
    "auc": "AUC",
    "fail_count": "FAIL",
    "tpr_at_fpr_5pct": "TPR at FPR <= 5%",
    **{m: f"{m[:3].upper()} {group}" for m, group in GROUP_METRICS.items()},
}
# What each published table was measured on (from the paper's captions and Appendix A).
POPULATIONS: dict[str, str] = {
    "IV": "SONICS test, n = 23,288 (10,510 real)",
    "IV-A": "SONICS test less the 11 tracks CLAM failed on, n = 23,277",
    "VI": "ArtifactBench bench_origin=test, n = 2,263 (1,388 AI + 875 real)",
    "VII": "the 28 ArtifactBench subsets",
    "VIII": "the 22 AI subsets of ArtifactBench test, in 4 groups",
    "IX": "the 6 real subsets of ArtifactBench test, in 3 groups",
    "IV-I": "ArtifactBench bench_origin=test",
    RUNNER: "ArtifactBench, the reference runner's published results file, n = 2,104",
}


@dataclass(frozen=True)
class Published:
    """One published figure (rates are fractions)."""

    table: str
    bench: str
    split: str
    model: str
    metric: str
    value: float | int
    note: str


@lru_cache(maxsize=1)
def load_published() -> tuple[Published, ...]:
    """The published figures shipped with the package, in file order."""
    path = resources.files("artifactbench.data.reports").joinpath("published.csv")
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    return tuple(
        Published(**{**row, "value": _number(row["value"], row["metric"])}) for row in rows
    )


def _number(text: str, metric: str) -> float | int:
    """Counts (FAIL) as int so their differences print as whole numbers."""
    return int(float(text)) if metric in COUNT_METRICS else float(text)


def paper_bench(preds: pd.DataFrame, meta: dict[str, Any]) -> str | None:
    """``artifactbench`` or ``sonics`` when the run is on a bench the paper reports, else None.

    The metadata's bench name decides (``artifactbench:PATH`` counts as ``artifactbench``);
    without one, the table's bench column when it holds a single bench.
    """
    name = meta.get("bench")
    if not name:
        names = sorted(set(preds["bench"].astype(str)))
        name = names[0] if len(names) == 1 else None
    kind = str(name).split(":", 1)[0].lower() if name else None
    return kind if kind in (ARTIFACTBENCH, SONICS) else None


def paper_names(model: str, meta: dict[str, Any]) -> tuple[str, ...]:
    """Names a model may have in the published tables: its ``paper_name``, else the alias map."""
    declared = ((meta.get("models") or {}).get(model) or {}).get("paper_name")
    return (str(declared),) if declared else ALIASES.get(model, ())


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _value(value: float | int | None, metric: str) -> str:
    if value is not None and metric in COUNT_METRICS:
        return str(int(value))
    return fmt(value, 4)


# --- Paper versus this run ----------------------------------------------------------------------


def _measure(
    row: Published,
    model: str,
    metrics: dict[str, Any],
    sanity: dict[str, Any],
    groups: dict[str, Any],
) -> float | int | None:
    """This run's value of a published figure, or None when the run has no counterpart."""
    m = metrics["models"][model]
    if row.metric == "fail_count":
        return sanity["models"][model]["n_fail"]
    if row.metric == "tpr_at_fpr_5pct":
        return m["scored"]["tpr_at_fpr05"]
    if row.metric in GROUP_METRICS:
        group = groups.get(GROUP_METRICS[row.metric])
        return None if group is None else group["models"][model]["rate"]
    accounting = TABLE_ACCOUNTING.get(row.table, "impute")
    if row.metric in POINT_METRICS:
        return m["accounting"][accounting][row.metric]
    return None


def _diff(measured: float | int | None, published: float | int | None) -> float | int | None:
    if measured is None or published is None:
        return None
    return measured - published


def comparison_rows(
    kind: str, meta: dict[str, Any], metrics: dict[str, Any], sanity: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Matched (model, published figure) pairs with deltas, and the models with no published row.

    Rows follow the published file's order per model. The reference runner's figure of the same
    metric rides along as a second reference (for Tables VI / VII); a runner figure with no paper
    row (fakeprint) gets a row of its own.
    """
    published = [r for r in load_published() if r.bench == kind]
    runner = [r for r in published if r.table == RUNNER]
    paper = [r for r in published if r.table != RUNNER and _split(r.split) == PAPER_SPLIT]
    groups = {
        **pool_groups(sanity, AI_GROUPS, "ai")["groups"],
        **pool_groups(sanity, REAL_GROUPS, "real")["groups"],
    }
    rows, unmatched = [], []
    for model in sorted(metrics["models"]):
        names = paper_names(model, meta)
        mine = [r for r in paper if any(_same_name(r.model, n) for n in names)]
        extra = [r for r in runner if any(_same_name(r.model, n) for n in names)]
        used: set[tuple[str, str]] = set()
        for r in mine:
            if r.metric not in METRIC_NAMES:
                continue
            ref = next((x for x in extra if x.model == r.model and x.metric == r.metric), None)
            if ref is not None and r.table in ("VI", "VII"):
                used.add((ref.model, ref.metric))
            else:
                ref = None
            measured = _measure(r, model, metrics, sanity, groups)
            rows.append(_comparison_row(model, r, r, ref, measured))
        for ref in extra:
            if (ref.model, ref.metric) not in used:
                measured = _measure(ref, model, metrics, sanity, groups)
                rows.append(_comparison_row(model, ref, None, ref, measured))
        if not any(r["model"] == model for r in rows):
            unmatched.append(model)
    return rows, unmatched


def _comparison_row(
    model: str,
    source: Published,
    row: Published | None,
    ref: Published | None,
    measured: float | int | None,
) -> dict[str, Any]:
    """One line of the comparison: `row` is the paper's figure, `ref` the reference runner's."""
    published = row.value if row else None
    runner = ref.value if ref else None
    return {
        "model": model,
        "paper_name": source.model,
        "table": row.table if row else RUNNER,
        "metric": source.metric,
        "published": published,
        "measured": measured,
        "difference": _diff(measured, published),
        "runner": runner,
        "runner_difference": _diff(measured, runner),
        "note": source.note,
    }


def _source_name(table: str) -> str:
    if table == RUNNER:
        return "Reference runner"
    return f"Sec. {table}" if table == "IV-I" else f"Table {table}"


def _split(split: str) -> str:
    """``bench_origin=test`` and ``test`` name the same partition."""
    return split.removeprefix("bench_origin=")


def runner_gap(kind: str) -> list[dict[str, Any]]:
    """Published reference-runner figures next to the paper's Table VI / VII for the same model."""
    published = [r for r in load_published() if r.bench == kind]
    paper = {(r.model, r.metric): r for r in published if r.table in ("VI", "VII")}
    out = []
    for ref in published:
        row = paper.get((ref.model, ref.metric)) if ref.table == RUNNER else None
        if row is not None:
            out.append(
                {
                    "model": ref.model,
                    "metric": ref.metric,
                    "table": row.table,
                    "paper": row.value,
                    "runner": ref.value,
                    "runner_minus_paper": ref.value - row.value,
                    "runner_population": ref.split,
                }
            )
    return out


def _gap_line(gap: list[dict[str, Any]]) -> str:
    by_model: dict[str, list[str]] = {}
    for g in gap:
        metric = g["metric"]
        paper, runner = f"{g['paper']:g}", f"{g['runner']:g}"
        shown = signed(g["runner_minus_paper"], 3)
        by_model.setdefault(g["model"], []).append(
            f"{METRIC_NAMES[metric]} {runner} vs {paper} ({shown})"
        )
    items = "; ".join(f"{model}: {', '.join(parts)}" for model, parts in by_model.items())
    population = ", ".join(sorted({g["runner_population"] for g in gap}))
    return (
        "The paper's Tables VI / VII and the published reference runner's results file "
        f"({population}, threshold 0.5) disagree; runner vs paper (runner - paper): {items}."
    )


def comparison_section(
    kind: str,
    preds: pd.DataFrame,
    meta: dict[str, Any],
    metrics: dict[str, Any],
    sanity: dict[str, Any],
) -> Section:
    """Published figure, this run's value and measured - published, for every matched model."""
    split = meta.get("split")
    gap = runner_gap(kind)
    data: dict[str, Any] = {"applies": split == PAPER_SPLIT, "rows": [], "unmatched": []}
    if gap:
        data["runner_gap"] = gap
    parts: list[str] = []
    if split != PAPER_SPLIT:
        parts.append(
            f"The published figures are for split `{PAPER_SPLIT}`; this run is split `{split}`, "
            "so no figure is compared."
        )
    else:
        rows, unmatched = comparison_rows(kind, meta, metrics, sanity)
        data["rows"], data["unmatched"] = rows, unmatched
        tracks = preds[["bench", "track_id", "label"]].drop_duplicates()
        n_ai = int((tracks["label"] == "ai").sum())
        parts.append(
            f"This run: {len(tracks)} tracks ({n_ai} AI + {len(tracks) - n_ai} real). "
            "Difference = measured - published. Point metrics of Tables IV and VI use the "
            "`impute` accounting, IV-A `exclude`; FAIL counts the run's subsets."
        )
        if metrics["threshold"] != PAPER_THRESHOLD:
            parts[-1] += (
                f" This run's threshold {metrics['threshold']:g} is not the paper's "
                f"{PAPER_THRESHOLD:g}."
            )
        if rows:
            parts += ["", _comparison_table(rows, with_runner=kind == ARTIFACTBENCH)]
            parts += ["", "Published populations:"]
            parts += [
                f"- {_source_name(t)}: {POPULATIONS[t]}."
                for t in POPULATIONS
                if any(r["table"] == t or (t == RUNNER and r["runner"] is not None) for r in rows)
            ]
        if unmatched:
            parts += [
                "",
                "No published figure for: "
                + ", ".join(unmatched)
                + " (set `paper_name` on the card to match one).",
            ]
    if gap:
        parts += ["", _gap_line(gap)]
    return Section("paper_vs_run", "Paper versus this run", "\n".join(parts), data)


def _comparison_table(rows: list[dict[str, Any]], with_runner: bool) -> str:
    headers = ["model", "paper name", "table", "metric", "published", "measured"]
    headers.append("measured - published")
    if with_runner:
        headers += ["runner", "measured - runner"]
    headers.append("published note")
    body = []
    for r in rows:
        metric = r["metric"]
        cells = [
            r["model"],
            r["paper_name"],
            r["table"],
            METRIC_NAMES[metric],
            _value(r["published"], metric),
            _value(r["measured"], metric),
            signed(r["difference"]),
        ]
        if with_runner:
            cells += [_value(r["runner"], metric), signed(r["runner_difference"])]
        cells.append(r["note"] or "")
        body.append(cells)
    right = set(range(4, len(headers) - 1))
    return md_table(headers, body, right=right)
