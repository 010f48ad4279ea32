"""Write a leaderboard's three files: ``leaderboard.md``, ``leaderboard.json`` and the
self-contained ``leaderboard.html``, all byte-stable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artifactbench.reports.data import json_text, write_text
from artifactbench.reports.leaderboard.html import leaderboard_html
from artifactbench.reports.leaderboard.markdown import leaderboard_markdown

__all__ = ["write_leaderboard"]


def write_leaderboard(board: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.json`` and the self-contained
    ``leaderboard.html`` (all byte-stable) into `out_dir`; returns file name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "leaderboard.json": json_text(board),
        "leaderboard.md": leaderboard_markdown(board),
        "leaderboard.html": leaderboard_html(board),
    }
    return {name: write_text(out_dir / name, text) for name, text in texts.items()}
