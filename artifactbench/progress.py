"""Progress for people: a live bar on a terminal, a plain line at most every 10 s in a log.

Work reports progress through a `ProgressHook`: called with (label, total) it opens a task and
returns `advance(n)`. The library never knows where the progress goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ProgressHook = Callable[[str, int], Callable[[int], None]]
# How often a log gets a progress line (seconds); a task's first and last lines always come.
LOG_INTERVAL = 10.0


def no_progress(_label: str, _total: int) -> Callable[[int], None]:
    """A ProgressHook that shows nothing (library default)."""
    return lambda _n: None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LogProgress:
    """Progress as plain lines for a log: `label: done/total (rate/s, ETA h:mm:ss)`, written
    when a task opens, at most every `interval` seconds while it runs, and when it ends."""

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.interval = interval
        self.clock = clock

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        started = last = self.clock()
        done = 0
        self.write(f"{label}: 0/{total}")

        def advance(n: int) -> None:
            nonlocal done, last
            done += n
            now = self.clock()
            if done < total and now - last < self.interval:
                return
            last = now
            elapsed = now - started
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = _clock((total - done) / rate) if rate > 0 else "-:--:--"
            self.write(f"{label}: {done}/{total} ({rate:.2f}/s, ETA {eta})")

        return advance


@contextmanager
def progress_to(console: Console) -> Iterator[ProgressHook]:
    """A ProgressHook drawing rich bars on a terminal, or writing LogProgress lines otherwise."""
    if not console.is_terminal:
        yield LogProgress(lambda line: console.print(line, markup=False, highlight=False))
        return
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bars:

        def start(label: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(label, total=total)
            return lambda n: bars.advance(task, n)

        yield start
