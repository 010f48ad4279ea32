"""The ArtifactNet paper's table layouts (IV, IV-A, VI-IX), rebuilt from one run's predictions.

Numbers come from the run's own results wherever they exist: Tables IV / VI read the
``impute`` and ``exclude`` blocks of ``metrics.json``, Table VII and the group pools of Tables
VIII / IX read the per-subset counts of ``sanity.json``, so no layout can disagree with those
files. Breakdowns by a track column follow the sanity convention too: a failed track counts as
misclassified. Published figures (``data/reports/published.csv``) are matched by paper name,
given in the run's metadata or by a built-in alias of the card id.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.metrics import confusion, rates
from artifactbench.benches.catalog import AI_GROUPS, REAL_GROUPS
from artifactbench.reports.data import canonical
from artifactbench.reports.tables import MISSING, fmt, md_table

ARTIFACTBENCH = "artifactbench"
SONICS = "sonics"
PAPER_SPLIT = "test"
PAPER_THRESHOLD = 0.5
RUNNER = "runner"
OTHER_GROUP = "other (outside the paper's groups)"
MISSING_VALUE = "(missing)"
FAILED_NOTE = (
    "A failed track counts as misclassified, as in the sanity protocol: a failed AI track is a "
    "miss and a failed real track a false positive."
)

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
POINT_METRICS: tuple[str, ...] = ("f1", "precision", "recall", "fpr", "auc")
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
LENGTH_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<= 60 s", -np.inf, 60.0),
    ("60-120 s", 60.0, 120.0),
    ("> 120 s", 120.0, np.inf),
)
UNKNOWN_BAND = "unknown length"
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
# SONICS track columns broken down by value: (column, JSON key, heading).
BREAKDOWNS: tuple[tuple[str, str, str], ...] = (
    ("fake_type", "sonics_by_fake_type", "SONICS: by fake type"),
    ("artist_overlap", "sonics_by_artist_overlap", "SONICS: seen and unseen singers"),
)


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


@dataclass(frozen=True)
class Section:
    """One rendered table: JSON key, markdown heading and body, and its data for paper.json."""

    key: str
    heading: str
    text: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Paper:
    """Every paper section that applies to one run."""

    bench: str
    split: str | None
    threshold: float
    sections: tuple[Section, ...]
    failures: dict[str, dict[str, int]]

    def markdown(self) -> str:
        """The text appended to report.md."""
        split = f"split `{self.split}`" if self.split else "no split recorded"
        out = [
            f"## Paper tables ({self.bench}, {split})",
            "",
            "The ArtifactNet paper's table layouts, computed from this run's predictions at "
            f"threshold {self.threshold:g}. Tables IV and VI reuse the accounting blocks of "
            f"metrics.json; the other tables count tracks. {FAILED_NOTE}",
        ]
        if self.failures:
            out[-1] += " Failures by model and stage are in the Failures section above."
        out.append("")
        for section in self.sections:
            out += [f"### {section.heading}", "", section.text, ""]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        """The content of paper.json, in canonical form (floats rounded as in metrics.json)."""
        out: dict[str, Any] = {
            "bench": self.bench,
            "split": self.split,
            "threshold": self.threshold,
            "failed_tracks": FAILED_NOTE,
            "sections": {s.key: {"heading": s.heading, **s.data} for s in self.sections},
        }
        if self.failures:
            out["failures"] = self.failures
        return canonical(out)


@lru_cache(maxsize=1)
def load_published() -> tuple[Published, ...]:
    """The published figures shipped with the package, in file order."""
    path = resources.files("artifactbench.data").joinpath("reports/published.csv")
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


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _rate_cell(cell: dict[str, Any]) -> str:
    """``0.950 (19/20)``, with the failures that were counted as misclassified."""
    failed = f", {cell['n_failed']} failed" if cell["n_failed"] else ""
    return f"{fmt(cell['rate'])} ({cell['k']}/{cell['n']}{failed})"


def _signed(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:+d}"
    # Adding 0.0 turns a rounded -0.0 into 0.0, so no "-0.0000" appears.
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def _value(value: float | int | None, metric: str) -> str:
    if value is not None and metric in COUNT_METRICS:
        return str(int(value))
    return fmt(value, 4)


def _calls(preds: pd.DataFrame, threshold: float, extra: pd.Series) -> pd.DataFrame:
    """Per row: model, track key, AI label, failed, the call with failures as misclassified, and
    `extra` (the column a breakdown groups by) as ``key``."""
    failed = (preds["status"] != "scored").to_numpy()
    is_ai = (preds["label"].astype(str) == "ai").to_numpy()
    prob = pd.to_numeric(preds["prob"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        called = np.where(failed, ~is_ai, prob >= threshold)
    return pd.DataFrame(
        {
            "model": preds["model"].astype(str).to_numpy(),
            "track": (preds["bench"].astype(str) + "\0" + preds["track_id"].astype(str)).to_numpy(),
            "ai": is_ai,
            "failed": failed,
            "called_ai": called.astype(bool),
            "key": extra.to_numpy(),
        }
    )


def _tally(rows: pd.DataFrame) -> dict[str, Any]:
    """Tracks called AI among `rows` (all of one label): the TPR or FPR numerator."""
    k, n = int(rows["called_ai"].sum()), len(rows)
    return {"k": k, "n": n, "n_failed": int(rows["failed"].sum()), "rate": _rate(k, n)}


# --- Tables IV / IV-A and VI: the accounting blocks of metrics.json ---------------------------


def _accounting_rows(metrics: dict[str, Any], accounting: str) -> dict[str, dict[str, Any]]:
    out = {}
    for model, m in sorted(metrics["models"].items()):
        block = m["accounting"][accounting]
        changed = block["n_imputed"] if accounting == "impute" else block["n_dropped"]
        out[model] = {
            "params": m.get("params"),
            "n": block["n"],
            "n_ai": block["n_ai"],
            "n_real": block["n_real"],
            ("n_imputed" if accounting == "impute" else "n_dropped"): changed,
            **{name: block[name] for name in POINT_METRICS},
        }
    return out


def _accounting_table(rows: dict[str, dict[str, Any]], accounting: str) -> str:
    changed = "imputed" if accounting == "impute" else "dropped"
    headers = ["model", "params", "F1", "precision", "recall", "FPR", "AUC", "n", changed]
    body = [
        [
            model,
            r["params"] or MISSING,
            *(fmt(r[name], 4) for name in POINT_METRICS),
            str(r["n"]),
            str(r[f"n_{changed}"]),
        ]
        for model, r in rows.items()
    ]
    return md_table(headers, body, right=set(range(2, len(headers))))


def accounting_section(metrics: dict[str, Any], table: str, title: str) -> Section:
    """Table IV (SONICS) or VI (ArtifactBench): impute first, exclude too whenever they differ.

    ``impute`` keeps every track (the paper's Table IV); ``exclude`` keeps only the tracks every
    model scored (Table IV-A). They differ as soon as one track failed or lacks a row.
    """
    impute = _accounting_rows(metrics, "impute")
    exclude = _accounting_rows(metrics, "exclude")
    differ = any(r["n_imputed"] for r in impute.values()) or any(
        r["n_dropped"] for r in exclude.values()
    )
    parts = [
        f"**{title}, `impute` accounting** (the paper's Table {table}): every track; a failed AI "
        "track counts as a miss and a failed real track as a false positive; AUC on scored "
        "tracks only.",
        "",
        _accounting_table(impute, "impute"),
        "",
    ]
    if differ:
        parts += [
            f"**{title}, `exclude` accounting** (as the paper's Table IV-A): only the "
            f"{metrics['n_common_scored']} track(s) every model scored, so denominators match.",
            "",
            _accounting_table(exclude, "exclude"),
        ]
    else:
        parts.append("No track failed or is missing: the `exclude` accounting is identical.")
    return Section(
        key=f"table_{table.lower()}",
        heading=f"Table {table} layout: {title}",
        text="\n".join(parts),
        data={"accountings_differ": differ, "impute": impute, "exclude": exclude},
    )


# --- Table VII: FAIL / N from the sanity protocol ----------------------------------------------


def sanity_section(sanity: dict[str, Any]) -> Section:
    """FAIL / N and pass rate per model, straight from sanity.json."""
    data = {}
    rows = []
    for model, m in sorted(sanity["models"].items()):
        n, n_fail = m["n_subsets"], m["n_fail"]
        pass_rate = _rate(n - n_fail, n)
        data[model] = {"n_fail": n_fail, "n_subsets": n, "pass_rate": pass_rate}
        shown = MISSING if pass_rate is None else f"{100 * pass_rate:.1f}%"
        rows.append([model, f"{n_fail} / {n}", shown])
    text = "\n".join(
        [
            "Subsets failing their sanity rule (rules and rates in the sanity table above). The "
            "paper's Table VII counts 28 subsets; N here is the number of subsets in this run.",
            "",
            md_table(["model", "FAIL / N", "pass rate"], rows, right={1, 2}),
        ]
    )
    return Section("table_vii", "Table VII layout: sanity FAIL / N", text, data)


# --- Tables VIII / IX: pooled group rates ------------------------------------------------------


def _pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sanity subset rows of one model summed: tracks called AI, tracks, failures, rate."""
    k, n = sum(r["n_called_ai"] for r in rows), sum(r["n"] for r in rows)
    return {"k": k, "n": n, "n_failed": sum(r["n_failed"] for r in rows), "rate": _rate(k, n)}


def pool_groups(
    sanity: dict[str, Any], groups: dict[str, tuple[str, ...]], label: str
) -> dict[str, Any]:
    """Per group present in the run: its subsets and, per model, the pooled TPR or FPR.

    Pooled means summed over every track of the group's subsets (not a mean of subset rates).
    Subsets of this label outside the taxonomy are pooled into one extra group.
    """
    present = [s for s in sanity["subset_order"] if sanity["subsets"][s]["label"] == label]
    known = {s for members in groups.values() for s in members}
    buckets: list[tuple[str, list[str], int | None]] = [
        (name, [s for s in members if s in present], len(members))
        for name, members in groups.items()
    ]
    others = [s for s in present if s not in known]
    if others:
        buckets.append((OTHER_GROUP, others, None))
    out: dict[str, Any] = {"groups": {}, "absent": [n for n, s, _ in buckets if not s]}
    for name, subsets, total in buckets:
        if not subsets:
            continue
        cells = {
            model: _pooled([m["subsets"][s] for s in subsets])
            for model, m in sorted(sanity["models"].items())
        }
        out["groups"][name] = {
            "subsets": subsets,
            "n_subsets_paper": total,
            "n_tracks": sum(sanity["subsets"][s]["n_tracks"] for s in subsets),
            "models": cells,
        }
    return out


def group_section(sanity: dict[str, Any], label: str) -> Section:
    """Table VIII (AI TPR by generator group) or IX (real FPR by source group), pooled."""
    ai = label == "ai"
    pooled = pool_groups(sanity, AI_GROUPS if ai else REAL_GROUPS, label)
    models = sorted(sanity["models"])
    rows = []
    for name, g in pooled["groups"].items():
        total = g["n_subsets_paper"]
        count = f"{len(g['subsets'])} of {total}" if total is not None else str(len(g["subsets"]))
        cells = [_rate_cell(g["models"][m]) for m in models]
        rows.append([name, count, str(g["n_tracks"]), *cells])
    what = "AI TPR by generator group" if ai else "real FPR by source group"
    rate = "AI tracks called AI / AI tracks" if ai else "real tracks called AI / real tracks"
    parts = [
        f"Pooled: {rate}, summed over every track of the group's subsets present in this run "
        "(not a mean of subset rates). Cells: rate (called AI / tracks, failures).",
        "",
        md_table(["group", "subsets", "tracks", *models], rows, right={1, 2}),
    ]
    if pooled["absent"]:
        parts += ["", "Groups with no subset in this run: " + ", ".join(pooled["absent"]) + "."]
    table = "VIII" if ai else "IX"
    heading = f"Table {table} layout: {what} (pooled)"
    return Section(f"table_{table.lower()}", heading, "\n".join(parts), pooled)


# --- SONICS breakdowns --------------------------------------------------------------------------


def algorithm_section(sanity: dict[str, Any]) -> Section:
    """SONICS: TPR per generating algorithm (AI subset), from the sanity counts."""
    models = sorted(sanity["models"])
    subsets = [s for s in sanity["subset_order"] if sanity["subsets"][s]["label"] == "ai"]
    data: dict[str, Any] = {}
    rows = []
    for s in subsets:
        cells = {m: _pooled([sanity["models"][m]["subsets"][s]]) for m in models}
        data[s] = {"n_tracks": sanity["subsets"][s]["n_tracks"], "models": cells}
        rows.append([s, str(data[s]["n_tracks"]), *(_rate_cell(cells[m]) for m in models)])
    text = "\n".join(
        [
            "TPR per AI subset. Cells: rate (called AI / tracks, failures).",
            "",
            md_table(["algorithm (subset)", "tracks", *models], rows, right={1}),
        ]
    )
    return Section("sonics_tpr_by_algorithm", "SONICS: TPR per algorithm", text, data)


def _column_values(preds: pd.DataFrame, column: str) -> pd.Series:
    values = preds[column].astype(object).where(preds[column].notna(), MISSING_VALUE)
    return values.astype(str).str.strip().replace("", MISSING_VALUE)


def breakdown_section(
    preds: pd.DataFrame, threshold: float, column: str, key: str, heading: str
) -> Section:
    """TPR (AI tracks) and FPR (real tracks) for each value of a track column, per model."""
    calls = _calls(preds, threshold, _column_values(preds, column))
    models = sorted(calls["model"].unique())
    rows, data = [], []
    for is_ai in (True, False):
        part = calls[calls["ai"] == is_ai]
        for value in sorted(part["key"].unique()):
            here = part[part["key"] == value]
            cells = {m: _tally(here[here["model"] == m]) for m in models}
            n_tracks = int(here["track"].nunique())
            label, metric = ("ai", "TPR") if is_ai else ("real", "FPR")
            data.append(
                {
                    "value": value,
                    "label": label,
                    "metric": metric.lower(),
                    "n_tracks": n_tracks,
                    "models": cells,
                }
            )
            shown = [_rate_cell(cells[m]) for m in models]
            rows.append([value, label, metric, str(n_tracks), *shown])
    text = "\n".join(
        [
            f"By `{column}`: TPR on AI tracks, FPR on real tracks. Cells: rate (called AI / "
            "tracks, failures).",
            "",
            md_table([column, "label", "metric", "tracks", *models], rows, right={3}),
        ]
    )
    return Section(key, heading, text, {"column": column, "rows": data})


def _f1_cell(cell: dict[str, Any]) -> str:
    failed = f" ({cell['n_failed']} failed)" if cell["n_failed"] else ""
    return fmt(cell["f1"]) + failed


def length_band(duration: pd.Series) -> pd.Series:
    """The paper's length band of each duration in seconds (``unknown length`` if unreadable)."""
    seconds = pd.to_numeric(duration, errors="coerce")
    bands = pd.Series(UNKNOWN_BAND, index=duration.index, dtype=object)
    for name, low, high in LENGTH_BANDS:
        bands[(seconds > low) & (seconds <= high)] = name
    return bands


def length_section(preds: pd.DataFrame, threshold: float) -> Section:
    """SONICS: F1 per length band, failures counted as misclassified."""
    calls = _calls(preds, threshold, length_band(preds["duration"]))
    models = sorted(calls["model"].unique())
    order = [name for name, _, _ in LENGTH_BANDS] + [UNKNOWN_BAND]
    rows, data = [], []
    for band in order:
        here = calls[calls["key"] == band]
        if here.empty:
            continue
        tracks = here.drop_duplicates("track")
        n_ai = int(tracks["ai"].sum())
        cells = {}
        for m in models:
            rows_m = here[here["model"] == m]
            counts = confusion(rows_m["ai"].to_numpy(), rows_m["called_ai"].to_numpy())
            failed = int(rows_m["failed"].sum())
            cells[m] = {**counts, "n_failed": failed, "f1": rates(**counts)["f1"]}
        n = len(tracks)
        data.append(
            {"band": band, "n_tracks": n, "n_ai": n_ai, "n_real": n - n_ai, "models": cells}
        )
        shown = [_f1_cell(cells[m]) for m in models]
        rows.append([band, str(n), str(n_ai), str(n - n_ai), *shown])
    text = "\n".join(
        [
            "F1 per length band of `duration` (<= 60 s, 60-120 s, > 120 s).",
            "",
            md_table(["length", "tracks", "AI", "real", *models], rows, right={1, 2, 3}),
        ]
    )
    return Section("sonics_f1_by_length", "SONICS: F1 per length band", text, {"bands": data})


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
        shown = _signed(g["runner_minus_paper"], 3)
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
            _signed(r["difference"]),
        ]
        if with_runner:
            cells += [_value(r["runner"], metric), _signed(r["runner_difference"])]
        cells.append(r["note"] or "")
        body.append(cells)
    right = set(range(4, len(headers) - 1))
    return md_table(headers, body, right=right)


