"""``leaderboard.html``: the leaderboard as one self-contained page, for readers without a
Markdown viewer or a notebook.

The tables are written here as plain HTML, so the page reads without JavaScript; a small inline
script adds what a static page cannot do (sorting the ranking, filtering the sanity rows by
subset group) and draws the ROC and F1-against-threshold curves as SVG from the board, which is
embedded whole as JSON (``script#board-data``, the same values as ``leaderboard.json``). Nothing
is fetched: no CDN, fonts or images, and a Content-Security-Policy forbids any load. The page is
a pure function of the board, so a rebuild is byte-identical.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from artifactbench.reports.data import canonical
from artifactbench.reports.format import FAIL_MARK, MISSING, fmt, format_p
from artifactbench.reports.leaderboard.html_parts import (
    esc,
    metric_cell,
    params_number,
    scroll_table,
    sort_attr,
    th,
)
from artifactbench.reports.leakage import mark_text
from artifactbench.reports.paper_published import ARTIFACTBENCH, RUNNER

__all__ = [
    "GROUPS",
    "ZERO_SHOT_BENCH",
    "ZERO_SHOT_ORIGIN",
    "embedded_json",
    "leaderboard_html",
    "subset_groups",
]

# Subset groups the heat table can be filtered to: (id, button label, what the group holds).
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("ai", "AI generators", "subsets of AI-generated tracks (rate = TPR)"),
    ("real", "real sources", "subsets of real recordings (rate = FPR)"),
    (
        "zero-shot",
        "zero-shot partition",
        "ArtifactBench subsets whose tracks on this board all lie in bench_origin=test",
    ),
)
# ArtifactBench's bench_origin=test is its zero-shot partition; other benches declare none.
ZERO_SHOT_BENCH = ARTIFACTBENCH
ZERO_SHOT_ORIGIN = "test"
# The page loads nothing: its style and script are inline, its only image a data: URL.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _asset(name: str) -> str:
    """The text of the page's stylesheet or script, shipped beside this module as package data
    (``leaderboard.css``, ``leaderboard.js``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8").strip()


# (key, header, numeric, first sort direction): higher is better for F1, AUC, precision and
# recall, so their first click puts the best first; lower is better for minDCF, Cllr, FPR and
# FAIL.
_RANK_COLUMNS: tuple[tuple[str, str, bool, str], ...] = (
    ("rank", "rank", True, "ascending"),
    ("model", "model", False, "ascending"),
    ("f1", "F1", True, "descending"),
    ("auc", "AUC", True, "descending"),
    ("min_dcf", "minDCF", True, "ascending"),
    ("cllr", "Cllr", True, "ascending"),
    ("precision", "precision", True, "descending"),
    ("recall", "recall", True, "descending"),
    ("fpr", "FPR", True, "ascending"),
    ("scored", "scored / n", True, "descending"),
    ("fail", "FAIL / N", True, "ascending"),
    ("params", "params", False, "ascending"),
)


def _cost_fact(cost: dict[str, Any]) -> str:
    """The detection cost model in one line: ASVspoof 5's terms, AI as the attack class."""
    return (
        f"ASVspoof 5, AI = attack: P<sub>attack</sub> {cost['p_attack']:g}, "
        f"C<sub>miss</sub> {cost['c_miss']:g} (real called AI), C<sub>fa</sub> "
        f"{cost['c_fa']:g} (AI called real)"
    )


def _header(board: dict[str, Any]) -> list[str]:
    n_models, n_runs = len(board["ranking"]), len(board["provenance"])
    variant = board["primary_variant"]
    facts = [
        ("bench", f"<code>{esc(board['bench'])}</code>"),
        ("split", f"<code>{esc(board['split'])}</code>"),
        ("threshold", f"P(AI) &ge; {board['threshold']:g} calls a track AI"),
        ("cost model", _cost_fact(board["cost_model"])),
        ("tracks", esc(board["n_tracks"])),
        ("models / runs", f"{n_models} from {n_runs} run(s)"),
        ("bench fingerprint", f"<code>{esc(board['fingerprint'])}</code>"),
        ("primary variant", f"<code>{esc(variant['name'])}</code>"),
        ("decode protocol", f"<code>{esc(board['decode_protocol'])}</code>"),
        (
            "intervals",
            f"{board['level']:.0%} bootstrap, {board['resamples']} resamples, seed {board['seed']}",
        ),
    ]
    items = [f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts]
    best = board["ranking"][0] if board["ranking"] else None
    lead = ""
    if best is not None:
        lead = (
            f'<p class="lead">Best by F1: <strong>{esc(best["model"])}</strong> '
            f"(F1 {fmt(best['f1'])}, AUC {fmt(best['auc'])}, sanity FAIL / N "
            f"{esc(best['fail_n'])}).</p>"
        )
    sections = [
        ("ranking", "Ranking"),
        ("curves", "Curves"),
        ("sanity", "Per-subset sanity"),
        ("pairs", "Paired verdicts"),
        ("published", "Published figures"),
        ("provenance", "Provenance"),
    ]
    nav = "".join(f'<li><a href="#{key}">{name}</a></li>' for key, name in sections)
    return [
        "<header>",
        f"<h1>ArtifactBench leaderboard: <code>{esc(board['bench'])}</code></h1>",
        lead,
        f'<dl class="facts">{"".join(items)}</dl>',
        f'<nav aria-label="sections"><ul>{nav}</ul></nav>',
        "</header>",
    ]


def _ranking(board: dict[str, Any]) -> list[str]:
    level = f"{board['level']:.0%}"
    head = []
    for key, label, num, first in _RANK_COLUMNS:
        sort = "ascending" if key == "rank" else "none"
        klass = ' class="num"' if num else ""
        head.append(
            f'<th scope="col" data-key="{key}" data-first="{first}" aria-sort="{sort}"{klass}>'
            f'<button type="button">{label}'
            '<span class="arrow" aria-hidden="true"></span></button></th>'
        )
    rows = []
    for e in board["ranking"]:
        cells = [
            f'<td class="num"{sort_attr(e["rank"])}>{e["rank"]}</td>',
            f"<td{sort_attr(e['model'])}><strong>{esc(e['model'])}</strong></td>",
            *(metric_cell(e[k], e["ci"].get(k)) for k in ("f1", "auc")),
            *(metric_cell(e[k], e["cost_ci"].get(k)) for k in ("min_dcf", "cllr")),
            metric_cell(e["precision"], e["ci"].get("precision")),
            *(metric_cell(e[k], e["ci"].get(k)) for k in ("recall", "fpr")),
            f'<td class="num"{sort_attr(e["n_scored"])}>{e["n_scored"]} / {e["n"]}</td>',
            f'<td class="num"{sort_attr(e["n_fail"])}>{esc(e["fail_n"])}</td>',
            f'<td class="params"{sort_attr(params_number(e["params"]))}>{esc(e["params"])}</td>',
        ]
        rows.append(f'<tr data-model="{esc(e["model"])}">{"".join(cells)}</tr>')
    text = (
        f"Ranked by F1 on each model's scored tracks (ties: AUC, then model id); a track is "
        f"called AI when P(AI) &ge; {board['threshold']:g}. Under each value, its {level} "
        f"percentile bootstrap interval ({board['resamples']} resamples, seed {board['seed']}, "
        f"stratified by label; minDCF's and Cllr's resample single tracks). minDCF is ASVspoof "
        f"5's detection cost at the best threshold, AI the attack class, normalised so the "
        f"better trivial system scores 1; Cllr is in bits (1: uninformative), reading "
        f"logit(P(AI)) as the LLR of AI. FAIL / N counts the subsets whose sanity rule the "
        f"model fails. "
        f"Click a column header to sort; click again to reverse. Missing values stay last."
    )
    return [
        '<section id="ranking" aria-labelledby="ranking-h">',
        '<h2 id="ranking-h">Ranking</h2>',
        f"<p>{text}</p>",
        scroll_table("ranking-table", head, rows, "sortable"),
        "</section>",
    ]


def _curves(board: dict[str, Any]) -> list[str]:
    return [
        '<section id="curves" aria-labelledby="curves-h">',
        '<h2 id="curves-h">Curves</h2>',
        "<p>On each model's scored tracks (AI is the positive class). Each ROC curve is drawn "
        "through its corner points; the dot on it is the "
        f"model's operating point at threshold {board['threshold']:g}. F1 is computed at "
        "thresholds 0.00, 0.01, &hellip;, 1.00 (AI when P(AI) &ge; t); the dashed line marks "
        "the run threshold.</p>",
        '<div class="charts">',
        '<figure><figcaption>ROC</figcaption><div class="chart" id="roc-chart"></div></figure>',
        "<figure><figcaption>F1 against threshold</figcaption>"
        '<div class="chart" id="f1-chart"></div></figure>',
        "</div>",
        '<noscript><p class="note">The curves are drawn by the page\'s script; their points '
        "are in leaderboard.json under <code>curves</code>.</p></noscript>",
        "</section>",
    ]


def subset_groups(board: dict[str, Any]) -> dict[str, list[str]]:
    """Group id -> the board's subsets in it, in the board's subset order: ``ai`` and
    ``real`` by label; ``zero-shot`` on ArtifactBench only, the subsets whose tracks all come
    from ``bench_origin=test`` (every subset of a ``test``-split board without origins)."""
    out: dict[str, list[str]] = {key: [] for key, _, _ in GROUPS}
    zero_shot_bench = str(board.get("paper_bench") or "") == ZERO_SHOT_BENCH
    for name in board["subset_order"]:
        info = board["subsets"][name]
        if info["label"] in ("ai", "real"):
            out[info["label"]].append(name)
        origins = info.get("origins") or []
        if not origins and board.get("split") == ZERO_SHOT_ORIGIN:
            origins = [ZERO_SHOT_ORIGIN]
        if zero_shot_bench and origins == [ZERO_SHOT_ORIGIN]:
            out["zero-shot"].append(name)
    return out


def _heat_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return f'<td class="num fail">{MISSING} <span class="mark">{FAIL_MARK}</span></td>'
    rate, passed = cell["rate"], cell["pass"]
    title = f"{fmt(rate)} over {cell['n']} track(s), {cell['n_failed']} failed"
    title += " (counted as misclassified)" if cell["n_failed"] else ""
    title += "; passes the rule" if passed else "; fails the rule"
    mark = "" if passed else f' <span class="mark">{FAIL_MARK}</span>'
    seen = mark_text(cell.get("seen_in_training"))
    if seen:
        title += f"; {seen} (leakage audit)"
        mark += f' <span class="seen">({esc(seen)})</span>'
    status = "pass" if passed else "fail"
    return (
        f'<td class="num {status}"{sort_attr(rate)} data-pass="{str(passed).lower()}" '
        f'title="{escape(title, quote=True)}">{fmt(rate)}{mark}</td>'
    )


def _sanity(board: dict[str, Any]) -> list[str]:
    models = [e["model"] for e in board["ranking"]]
    groups = subset_groups(board)
    n_subsets = len(board["subset_order"])
    radios = [
        '<label><input type="radio" name="subset-group" value="all" checked>'
        f"<span>all subsets ({n_subsets})</span></label>"
    ]
    for key, label, what in GROUPS:
        count = len(groups[key])
        off = "" if count else " disabled"
        note = f"{label} ({count})" if count else f"{label} (none on this bench)"
        klass = "" if count else ' class="off"'
        radios.append(
            f'<label{klass} title="{escape(what, quote=True)}">'
            f'<input type="radio" name="subset-group" value="{key}"{off}>'
            f"<span>{escape(note)}</span></label>"
        )
    head = [th("subset"), th("label"), th("rule"), th("tracks", num=True)]
    head += [th(f"<code>{esc(m)}</code>", num=True) for m in models]
    rows = []
    for name in board["subset_order"]:
        info = board["subsets"][name]
        member = " ".join(key for key, _, _ in GROUPS if name in groups[key])
        rule = esc(info["rule"]) + (" (default)" if info.get("default_rule") else "")
        label = "AI" if info["label"] == "ai" else esc(info["label"])
        cells = [
            f'<td class="nowrap"><code>{esc(name)}</code></td>',
            f"<td>{label}</td>",
            f'<td class="nowrap">{rule}</td>',
            f'<td class="num">{esc(info["n_tracks"])}</td>',
            *(_heat_cell(board["heat"].get(m, {}).get(name)) for m in models),
        ]
        rows.append(f'<tr data-subset="{esc(name)}" data-groups="{member}">{"".join(cells)}</tr>')
    return [
        '<section id="sanity" aria-labelledby="sanity-h">',
        '<h2 id="sanity-h">Per-subset sanity</h2>',
        "<p>Rows are subsets, columns models in rank order. Each cell is the share of the "
        "subset's tracks called AI at the run threshold: the TPR of an AI subset, the FPR of a "
        "real one (a failed track counts as misclassified). "
        f'<span class="key pass">blue: meets the rule</span>, '
        f'<span class="key fail">orange {FAIL_MARK}: fails it</span>.</p>',
        '<fieldset class="filters"><legend>Show subsets</legend>',
        *radios,
        "</fieldset>",
        f'<p class="note" id="heat-status" aria-live="polite">Showing {n_subsets} of '
        f"{n_subsets} subsets.</p>",
        scroll_table("heat", head, rows),
        *_audits_note(board),
        "</section>",
    ]


def _audits_note(board: dict[str, Any]) -> list[str]:
    note = board.get("audits_note")
    return [f'<p class="note">{esc(note.replace("`", ""))}</p>'] if note else []


def _diff_cell(block: dict[str, Any] | None) -> str:
    if block is None:
        return f'<td class="num">{MISSING}</td>'
    return metric_cell(block["difference"], block)


def _pairs(board: dict[str, Any]) -> list[str]:
    out = [
        '<section id="pairs" aria-labelledby="pairs-h">',
        '<h2 id="pairs-h">Paired verdicts</h2>',
    ]
    if not board["pairs"]:
        return [*out, "<p>One model: no pair to compare.</p>", "</section>"]
    head = [th("rank", num=True), th("A"), th("B"), th("common tracks", num=True)]
    head += [th("F1 A &minus; B", num=True), th("AUC A &minus; B", num=True)]
    head += [th("DeLong p", num=True), th("McNemar p", num=True), th("verdict")]
    rows = []
    for pair in board["pairs"]:
        boot = pair["bootstrap"]
        cells = [
            f'<td class="num">{pair["rank"]}</td>',
            f"<td>{esc(pair['a'])}</td>",
            f"<td>{esc(pair['b'])}</td>",
            f'<td class="num">{esc(pair["n_common"])}</td>',
        ]
        if boot is None:
            cells += [f'<td class="num">{MISSING}</td>'] * 4
        else:
            cells += [_diff_cell(boot.get("f1")), _diff_cell(boot.get("auc"))]
            cells += [f'<td class="num">{format_p(pair["delong"]["p"])}</td>']
            cells += [f'<td class="num">{format_p(pair["mcnemar"]["p"])}</td>']
        cells.append(f'<td class="wrap">{esc(pair["verdict"])}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    text = (
        "Each model against the next-ranked one, on the tracks both scored. Differences are "
        "A &minus; B with paired bootstrap intervals below; DeLong tests the AUC difference and "
        f"McNemar's exact test the calls. A verdict needs an interval excluding 0 or "
        f"p &lt; {board['alpha']:g}; the p-values are not corrected for multiplicity."
    )
    return [*out, f"<p>{text}</p>", scroll_table("pairs-table", head, rows), "</section>"]


def _published_cell(block: dict[str, Any] | None) -> list[str]:
    if not block:
        return [f'<td class="num">{MISSING}</td>'] * 2
    source = "runner" if block["table"] == RUNNER else f"Table {block['table']}"
    return [
        f'<td class="num">{fmt(block["value"])}<span class="ci">{esc(source)}</span></td>',
        f'<td class="num">{fmt(block["measured"])}</td>',
    ]


def _published(board: dict[str, Any]) -> list[str]:
    out = [
        '<section id="published" aria-labelledby="published-h">',
        '<h2 id="published-h">Published figures</h2>',
    ]
    if not board["paper_bench"]:
        text = "n/a: the paper reports only ArtifactBench and SONICS."
        return [*out, f'<p class="note">{text}</p>', "</section>"]
    head = [th("model"), th("paper name")]
    head += [th("published F1", num=True), th("measured F1", num=True)]
    head += [th("published AUC", num=True), th("measured AUC", num=True)]
    rows = []
    for e in board["ranking"]:
        blocks = e["published"]
        names = [b["paper_name"] for b in blocks.values() if b and b.get("paper_name")]
        cells = [f"<td>{esc(e['model'])}</td>", f"<td>{esc(names[0] if names else None)}</td>"]
        cells += _published_cell(blocks.get("f1")) + _published_cell(blocks.get("auc"))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    text = (
        f"The paper's figures for bench <code>{esc(board['paper_bench'])}</code> (the source "
        "under each value; <em>runner</em> is the reference runner's results file), measured "
        "on the paper's own population and accounting, beside this board's measurement under "
        "that accounting."
    )
    return [*out, f"<p>{text}</p>", scroll_table("published-table", head, rows), "</section>"]


def _provenance(board: dict[str, Any]) -> list[str]:
    head = [th("run"), th("fingerprint"), th("finished (UTC)"), th("models taken")]
    head.append(th("replaced by a later run"))
    rows = []
    for p in board["provenance"]:
        cells = [
            f'<td class="wrap"><code>{esc(p["run_dir"])}</code></td>',
            f"<td><code>{esc(p['fingerprint'])}</code></td>",
            f'<td class="nowrap">{esc(p["finished_utc"] or None)}</td>',
            f"<td>{esc(', '.join(p['models']) or '(none)')}</td>",
            f"<td>{esc(', '.join(p['replaced']) or '-')}</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    out = [
        '<section id="provenance" aria-labelledby="provenance-h">',
        '<h2 id="provenance-h">Provenance</h2>',
        scroll_table("provenance-table", head, rows),
    ]
    if board["replaced"]:
        items = "".join(
            f"<li><code>{esc(r['model'])}</code>: <code>{esc(r['kept'])}</code> replaces "
            f"<code>{esc(r['replaced'])}</code>.</li>"
            for r in board["replaced"]
        )
        out.append(f"<ul>{items}</ul>")
    return [*out, "</section>"]


def embedded_json(board: dict[str, Any]) -> str:
    """The board as the page embeds it: canonical JSON (as leaderboard.json, compact) with
    every ``<``, ``>`` and ``&`` escaped, so no value can close the script element."""
    text = json.dumps(
        canonical(board), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def leaderboard_html(board: dict[str, Any]) -> str:
    """The whole ``leaderboard.html`` of a board from
    :func:`~artifactbench.reports.leaderboard.build.build_leaderboard`. Ends in a newline."""
    title = f"ArtifactBench leaderboard: {board['bench']}, split {board['split']}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{esc(title)}</title>",
        '<link rel="icon" href="data:,">',
        f"<style>\n{_asset('leaderboard.css')}\n</style>",
        "</head>",
        "<body>",
        "<main>",
        *_header(board),
        *_ranking(board),
        *_curves(board),
        *_sanity(board),
        *_pairs(board),
        *_published(board),
        *_provenance(board),
        "<footer><p>Written by <code>artifactbench leaderboard</code> from the runs under "
        "Provenance. The board behind this page is embedded in it (<code>script#board-data"
        "</code>) and written beside it as leaderboard.json.</p></footer>",
        "</main>",
        f'<script type="application/json" id="board-data">{embedded_json(board)}</script>',
        f"<script>\n{_asset('leaderboard.js')}\n</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(line for line in lines if line) + "\n"
