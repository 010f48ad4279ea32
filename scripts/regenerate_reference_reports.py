"""Regenerate `reports/demo/`, the demo recipe's reference outputs.

Runs the `demo` recipe into a temporary directory (the demo bench is generated into the cache
on first use, then reused) and copies its leaderboard.md, leaderboard.json, leaderboard.html and
metrics.json, provenance pinned, into the checkout's `reports/demo/`. Run it after a change that
is meant to move the demo's numbers or the leaderboard's rendering, and review the diff:
`tests/test_reference_reports.py` holds every later run to these files.

    python scripts/regenerate_reference_reports.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from artifactbench.progress import progress_to
from artifactbench.recipes import load_recipe, regenerate_reference

CHECKOUT = Path(__file__).resolve().parents[1]


def main() -> int:
    err = Console(stderr=True, soft_wrap=True)
    recipe = load_recipe("demo")
    target = CHECKOUT / "reports" / str(recipe.reference)
    started = time.perf_counter()
    with progress_to(err) as progress:
        result = regenerate_reference(
            recipe.name, target, progress, lambda line: err.print(line, markup=False)
        )
    print("Against the files it replaced:\n")
    print(result.markdown)
    print(f"wrote {target} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
