"""HTML building blocks of ``leaderboard.html``: escaped text, the ``data-sort`` keys the page's
script orders by, header and value cells, and the scrolling table every section uses.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from artifactbench.reports.format import MISSING, MISSING_INTERVAL, fmt, interval

__all__ = ["esc", "metric_cell", "params_number", "scroll_table", "sort_attr", "th"]

_PARAMS = re.compile(r"^\s*[~≈]?\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)(?![A-Za-z])")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def esc(value: Any) -> str:
    """Escaped text of a board value; ``n/a`` for None."""
    return escape(MISSING if value is None else str(value), quote=True)


def sort_attr(value: Any) -> str:
    """The ``data-sort`` attribute the script orders by (a JSON number or string); none for a
    missing value, which the script keeps last."""
    if value is None:
        return ""
    return f' data-sort="{escape(json.dumps(value), quote=True)}"'


def params_number(params: Any) -> float | str | None:
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


def metric_cell(value: float | None, ci: dict[str, Any] | None) -> str:
    """A value with its interval below it (``[n/a]`` when the bootstrap had none)."""
    span = interval(ci, missing=MISSING_INTERVAL)
    return (
        f'<td class="num"{sort_attr(value)}>{fmt(value)}<span class="ci">{escape(span)}</span></td>'
    )


def scroll_table(table_id: str | None, head: list[str], rows: list[str], cls: str = "") -> str:
    """A table (header cells `head`, row markup `rows`) in a horizontally scrolling box."""
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


def th(text: str, num: bool = False) -> str:
    """A column header cell (`text` is markup); `num` right-aligns it."""
    klass = ' class="num"' if num else ""
    return f'<th scope="col"{klass}>{text}</th>'
