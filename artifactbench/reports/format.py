"""Cell formatters shared by every report: numbers, signed differences, p-values, bootstrap
intervals, and the marks for an undefined value and a failed sanity rule.

One implementation of each, so report.md, statistics, the paper layouts, the terminal tables and
the leaderboard (markdown and HTML) write a value the same way.
"""

from __future__ import annotations

from typing import Any

# An undefined value (zero denominator, a class missing, no interval).
MISSING = "n/a"
# The leaderboard's interval cell when the bootstrap had none.
MISSING_INTERVAL = f"[{MISSING}]"
# Marks a cell that fails its subset's sanity rule.
FAIL_MARK = "✗"


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell; ``n/a`` for an undefined (None) value."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def signed(value: float | int | None, digits: int = 4, *, clean_zero: bool = True) -> str:
    """A difference with its sign (``+0.0171``, ``-3``); ``n/a`` for None.

    With `clean_zero` a value that rounds to zero prints as ``+0.0000``; without it a small
    negative value keeps its minus (``-0.000``), as the variant and codec tables always wrote.
    """
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:+d}"
    if not clean_zero:
        return f"{value:+.{digits}f}"
    # Adding 0.0 turns a rounded -0.0 into 0.0, so no "-0.0000" appears.
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def format_p(value: float | None) -> str:
    """A p-value for a table cell: three decimals, or ``<0.001``; never 0."""
    if value is None:
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def interval(
    ci: dict[str, Any] | None, digits: int = 3, *, sep: str = ", ", missing: str = MISSING
) -> str:
    """``[low, high]`` of one bootstrap interval (``[0.73-0.86]`` with ``digits=2, sep="-"``);
    `missing` when there is none (no block, or its low bound undefined)."""
    if not ci or ci.get("low") is None:
        return missing
    return f"[{fmt(ci['low'], digits)}{sep}{fmt(ci['high'], digits)}]"


def with_ci(value: float | None, ci: dict[str, Any] | None, *, missing: str = MISSING) -> str:
    """A value followed by its interval: ``0.812 [0.731, 0.862]``."""
    return f"{fmt(value)} {interval(ci, missing=missing)}"
