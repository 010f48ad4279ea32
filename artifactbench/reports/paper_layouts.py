"""The ArtifactNet paper's table layouts (IV, IV-A, VI-IX and the SONICS breakdowns), each
rebuilt from one run's results as a :class:`Section`.

Tables IV / VI read the ``impute`` and ``exclude`` blocks of ``metrics.json``, Table VII and the
group pools of Tables VIII / IX read the per-subset counts of ``sanity.json``, so no layout can
disagree with those files. Breakdowns by a track column follow the sanity convention too: a
failed track counts as misclassified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.analysis.metrics import confusion, rates
from artifactbench.benches.catalog import AI_GROUPS, REAL_GROUPS
from artifactbench.reports.format import MISSING, fmt
from artifactbench.reports.tables import md_table

OTHER_GROUP = "other (outside the paper's groups)"
MISSING_VALUE = "(missing)"
POINT_METRICS: tuple[str, ...] = ("f1", "precision", "recall", "fpr", "auc")
LENGTH_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<= 60 s", -np.inf, 60.0),
    ("60-120 s", 60.0, 120.0),
    ("> 120 s", 120.0, np.inf),
)
UNKNOWN_BAND = "unknown length"
# SONICS track columns broken down by value: (column, JSON key, heading).
BREAKDOWNS: tuple[tuple[str, str, str], ...] = (
    ("fake_type", "sonics_by_fake_type", "SONICS: by fake type"),
    ("artist_overlap", "sonics_by_artist_overlap", "SONICS: seen and unseen singers"),
)


@dataclass(frozen=True)
class Section:
    """One rendered table: JSON key, markdown heading and body, and its data for paper.json."""

    key: str
    heading: str
    text: str
    data: dict[str, Any]


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _rate_cell(cell: dict[str, Any]) -> str:
    """``0.950 (19/20)``, with the failures that were counted as misclassified."""
    failed = f", {cell['n_failed']} failed" if cell["n_failed"] else ""
    return f"{fmt(cell['rate'])} ({cell['k']}/{cell['n']}{failed})"


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