# --- Assembly -----------------------------------------------------------------------------------


def _has_column(preds: pd.DataFrame, column: str) -> bool:
    return column in preds.columns and bool(preds[column].notna().any())


def build_paper(
    preds: pd.DataFrame, meta: dict[str, Any], metrics: dict[str, Any], sanity: dict[str, Any]
) -> Paper | None:
    """Every section that applies to the run's bench; None for a bench the paper does not use."""
    kind = paper_bench(preds, meta)
    if kind is None:
        return None
    threshold = float(metrics["threshold"])
    split = meta.get("split")
    sections: list[Section] = []
    if kind == SONICS:
        sections.append(accounting_section(metrics, "IV", f"SONICS `{split}`"))
        sections.append(algorithm_section(sanity))
        for column, key, heading in BREAKDOWNS:
            if _has_column(preds, column):
                sections.append(breakdown_section(preds, threshold, column, key, heading))
        if _has_column(preds, "duration"):
            sections.append(length_section(preds, threshold))
    else:
        sections.append(accounting_section(metrics, "VI", f"ArtifactBench `{split}`"))
        sections.append(sanity_section(sanity))
        sections.append(group_section(sanity, "ai"))
        sections.append(group_section(sanity, "real"))
    sections.append(comparison_section(kind, preds, meta, metrics, sanity))
    failures = {
        model: {stage: count for stage, count in sorted(m["failures"].items()) if count}
        for model, m in sorted(metrics["models"].items())
        if m["n_failed"]
    }
    return Paper(kind, split, threshold, tuple(sections), failures)


def paper_sections(
    preds: pd.DataFrame, meta: dict[str, Any], metrics: dict[str, Any], sanity: dict[str, Any]
) -> str:
    """Markdown to append to report.md; empty for a bench the paper does not report (demo)."""
    paper = build_paper(preds, meta, metrics, sanity)
    return paper.markdown() if paper else ""


def paper_tables(
    preds: pd.DataFrame, meta: dict[str, Any], metrics: dict[str, Any], sanity: dict[str, Any]
) -> dict[str, Any]:
    """The content of paper.json; empty when no paper section applies."""
    paper = build_paper(preds, meta, metrics, sanity)
    return paper.to_json() if paper else {}
