"""``leaderboard.md``: a board from
:func:`~artifactbench.reports.leaderboard.build.build_leaderboard` as Markdown: ranking, paired
verdicts, per-subset sanity and provenance.

A pure function of the board, so a rebuild is byte-identical.
"""

from __future__ import annotations

from typing import Any

from artifactbench.reports.format import (
    FAIL_MARK,
    MISSING,
    MISSING_INTERVAL,
    fmt,
    format_p,
    with_ci,
)
from artifactbench.reports.leakage import mark_text
from artifactbench.reports.paper_published import RUNNER
from artifactbench.reports.tables import cost_model_line, md_table

__all__ = ["leaderboard_markdown"]


def _with_ci(value: float | None, ci: dict[str, Any] | None) -> str:
    return with_ci(value, ci, missing=MISSING_INTERVAL)


def _published_cell(block: dict[str, Any] | None) -> str:
    if not block:
        return MISSING
    return f"{fmt(block['value'])} ({'runner' if block['table'] == RUNNER else block['table']})"


def _ranking_section(board: dict[str, Any]) -> list[str]:
    level = f"{board['level']:.0%}"
    headers = ["rank", "model", "params", f"F1 [{level} CI]", f"AUC [{level} CI]"]
    headers += [f"minDCF [{level} CI]", "Cllr (min)", "precision", "recall", "FPR"]
    headers += ["scored / n", "FAIL / N", "published F1", "published AUC"]
    rows = []
    for e in board["ranking"]:
        rows.append(
            [
                str(e["rank"]),
                e["model"],
                e["params"] if e["params"] is not None else MISSING,
                _with_ci(e["f1"], e["ci"]["f1"]),
                _with_ci(e["auc"], e["ci"]["auc"]),
                _with_ci(e["min_dcf"], e["cost_ci"]["min_dcf"]),
                f"{fmt(e['cllr'])} ({fmt(e['min_cllr'])})",
                fmt(e["precision"]),
                fmt(e["recall"]),
                fmt(e["fpr"]),
                f"{e['n_scored']} / {e['n']}",
                e["fail_n"],
                _published_cell(e["published"]["f1"]),
                _published_cell(e["published"]["auc"]),
            ]
        )
    text = (
        f"Ranked by F1 on each model's scored tracks (ties: AUC, then model id); a track is "
        f"called AI when P(AI) >= {board['threshold']:g}. Intervals: {level} percentile "
        f"bootstrap, {board['resamples']} resamples, seed {board['seed']}, stratified by label."
    )
    if board["paper_bench"]:
        text += (
            " Published figures are the paper's (table in brackets; `runner` is the reference "
            "runner's results file), measured on the paper's own population and accounting."
        )
    else:
        text += " Published figures: n/a (the paper reports only ArtifactBench and SONICS)."
    text += (
        " " + cost_model_line(board["cost_model"]) + " The minDCF interval resamples single "
        "tracks, stratified by label, as metrics.json's."
    )
    return ["## Ranking", "", text, "", md_table(headers, rows, right={0, *range(3, 12)}), ""]


def _pairs_section(board: dict[str, Any]) -> list[str]:
    out = ["## Paired verdicts", ""]
    if not board["pairs"]:
        return [*out, "One model: no pair to compare.", ""]
    out += [
        "Each model against the next-ranked one, on the tracks both scored. Differences are "
        "A - B with paired bootstrap intervals; DeLong tests the AUC difference and McNemar's "
        f"exact test the calls. A verdict needs an interval excluding 0 or p < {board['alpha']:g}"
        "; the p-values are not corrected for multiplicity.",
        "",
    ]
    headers = ["rank", "A", "B", "common", "F1 A - B", "AUC A - B", "DeLong p", "McNemar p"]
    headers.append("verdict")
    rows = []
    for pair in board["pairs"]:
        cells = [str(pair["rank"]), pair["a"], pair["b"], str(pair["n_common"])]
        boot = pair["bootstrap"]
        if boot is None:
            cells += [MISSING] * 4
        else:
            cells += [
                _with_ci(boot["f1"]["difference"], boot["f1"]),
                _with_ci(boot["auc"]["difference"], boot["auc"]),
                format_p(pair["delong"]["p"]),
                format_p(pair["mcnemar"]["p"]),
            ]
        rows.append([*cells, pair["verdict"]])
    return [*out, md_table(headers, rows, right={0, *range(3, 8)}), ""]


def _heat_section(board: dict[str, Any]) -> list[str]:
    models = [e["model"] for e in board["ranking"]]
    rows = []
    for name in board["subset_order"]:
        info = board["subsets"][name]
        rule = info["rule"] + (" (default)" if info["default_rule"] else "")
        cells = [name, info["label"], rule, str(info["n_tracks"])]
        for model in models:
            cell = board["heat"][model][name]
            seen = mark_text(cell.get("seen_in_training"))
            cells.append(
                fmt(cell["rate"]) + ("" if cell["pass"] else f" {FAIL_MARK}")
                + (f" ({seen})" if seen else "")
            )  # fmt: skip
        rows.append(cells)
    table = md_table(
        ["subset", "label", "rule", "n", *models], rows, right={3, *range(4, 4 + len(models))}
    )
    return [
        "## Per-subset sanity",
        "",
        "TPR of each AI subset and FPR of each real subset at the run threshold (a failed track "
        f"counts as misclassified); {FAIL_MARK} marks a cell that fails the subset's rule. "
        "Models in rank order.",
        "",
        table,
        "",
        *([board["audits_note"], ""] if board.get("audits_note") else []),
    ]


def _provenance_section(board: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"`{p['run_dir']}`",
            str(p["fingerprint"]),
            p["finished_utc"] or MISSING,
            ", ".join(p["models"]) or "(none)",
            ", ".join(p["replaced"]) or "-",
        ]
        for p in board["provenance"]
    ]
    headers = ["run", "fingerprint", "finished (UTC)", "models taken", "replaced by a later run"]
    out = ["## Provenance", "", md_table(headers, rows), ""]
    for r in board["replaced"]:
        out.append(f"- `{r['model']}`: `{r['kept']}` replaces `{r['replaced']}`.")
    return out + ([""] if board["replaced"] else [])


def leaderboard_markdown(board: dict[str, Any]) -> str:
    """The whole ``leaderboard.md``: ranking, paired verdicts, per-subset heat table and
    provenance. Ends in a newline."""
    title = (
        f"# ArtifactBench leaderboard: bench `{board['bench']}`, split `{board['split']}`, "
        f"threshold {board['threshold']:g}"
    )
    intro = (
        f"{len(board['ranking'])} model(s) from {len(board['provenance'])} run(s) on "
        f"{board['n_tracks']} track(s) of bench fingerprint `{board['fingerprint']}`, primary "
        f"variant `{board['primary_variant']['name']}`."
    )
    lines = [
        title,
        "",
        intro,
        "",
        *_ranking_section(board),
        *_pairs_section(board),
        *_heat_section(board),
        *_provenance_section(board),
    ]
    return "\n".join(lines)
