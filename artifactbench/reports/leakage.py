"""Marks on results that include tracks a model was trained on, from leakage audits.

An audit (``artifactbench audit``, written as ``audit.json``) lists the tracks of a bench found
in another bench; the predictions metadata says, per model, what it was trained on
(``trained_on``: bench and split, from its card or its fit). A model's per-subset result is
marked ``seen in training: k/n`` when k of the subset's n tracks matched a track of a bench and
split the model was trained on. A split the card leaves unpublished counts whole. A data set
with no bench source here (``mom``) is audited as a folder of that name (``folder:mom``).
The audit arrives here as data: nothing is decoded or matched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

AUDIT_FILE = "audit.json"


class AuditMismatch(ValueError):
    """An audit that cannot speak for this run: another bench, version or split, or no audit."""


@dataclass(frozen=True)
class AuditFindings:
    """What the marks need from one audit: which bench it covers and, per audited track id,
    the splits (``bench_origin``) of the reference tracks it matched."""

    source: str
    bench: str
    fingerprint: str
    split: str
    against: str
    matched: dict[str, frozenset[str]]

    @property
    def label(self) -> str:
        return f"{self.bench} ({self.split}) against {self.against}"


def read_audit(path: str | Path) -> AuditFindings:
    """An audit directory's (or its audit.json's) findings; AuditMismatch, one line, when it is
    not an audit."""
    path = Path(path)
    file = path / AUDIT_FILE if path.is_dir() else path
    try:
        record = json.loads(file.read_text())
        bench, against = record["bench"], record["against"]
        matched: dict[str, set[str]] = {}
        for m in record["matches"]:
            matched.setdefault(str(m["track_id"]), set()).add(str(m["against_origin"]))
        return AuditFindings(
            str(path), str(bench["name"]), str(bench["fingerprint"]), str(bench["split"]),
            str(against["name"]), {k: frozenset(v) for k, v in matched.items()},
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise AuditMismatch(f"{path} is not a readable audit ({why})") from exc


def same_source(trained: str, against: str) -> bool:
    """Whether an audit's reference bench is the data a card names (or a folder named so)."""
    return against in (trained, f"folder:{trained}")


def check_audits(audits: Sequence[AuditFindings], meta: dict[str, Any]) -> None:
    """AuditMismatch (one line) unless every audit covers the results' bench (name and
    fingerprint) and split; cheap, so callers check before computing anything."""
    bench, fingerprint, split = meta.get("bench"), meta.get("bench_fingerprint"), meta.get("split")
    for audit in audits:
        if (audit.bench, audit.fingerprint) != (bench, fingerprint):
            raise AuditMismatch(
                f"audit {audit.source} is of bench {audit.bench} ({audit.fingerprint}); the "
                f"results are of bench {bench} ({fingerprint})"
            )
        if audit.split not in ("all", split):
            raise AuditMismatch(
                f"audit {audit.source} covers split {audit.split} of {audit.bench}; the results "
                f"are of split {split}: audit that split (or all)"
            )


def _seen(trained_on: list[dict[str, Any]], audits: Sequence[AuditFindings]) -> set[str]:
    """Audited track ids matched to data the model was trained on."""
    seen: set[str] = set()
    for entry in trained_on:
        split = entry.get("split")
        for audit in audits:
            if not same_source(str(entry.get("bench")), audit.against):
                continue
            seen |= {t for t, origins in audit.matched.items() if split is None or split in origins}
    return seen


def training_marks(
    preds: pd.DataFrame, meta: dict[str, Any], audits: Sequence[AuditFindings]
) -> dict[str, dict[str, dict[str, int]]]:
    """Model -> subset -> {k, n} for every subset with k > 0 of its n tracks seen in the
    model's training data; AuditMismatch when an audit is of another bench or split."""
    check_audits(audits, meta)
    marks: dict[str, dict[str, dict[str, int]]] = {}
    for model, facts in sorted((meta.get("models") or {}).items()):
        seen = _seen(list((facts or {}).get("trained_on") or []), audits)
        if not seen:
            continue
        rows = preds[preds["model"].astype(str) == model].drop_duplicates("track_id")
        for subset, tracks in rows.groupby("subset", sort=True, observed=True):
            k = int(tracks["track_id"].astype(str).isin(seen).sum())
            if k:
                marks.setdefault(model, {})[str(subset)] = {"k": k, "n": len(tracks)}
    return marks


def mark_text(mark: dict[str, int] | None) -> str:
    """The words a marked cell carries ("" when unmarked)."""
    return f"seen in training: {mark['k']}/{mark['n']}" if mark else ""


def audits_note(audits: Sequence[AuditFindings]) -> str:
    """One line naming the audits behind the marks."""
    named = "; ".join(f"`{a.source}` ({a.label})" for a in audits)
    return (
        "Leakage audit(s): " + named + ". A cell marked `seen in training: k/n` includes k of "
        "the subset's n tracks that the audit found (exact copy or fingerprint match) in data "
        "the model was trained on (`trained_on` in the predictions metadata)."
    )


def mark_sanity(
    sanity: dict[str, Any],
    preds: pd.DataFrame,
    meta: dict[str, Any],
    audits: Sequence[AuditFindings],
) -> dict[str, Any]:
    """The sanity dict with ``seen_in_training`` (the marks) and ``audits_note`` added."""
    if not audits:
        return sanity
    marks = training_marks(preds, meta, audits)
    return {**sanity, "seen_in_training": marks, "audits_note": audits_note(audits)}
