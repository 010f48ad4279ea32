"""Worker-process hygiene shared by every process pool in the harness."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: a run killed with SIGKILL must not leave its workers running, and
    Ctrl-C is the parent's to handle (a worker that took it would print its own traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once (an interrupted or abandoned run): queued work is cancelled and
    running workers are terminated rather than waited for."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
