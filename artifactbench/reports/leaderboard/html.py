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
import re
from html import escape
from typing import Any

from artifactbench.reports.data import canonical
from artifactbench.reports.paper import ARTIFACTBENCH, RUNNER
from artifactbench.reports.tables import FAIL_MARK, MISSING, fmt, format_p

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

_PARAMS = re.compile(r"^\s*[~≈]?\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)(?![A-Za-z])")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}

CSS = """
:root {
  color-scheme: light;
  --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f6f8fa; --accent: #0072b2;
  --pass-bg: #dcebf7; --pass-fg: #0b3c66; --fail-bg: #fbd8c2; --fail-fg: #7a2a00;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body {
  margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
main { max-width: 74rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 .3rem; }
h2 {
  font-size: 1.2rem; margin: 2.2rem 0 .5rem; padding-bottom: .25rem;
  border-bottom: 1px solid var(--line);
}
p { margin: .4rem 0 .8rem; max-width: 62rem; }
a { color: var(--accent); }
.lead { font-size: 1.05rem; color: var(--muted); margin-top: 0; }
.note { color: var(--muted); font-size: .9rem; }
code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em;
  overflow-wrap: anywhere;
}
nav ul { list-style: none; padding: 0; margin: .8rem 0; display: flex; flex-wrap: wrap;
  gap: .3rem 1.2rem; }
dl.facts {
  display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 15rem), 1fr));
  gap: .6rem 1.5rem; margin: 1rem 0;
}
dl.facts div { min-width: 0; }
dl.facts dt { color: var(--muted); font-size: .78rem; text-transform: uppercase;
  letter-spacing: .04em; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 100%; }
th, td { padding: .4rem .65rem; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
thead th { background: var(--head); font-weight: 600; white-space: nowrap; }
tbody tr:hover td { background-color: #f3f6f9; }
.num { text-align: right; }
td.wrap { overflow-wrap: anywhere; min-width: 12rem; }
td.nowrap { white-space: nowrap; }
td.params { min-width: 10rem; }
.ci { display: block; color: var(--muted); font-size: .78rem; white-space: nowrap; }
th button {
  font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer;
  display: inline-flex; gap: .3rem; align-items: center; white-space: nowrap;
}
th button:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
th .arrow { display: inline-block; width: .8em; color: var(--muted); }
th[aria-sort="ascending"] .arrow::after { content: "\\25B2"; color: var(--fg); }
th[aria-sort="descending"] .arrow::after { content: "\\25BC"; color: var(--fg); }
th[aria-sort="none"] .arrow::after { content: "\\21C5"; }
td.pass, tbody tr:hover td.pass { background-color: var(--pass-bg); color: var(--pass-fg); }
td.fail, tbody tr:hover td.fail {
  background-color: var(--fail-bg); color: var(--fail-fg); font-weight: 600;
}
.mark { display: inline-block; min-width: 1em; text-align: center; }
.key { display: inline-block; padding: 0 .4rem; border-radius: 3px; }
.key.pass { background: var(--pass-bg); color: var(--pass-fg); }
.key.fail { background: var(--fail-bg); color: var(--fail-fg); font-weight: 600; }
fieldset.filters {
  border: 1px solid var(--line); border-radius: 6px; padding: .45rem .8rem .6rem;
  display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin: .6rem 0;
}
fieldset.filters legend { font-weight: 600; padding: 0 .3rem; }
fieldset.filters label { display: inline-flex; gap: .35rem; align-items: center; cursor: pointer; }
fieldset.filters label.off { color: var(--muted); cursor: not-allowed; }
.charts {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr));
  gap: 1.5rem; margin: .8rem 0;
}
figure { margin: 0; min-width: 0; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
.chart > svg { display: block; width: 100%; height: auto; }
.chart text { fill: var(--muted); font-size: 12px; }
.chart text.title { fill: var(--fg); font-size: 13px; }
.chart .grid { stroke: #e6e9ec; stroke-width: 1; }
.chart .axis { stroke: var(--muted); stroke-width: 1; }
.chart .curve { fill: none; stroke-width: 2.2; stroke-linejoin: round; stroke-linecap: round; }
.chart .chance { stroke: #8c959f; stroke-width: 1.2; stroke-dasharray: 2 4; }
.chart .threshold { stroke: var(--fg); stroke-width: 1.2; stroke-dasharray: 6 4; }
ul.legend {
  list-style: none; padding: 0; margin: .4rem 0 0; display: flex; flex-wrap: wrap;
  gap: .25rem 1.1rem; font-size: .86rem;
}
ul.legend li { display: inline-flex; gap: .4rem; align-items: center; }
ul.legend svg { flex: none; width: 30px; height: 12px; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .85rem; }
""".strip()

