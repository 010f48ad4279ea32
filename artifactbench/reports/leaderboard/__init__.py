"""The leaderboard: merge run directories, render markdown and a self-contained HTML page.

:mod:`.build` loads and merges the runs into one board, :mod:`.markdown` and :mod:`.html` render
it (the page's style and script are the package files ``leaderboard.css`` and ``leaderboard.js``)
and :mod:`.write` writes the three files.
"""

from artifactbench.reports.leaderboard.build import (
    ALPHA,
    F1_GRID,
    IncompatibleRuns,
    RunInfo,
    build_leaderboard,
    compatibility,
    load_run,
)
from artifactbench.reports.leaderboard.html import embedded_json, leaderboard_html, subset_groups
from artifactbench.reports.leaderboard.markdown import leaderboard_markdown
from artifactbench.reports.leaderboard.write import write_leaderboard

__all__ = [
    "ALPHA",
    "F1_GRID",
    "IncompatibleRuns",
    "RunInfo",
    "build_leaderboard",
    "compatibility",
    "embedded_json",
    "leaderboard_html",
    "leaderboard_markdown",
    "load_run",
    "subset_groups",
    "write_leaderboard",
]
