"""The ArtifactNet paper's tables for one run: every section that applies to its bench,
gathered into report.md's "Paper tables" and paper.json.

The layouts live in :mod:`~artifactbench.reports.paper_layouts` (Tables IV, IV-A, VI-IX and the
SONICS breakdowns, from the run's metrics.json and sanity.json), the published figures and their
comparison with this run in :mod:`~artifactbench.reports.paper_published`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from artifactbench.reports.data import canonical
from artifactbench.reports.paper_layouts import (
    BREAKDOWNS,
    Section,
    accounting_section,
    algorithm_section,
    breakdown_section,
    group_section,
    length_section,
    sanity_section,
)
from artifactbench.reports.paper_published import SONICS, comparison_section, paper_bench

FAILED_NOTE = (
    "A failed track counts as misclassified, as in the sanity protocol: a failed AI track is a "
    "miss and a failed real track a false positive."
)


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
