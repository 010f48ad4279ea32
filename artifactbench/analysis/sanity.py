"""The per-subset sanity protocol: does each model clear each subset's rule at the run threshold?

A subset's rate is the fraction of its tracks called AI (``prob >= threshold``): the TPR of an AI
subset, the FPR of a real one. A failed track counts as misclassified, so a failed AI track is a
miss and a failed real track a false positive: a model cannot pass by failing on hard tracks.
A subset where every track failed is therefore judged (and fails), never skipped. Bounds are
compared as exact fractions, so 9/10 meets TPR >= 0.90 and 1/20 meets FPR <= 0.05.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from artifactbench.benches.base import SubsetInfo
from artifactbench.predictions import validate_predictions

NOTE = (
    "Rate = share of the subset's tracks called AI at the run threshold (TPR for AI subsets, "
    "FPR for real subsets). A failed track counts as misclassified: a failed AI track is a miss, "
    "a failed real track a false positive. A subset where every track failed is a FAIL."
)


def rule_text(rule: dict[str, Any]) -> str:
    """``TPR >= 0.90`` style text of a rule."""
    return f"{str(rule['metric']).upper()} {rule['op']} {float(rule['bound']):.2f}"


def meets(k: int, n: int, rule: dict[str, Any]) -> bool:
    """Whether rate k/n meets the rule, decided exactly (no float rounding at the boundary)."""
    if n == 0:
        return False
    bound = Fraction(float(rule["bound"])).limit_denominator(10**6)
    lhs, rhs = k * bound.denominator, bound.numerator * n
    if rule["op"] == ">=":
        return lhs >= rhs
    if rule["op"] == "<=":
        return lhs <= rhs
    raise ValueError(f"unknown rule operator {rule['op']!r}")


def subset_rules(
    preds: pd.DataFrame, subsets: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Rule of every subset present in the table, in the metadata's order then by name.

    A subset the metadata does not list gets the default rule of its label (not hard) and is
    flagged ``default_rule`` so the report shows it was not declared.
    """
    declared = subsets or {}
    present = preds[["subset", "label"]].astype(str).drop_duplicates()
    labels = present.groupby("subset")["label"].agg(sorted)
    for name, found in labels.items():
        if len(found) > 1:
            raise ValueError(f"subset {name!r} mixes labels {found}")
    order = [s for s in declared if s in labels.index]
    order += sorted(s for s in labels.index if s not in declared)
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        label = labels[name][0]
        rule = declared.get(name)
        if rule is None:
            out[name] = {**SubsetInfo(name, label).rule, "default_rule": True}
            continue
        if rule["label"] != label:
            raise ValueError(f"subset {name!r} has {label} tracks but a rule for {rule['label']}")
        out[name] = {**rule, "default_rule": False}
    return out


def evaluate_sanity(
    preds: pd.DataFrame,
    threshold: float,
    subsets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per model and subset: label, n, n_scored, n_failed, rate, rule, pass; FAIL / N per model.

    `subsets` is the metadata's ``subsets`` map (name -> rule). Subsets listed there with no row
    in the table are reported under ``absent_subsets`` and not counted; a subset other models
    have but this model lacks rows for fails with n = 0 and rate None.
    """
    validate_predictions(preds)
    rules = subset_rules(preds, subsets)
    absent = sorted(set(subsets or {}) - set(rules))
    sizes = preds.drop_duplicates(["subset", "bench", "track_id"])["subset"].value_counts()
    models: dict[str, Any] = {}
    for model, rows in preds.groupby("model", sort=True, observed=True):
        failed = (rows["status"] != "scored").to_numpy()
        prob = pd.to_numeric(rows["prob"], errors="coerce").to_numpy(dtype=float)
        called_ai = np.where(failed, rows["label"].to_numpy() == "real", prob >= threshold)
        subset_col = rows["subset"].to_numpy()
        table: dict[str, Any] = {}
        for name, rule in rules.items():
            here = subset_col == name
            n, k = int(here.sum()), int(called_ai[here].sum())
            table[name] = {
                "label": rule["label"],
                "n": n,
                "n_scored": int((here & ~failed).sum()),
                "n_failed": int((here & failed).sum()),
                "n_called_ai": k,
                "rate": k / n if n else None,
                "rule": rule_text(rule),
                "pass": meets(k, n, rule),
            }
        n_fail = sum(not row["pass"] for row in table.values())
        models[str(model)] = {
            "subsets": table,
            "n_subsets": len(table),
            "n_fail": n_fail,
            "summary": f"{n_fail}/{len(table)}",
        }
    return {
        "threshold": float(threshold),
        "note": NOTE,
        "subsets": {
            name: {
                "label": rule["label"],
                "metric": rule["metric"],
                "op": rule["op"],
                "bound": float(rule["bound"]),
                "rule": rule_text(rule),
                "default_rule": rule["default_rule"],
                "n_tracks": int(sizes.get(name, 0)),
            }
            for name, rule in rules.items()
        },
        "subset_order": list(rules),
        "absent_subsets": absent,
        "models": models,
    }
