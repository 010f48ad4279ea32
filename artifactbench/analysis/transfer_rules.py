"""The rules by which a threshold can be chosen on another run (``--threshold-from
RUN_DIR:METRIC``): plain data, so the command line can list them without loading the metrics
code. :mod:`artifactbench.analysis.transfer` applies them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThresholdRule:
    """What a rule means in a report, and which of the source's per-model metrics is the
    threshold it chooses (a key of ``transfer.source_thresholds``)."""

    meaning: str
    key: str


THRESHOLD_RULES: dict[str, ThresholdRule] = {
    "eer": ThresholdRule(
        "the equal-error point, the first ROC threshold where FPR >= FNR", "eer_threshold"
    ),
    "fpr05": ThresholdRule("the lowest threshold whose FPR <= 5%", "threshold_at_fpr05"),
    "mindcf": ThresholdRule(
        "the P(AI) threshold minimising the detection cost, minDCF", "min_dcf_threshold"
    ),
}
DEFAULT_METRIC = "eer"
