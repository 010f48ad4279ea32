"""Work in pieces sized by a memory budget, not by the batch.

A batch of 16 tracks of 7 chunks through one call holds the intermediates of 112 chunks at once.
A detector instead measures at load what one row of its input costs (the rise of the process's
resident peak over a probe) and runs at most `budget // cost` rows per call, whatever the batch
size or the number of tracks. Rows are independent, so the pieces give the same scores.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

DEFAULT_BUDGET = 512 * 2**20
# A CPU gains nothing from a call whose intermediates outgrow its caches: each row then runs
# slower than alone (the open ArtifactNet's ONNX export, ~95 MiB a chunk, scores 5.2 chunks/s one
# at a time on 2 cores, 4.4 five at a time, 2.6 ten at a time). CPU pieces stay within this.
CPU_PIECE_BYTES = 128 * 2**20
# Used where the kernel offers no resettable peak (not Linux) or a probe cannot be measured:
# what one 4 s chunk of the published ArtifactNet graph was measured to take on Linux, rounded up.
FALLBACK_BYTES_PER_ROW = 160 * 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _return_free_memory() -> None:
    """Hand memory that malloc keeps after frees back to the kernel, so that what `run`
    allocates shows as a rise of the resident size instead of reusing pages already counted."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return


def peak_rise(run: Callable[[], object]) -> int | None:
    """Bytes by which this process's resident peak rose above its resident size while `run`
    ran; None where the peak cannot be reset (Linux resets it through /proc/self/clear_refs)."""
    _return_free_memory()
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    run()
    peak = _status_bytes("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before)


def bytes_per_row(run_rows: Callable[[int], object], rows: int = 3) -> int:
    """What one input row costs: after a one-row warm-up (lazy initialisation and first
    allocations are no per-row cost), the peak rise of a probe of `rows` rows, charged to the
    `rows - 1` rows beyond the warm-up's (on the safe side whether or not the backend keeps
    its memory between calls)."""
    run_rows(1)
    rise = peak_rise(lambda: run_rows(rows))
    if rise is None:
        return FALLBACK_BYTES_PER_ROW
    return max(1, -(-rise // (rows - 1)))


def rows_per_piece(budget: int, cost: int, device: str) -> int:
    """How many rows one call may take under `budget` bytes (at least one); on a CPU no more
    than `CPU_PIECE_BYTES` hold, however large the budget."""
    if device.startswith("cpu"):
        budget = min(budget, CPU_PIECE_BYTES)
    return max(1, budget // max(1, cost))