JS = """
(function () {
  "use strict";
  var board = JSON.parse(document.getElementById("board-data").textContent);
  var SVG_NS = "http://www.w3.org/2000/svg";
  // Okabe-Ito colours (told apart under the common colour-vision deficiencies), and a dash
  // pattern per model so curves differ without colour too.
  var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
    "#999933"];
  var DASHES = ["", "7 4", "2 3", "9 3 2 3", "4 4", "1 5", "12 4", "6 2 2 2 2 2"];
  var W = 460, H = 400, M = {left: 56, right: 16, top: 16, bottom: 50};
  var TICKS = [0, 0.2, 0.4, 0.6, 0.8, 1];

  function fmt(value) {
    return value === null || value === undefined ? "n/a" : value.toFixed(3);
  }

  function svg(name, attrs, parent) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    if (parent) parent.appendChild(node);
    return node;
  }

  function titled(node, text) {
    svg("title", {}, node).textContent = text;
    return node;
  }

  // --- sortable tables ---------------------------------------------------------------------

  function sortKey(row, column) {
    var cell = row.cells[column];
    var raw = cell ? cell.getAttribute("data-sort") : null;
    return raw === null ? null : JSON.parse(raw);
  }

  function compareKeys(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    if (typeof a === "number") return -1;
    if (typeof b === "number") return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function makeSortable(table) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var body = table.tBodies[0];
    var original = Array.prototype.slice.call(body.rows);
    function sortBy(header, direction) {
      var column = headers.indexOf(header);
      var keyed = original.map(function (row, position) {
        return {row: row, key: sortKey(row, column), position: position};
      });
      keyed.sort(function (x, y) {
        // Missing values go last whichever the direction; ties keep the board's order.
        if (x.key === null || y.key === null) {
          if (x.key === y.key) return x.position - y.position;
          return x.key === null ? 1 : -1;
        }
        var order = compareKeys(x.key, y.key);
        if (direction === "descending") order = -order;
        return order !== 0 ? order : x.position - y.position;
      });
      keyed.forEach(function (item) { body.appendChild(item.row); });
      headers.forEach(function (other) {
        if (other.hasAttribute("aria-sort")) {
          other.setAttribute("aria-sort", other === header ? direction : "none");
        }
      });
    }
    headers.forEach(function (header) {
      var button = header.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var now = header.getAttribute("aria-sort");
        var next = now === "ascending" ? "descending" : now === "descending" ? "ascending"
          : header.getAttribute("data-first") || "ascending";
        sortBy(header, next);
      });
    });
  }

  // --- subset-group filter -----------------------------------------------------------------

  function setUpFilter() {
    var table = document.getElementById("heat");
    var status = document.getElementById("heat-status");
    if (!table) return;
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var radios = Array.prototype.slice.call(
      document.querySelectorAll('input[name="subset-group"]'));
    function apply(group) {
      var shown = 0;
      rows.forEach(function (row) {
        var groups = (row.getAttribute("data-groups") || "").split(" ");
        row.hidden = !(group === "all" || groups.indexOf(group) >= 0);
        if (!row.hidden) shown += 1;
      });
      table.setAttribute("data-filter", group);
      if (status) status.textContent = "Showing " + shown + " of " + rows.length + " subsets.";
    }
    radios.forEach(function (radio) {
      radio.addEventListener("change", function () { if (radio.checked) apply(radio.value); });
    });
    var checked = radios.filter(function (radio) { return radio.checked && !radio.disabled; });
    apply(checked.length ? checked[0].value : "all");
  }

  // --- charts ------------------------------------------------------------------------------

  function scales() {
    var width = W - M.left - M.right, height = H - M.top - M.bottom;
    return {
      x: function (v) { return M.left + v * width; },
      y: function (v) { return M.top + (1 - v) * height; }
    };
  }

  function frame(container, label, xLabel, yLabel) {
    var s = scales();
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label});
    var grid = svg("g", {"class": "grid-layer"}, root);
    TICKS.forEach(function (v) {
      svg("line", {"class": "grid", x1: s.x(v), x2: s.x(v), y1: s.y(0), y2: s.y(1)}, grid);
      svg("line", {"class": "grid", x1: s.x(0), x2: s.x(1), y1: s.y(v), y2: s.y(v)}, grid);
      svg("line", {"class": "axis tick", x1: s.x(v), x2: s.x(v), y1: s.y(0), y2: s.y(0) + 5},
        root);
      svg("line", {"class": "axis tick", x1: s.x(0) - 5, x2: s.x(0), y1: s.y(v), y2: s.y(v)},
        root);
      svg("text", {x: s.x(v), y: s.y(0) + 19, "text-anchor": "middle"}, root).textContent =
        v.toFixed(1);
      svg("text", {x: s.x(0) - 9, y: s.y(v) + 4, "text-anchor": "end"}, root).textContent =
        v.toFixed(1);
    });
    svg("line", {"class": "axis", x1: s.x(0), x2: s.x(1), y1: s.y(0), y2: s.y(0)}, root);
    svg("line", {"class": "axis", x1: s.x(0), x2: s.x(0), y1: s.y(0), y2: s.y(1)}, root);
    svg("text", {"class": "title", x: (s.x(0) + s.x(1)) / 2, y: H - 8, "text-anchor": "middle"},
      root).textContent = xLabel;
    var middle = (s.y(0) + s.y(1)) / 2;
    svg("text", {"class": "title", x: 0, y: 0, "text-anchor": "middle",
      transform: "translate(15 " + middle + ") rotate(-90)"}, root).textContent = yLabel;
    container.appendChild(root);
    return root;
  }

  function pathData(segments) {
    var s = scales();
    return segments.map(function (segment) {
      var points = segment.map(function (p) {
        return s.x(p[0]).toFixed(2) + "," + s.y(p[1]).toFixed(2);
      });
      return "M" + points.join("L") + (points.length === 1 ? "l0,0" : "");
    }).join("");
  }

  function segmentsOf(xs, ys) {
    var segments = [], current = [];
    xs.forEach(function (x, i) {
      if (x === null || ys[i] === null) {
        if (current.length) segments.push(current);
        current = [];
      } else {
        current.push([x, ys[i]]);
      }
    });
    if (current.length) segments.push(current);
    return segments;
  }

  function swatch(colour, dash, kind) {
    var node = svg("svg", {width: 30, height: 12, "aria-hidden": "true"});
    var attrs = {x1: 1, x2: 29, y1: 6, y2: 6, stroke: colour, "stroke-width": 2.2};
    if (dash) attrs["stroke-dasharray"] = dash;
    if (kind) attrs["class"] = kind;
    svg("line", attrs, node);
    return node;
  }

  function legend(container, items) {
    var list = document.createElement("ul");
    list.className = "legend";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.appendChild(swatch(item.colour, item.dash, item.kind));
      li.appendChild(document.createTextNode(item.text));
      if (item.model !== undefined) li.setAttribute("data-model", item.model);
      list.appendChild(li);
    });
    container.appendChild(list);
  }

  function curve(root, model, index, segments) {
    var attrs = {"class": "curve", d: pathData(segments), stroke: COLOURS[index % COLOURS.length],
      "data-model": model};
    var dash = DASHES[index % DASHES.length];
    if (dash) attrs["stroke-dasharray"] = dash;
    titled(svg("path", attrs, root), model);
  }

  function marker(root, index, x, y, text) {
    var s = scales();
    titled(svg("circle", {"class": "marker", cx: s.x(x), cy: s.y(y), r: 4.5,
      fill: COLOURS[index % COLOURS.length], stroke: "#fff", "stroke-width": 1.5}, root), text);
  }

  function drawRoc(container) {
    var root = frame(container, "ROC curves of every model", "false positive rate (real called AI)",
      "true positive rate (AI detected)");
    var s = scales();
    svg("line", {"class": "chance", x1: s.x(0), y1: s.y(0), x2: s.x(1), y2: s.y(1)}, root);
    var items = [{colour: "#8c959f", dash: "2 4", kind: "chance", text: "chance"}];
    board.ranking.forEach(function (entry, index) {
      var curves = board.curves[entry.model] || {};
      var roc = curves.roc;
      var item = {colour: COLOURS[index % COLOURS.length], dash: DASHES[index % DASHES.length],
        model: entry.model};
      if (!roc) {
        item.text = entry.model + (curves.n_scored ? ": no ROC (its scored tracks hold one class)"
          : ": no ROC (no scored tracks)");
        items.push(item);
        return;
      }
      curve(root, entry.model, index, segmentsOf(roc.fpr, roc.tpr));
      if (entry.fpr !== null && entry.recall !== null) {
        marker(root, index, entry.fpr, entry.recall, entry.model + " at threshold " +
          board.threshold + ": FPR " + fmt(entry.fpr) + ", TPR " + fmt(entry.recall));
      }
      item.text = entry.model + " (AUC " + fmt(entry.auc) + ")";
      items.push(item);
    });
    legend(container, items);
  }

  function drawF1(container) {
    var root = frame(container, "F1 against the decision threshold for every model",
      "threshold on P(AI)", "F1 (AI positive)");
    var s = scales(), t = board.threshold;
    var line = svg("line", {"class": "threshold", x1: s.x(t), x2: s.x(t), y1: s.y(0),
      y2: s.y(1)}, root);
    titled(line, "run threshold " + t);
    var items = [{colour: "#1b1f24", dash: "6 4", kind: "threshold",
      text: "run threshold " + t + " (dots: F1 there)"}];
    board.ranking.forEach(function (entry, index) {
      var f1 = (board.curves[entry.model] || {}).f1;
      if (f1) curve(root, entry.model, index, segmentsOf(f1.thresholds, f1.f1));
      if (entry.f1 !== null) {
        marker(root, index, t, entry.f1, entry.model + ": F1 " + fmt(entry.f1) +
          " at threshold " + t);
      }
      items.push({colour: COLOURS[index % COLOURS.length], dash: DASHES[index % DASHES.length],
        model: entry.model, text: entry.model + " (F1 " + fmt(entry.f1) + " at " + t + ")"});
    });
    legend(container, items);
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
  setUpFilter();
  var roc = document.getElementById("roc-chart"), f1 = document.getElementById("f1-chart");
  if (roc) drawRoc(roc);
  if (f1) drawF1(f1);
  document.documentElement.setAttribute("data-ready", "true");
})();
""".strip()

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _e(value: Any) -> str:
    """Escaped text of a board value; ``n/a`` for None."""
    return escape(MISSING if value is None else str(value), quote=True)


