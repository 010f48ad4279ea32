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
