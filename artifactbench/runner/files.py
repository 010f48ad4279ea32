"""Score loose audio files with one model, outside any bench: the `score` command.

Each file is decoded by the protocol and cut to the model's view exactly as in a run, so a file
scores here what it scores as a track of a bench. A file that cannot be decoded or scored costs
its own record, not the rest; nothing is cached and no run directory is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from artifactbench.benches.base import Bench
from artifactbench.detectors.base import DetectorCard, Unavailable
from artifactbench.runner.plan import RunOptions, load_models, score_row


@dataclass(frozen=True)
class FileScore:
    """One file's answer: P(AI) and the verdict at the threshold, or the error that cost it."""

    path: Path
    model: str
    prob: float | None = None
    verdict: str | None = None
    note: str | None = None
    error: str | None = None

    def record(self) -> dict[str, object]:
        """The JSON line of `score --json`: an error replaces prob and verdict."""
        if self.error is not None:
            return {"path": str(self.path), "prob": None, "verdict": None, "error": self.error}
        found: dict[str, object] = {
            "path": str(self.path), "prob": self.prob, "verdict": self.verdict, "model": self.model
        }  # fmt: skip
        if self.note:
            found["note"] = self.note
        return found


def score_files(
    card: DetectorCard,
    files: list[Path],
    *,
    weights: Path | None = None,
    fit_bench: Bench | None = None,
    threshold: float | None = None,
    workers: int = 1,
) -> Iterator[FileScore]:
    """Load `card` once (fitting on `fit_bench` when it is bench-fitted and has no `weights`)
    and yield one FileScore per file, in order. Raises Unavailable before any file when the
    model cannot be loaded here."""
    from artifactbench.audio.decode import DecodeError, decode_audio, detector_view

    options = RunOptions(workers=workers, weights={card.id: weights} if weights else {})
    loaded, skipped = load_models([card], fit_bench, options)
    if skipped:
        raise Unavailable(f"{card.id} is unavailable: {skipped[0].reason}", skipped[0].hint)
    detector = loaded[0]
    cut = threshold if threshold is not None else card.threshold
    for path in files:
        try:
            view = detector_view(decode_audio(path), card.view)
        except DecodeError as exc:
            yield FileScore(path, card.id, error=str(exc))
            continue
        try:
            row = score_row(detector.score([view])[0], 0.0)
        except Exception as exc:  # noqa: BLE001 - a model error costs this file, not the rest
            message = f"inference: {type(exc).__name__}: {exc}".splitlines()[0]
            yield FileScore(path, card.id, error=message)
            continue
        if row.status == "failed":
            yield FileScore(path, card.id, error=f"inference: {row.error}".splitlines()[0])
            continue
        verdict = "ai" if row.prob >= cut else "real"
        yield FileScore(path, card.id, prob=row.prob, verdict=verdict, note=row.note)