def _sort_attr(value: Any) -> str:
    """The ``data-sort`` attribute the script orders by (a JSON number or string); none for a
    missing value, which the script keeps last."""
    if value is None:
        return ""
    return f' data-sort="{escape(json.dumps(value), quote=True)}"'


def _params_number(params: Any) -> float | str | None:
    """Parameter count for sorting: "~4k (...)" -> 4000.0, "18.7M" -> 1.87e7; other text as
    itself, so it sorts after the numbers."""
    if params is None:
        return None
    if isinstance(params, int | float) and not isinstance(params, bool):
        return float(params)
    match = _PARAMS.match(str(params))
    if not match:
        return str(params)
    return float(match.group(1)) * _SCALE[match.group(2).lower()]


def _metric_cell(value: float | None, ci: dict[str, Any] | None) -> str:
    """A value with its interval below it (``[n/a]`` when the bootstrap had none)."""
    if ci is None or ci.get("low") is None:
        interval = f"[{MISSING}]"
    else:
        interval = f"[{fmt(ci['low'])}, {fmt(ci['high'])}]"
    return (
        f'<td class="num"{_sort_attr(value)}>{fmt(value)}'
        f'<span class="ci">{escape(interval)}</span></td>'
    )


def _table(table_id: str | None, head: list[str], rows: list[str], cls: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    klass = f' class="{cls}"' if cls else ""
    return "\n".join(
        [
            '<div class="scroll">',
            f"<table{ident}{klass}>",
            "<thead><tr>" + "".join(head) + "</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            "</div>",
        ]
    )


def _th(text: str, num: bool = False) -> str:
    klass = ' class="num"' if num else ""
    return f'<th scope="col"{klass}>{text}</th>'


# (key, header, numeric, first sort direction): higher is better for F1, AUC, precision and
# recall, so their first click puts the best first; lower is better for FPR and FAIL.
_RANK_COLUMNS: tuple[tuple[str, str, bool, str], ...] = (
    ("rank", "rank", True, "ascending"),
    ("model", "model", False, "ascending"),
    ("f1", "F1", True, "descending"),
    ("auc", "AUC", True, "descending"),
    ("precision", "precision", True, "descending"),
    ("recall", "recall", True, "descending"),
    ("fpr", "FPR", True, "ascending"),
    ("scored", "scored / n", True, "descending"),
    ("fail", "FAIL / N", True, "ascending"),
    ("params", "params", False, "ascending"),
)


def _header(board: dict[str, Any]) -> list[str]:
    n_models, n_runs = len(board["ranking"]), len(board["provenance"])
    variant = board["primary_variant"]
    facts = [
        ("bench", f"<code>{_e(board['bench'])}</code>"),
        ("split", f"<code>{_e(board['split'])}</code>"),
        ("threshold", f"P(AI) &ge; {board['threshold']:g} calls a track AI"),
        ("tracks", _e(board["n_tracks"])),
        ("models / runs", f"{n_models} from {n_runs} run(s)"),
        ("bench fingerprint", f"<code>{_e(board['fingerprint'])}</code>"),
        ("primary variant", f"<code>{_e(variant['name'])}</code>"),
        ("decode protocol", f"<code>{_e(board['decode_protocol'])}</code>"),
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
            f'<p class="lead">Best by F1: <strong>{_e(best["model"])}</strong> '
            f"(F1 {fmt(best['f1'])}, AUC {fmt(best['auc'])}, sanity FAIL / N "
            f"{_e(best['fail_n'])}).</p>"
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
        f"<h1>ArtifactBench leaderboard: <code>{_e(board['bench'])}</code></h1>",
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
            f'<td class="num"{_sort_attr(e["rank"])}>{e["rank"]}</td>',
            f"<td{_sort_attr(e['model'])}><strong>{_e(e['model'])}</strong></td>",
            *(_metric_cell(e[k], e["ci"].get(k)) for k in ("f1", "auc", "precision")),
            *(_metric_cell(e[k], e["ci"].get(k)) for k in ("recall", "fpr")),
            f'<td class="num"{_sort_attr(e["n_scored"])}>{e["n_scored"]} / {e["n"]}</td>',
            f'<td class="num"{_sort_attr(e["n_fail"])}>{_e(e["fail_n"])}</td>',
            f'<td class="params"{_sort_attr(_params_number(e["params"]))}>{_e(e["params"])}</td>',
        ]
        rows.append(f'<tr data-model="{_e(e["model"])}">{"".join(cells)}</tr>')
    text = (
        f"Ranked by F1 on each model's scored tracks (ties: AUC, then model id); a track is "
        f"called AI when P(AI) &ge; {board['threshold']:g}. Under each value, its {level} "
        f"percentile bootstrap interval ({board['resamples']} resamples, seed {board['seed']}, "
        f"stratified by label). FAIL / N counts the subsets whose sanity rule the model fails. "
        f"Click a column header to sort; click again to reverse. Missing values stay last."
    )
    return [
        '<section id="ranking" aria-labelledby="ranking-h">',
        '<h2 id="ranking-h">Ranking</h2>',
        f"<p>{text}</p>",
        _table("ranking-table", head, rows, "sortable"),
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
    status = "pass" if passed else "fail"
    return (
        f'<td class="num {status}"{_sort_attr(rate)} data-pass="{str(passed).lower()}" '
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
    head = [_th("subset"), _th("label"), _th("rule"), _th("tracks", num=True)]
    head += [_th(f"<code>{_e(m)}</code>", num=True) for m in models]
    rows = []
    for name in board["subset_order"]:
        info = board["subsets"][name]
        member = " ".join(key for key, _, _ in GROUPS if name in groups[key])
        rule = _e(info["rule"]) + (" (default)" if info.get("default_rule") else "")
        label = "AI" if info["label"] == "ai" else _e(info["label"])
        cells = [
            f'<td class="nowrap"><code>{_e(name)}</code></td>',
            f"<td>{label}</td>",
            f'<td class="nowrap">{rule}</td>',
            f'<td class="num">{_e(info["n_tracks"])}</td>',
            *(_heat_cell(board["heat"].get(m, {}).get(name)) for m in models),
        ]
        rows.append(f'<tr data-subset="{_e(name)}" data-groups="{member}">{"".join(cells)}</tr>')
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
        _table("heat", head, rows),
        "</section>",
    ]


def _diff_cell(block: dict[str, Any] | None) -> str:
    if block is None:
        return f'<td class="num">{MISSING}</td>'
    return _metric_cell(block["difference"], block)


def _pairs(board: dict[str, Any]) -> list[str]:
    out = [
        '<section id="pairs" aria-labelledby="pairs-h">',
        '<h2 id="pairs-h">Paired verdicts</h2>',
    ]
    if not board["pairs"]:
        return [*out, "<p>One model: no pair to compare.</p>", "</section>"]
    head = [_th("rank", num=True), _th("A"), _th("B"), _th("common tracks", num=True)]
    head += [_th("F1 A &minus; B", num=True), _th("AUC A &minus; B", num=True)]
    head += [_th("DeLong p", num=True), _th("McNemar p", num=True), _th("verdict")]
    rows = []
    for pair in board["pairs"]:
        boot = pair["bootstrap"]
        cells = [
            f'<td class="num">{pair["rank"]}</td>',
            f"<td>{_e(pair['a'])}</td>",
            f"<td>{_e(pair['b'])}</td>",
            f'<td class="num">{_e(pair["n_common"])}</td>',
        ]
        if boot is None:
            cells += [f'<td class="num">{MISSING}</td>'] * 4
        else:
            cells += [_diff_cell(boot.get("f1")), _diff_cell(boot.get("auc"))]
            cells += [f'<td class="num">{format_p(pair["delong"]["p"])}</td>']
            cells += [f'<td class="num">{format_p(pair["mcnemar"]["p"])}</td>']
        cells.append(f'<td class="wrap">{_e(pair["verdict"])}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    text = (
        "Each model against the next-ranked one, on the tracks both scored. Differences are "
        "A &minus; B with paired bootstrap intervals below; DeLong tests the AUC difference and "
        f"McNemar's exact test the calls. A verdict needs an interval excluding 0 or "
        f"p &lt; {board['alpha']:g}; the p-values are not corrected for multiplicity."
    )
    return [*out, f"<p>{text}</p>", _table("pairs-table", head, rows), "</section>"]


def _published_cell(block: dict[str, Any] | None) -> list[str]:
    if not block:
        return [f'<td class="num">{MISSING}</td>'] * 2
    source = "runner" if block["table"] == RUNNER else f"Table {block['table']}"
    return [
        f'<td class="num">{fmt(block["value"])}<span class="ci">{_e(source)}</span></td>',
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
    head = [_th("model"), _th("paper name")]
    head += [_th("published F1", num=True), _th("measured F1", num=True)]
    head += [_th("published AUC", num=True), _th("measured AUC", num=True)]
    rows = []
    for e in board["ranking"]:
        blocks = e["published"]
        names = [b["paper_name"] for b in blocks.values() if b and b.get("paper_name")]
        cells = [f"<td>{_e(e['model'])}</td>", f"<td>{_e(names[0] if names else None)}</td>"]
        cells += _published_cell(blocks.get("f1")) + _published_cell(blocks.get("auc"))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    text = (
        f"The paper's figures for bench <code>{_e(board['paper_bench'])}</code> (the source "
        "under each value; <em>runner</em> is the reference runner's results file), measured "
        "on the paper's own population and accounting, beside this board's measurement under "
        "that accounting."
    )
    return [*out, f"<p>{text}</p>", _table("published-table", head, rows), "</section>"]


def _provenance(board: dict[str, Any]) -> list[str]:
    head = [_th("run"), _th("fingerprint"), _th("finished (UTC)"), _th("models taken")]
    head.append(_th("replaced by a later run"))
    rows = []
    for p in board["provenance"]:
        cells = [
            f'<td class="wrap"><code>{_e(p["run_dir"])}</code></td>',
            f"<td><code>{_e(p['fingerprint'])}</code></td>",
            f'<td class="nowrap">{_e(p["finished_utc"] or None)}</td>',
            f"<td>{_e(', '.join(p['models']) or '(none)')}</td>",
            f"<td>{_e(', '.join(p['replaced']) or '-')}</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    out = [
        '<section id="provenance" aria-labelledby="provenance-h">',
        '<h2 id="provenance-h">Provenance</h2>',
        _table("provenance-table", head, rows),
    ]
    if board["replaced"]:
        items = "".join(
            f"<li><code>{_e(r['model'])}</code>: <code>{_e(r['kept'])}</code> replaces "
            f"<code>{_e(r['replaced'])}</code>.</li>"
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
        f"<title>{_e(title)}</title>",
        '<link rel="icon" href="data:,">',
        f"<style>\n{CSS}\n</style>",
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
        f"<script>\n{JS}\n</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(line for line in lines if line) + "\n"
