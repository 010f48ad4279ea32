"""What `models --details` says about a card: its facts, where each file's pin comes from,
cached fits of a bench-fitted model, and the counted parameters of the open ArtifactNet."""

from __future__ import annotations

from artifactbench.detectors.base import DetectorCard


def architecture_lines() -> list[str]:
    """The open ArtifactNet's architectures with their counted trainable parameters."""
    from artifactbench.detectors.artifactnet_open.model import architecture_counts

    return [f"{name}: {counts_line(counts)}" for name, counts in architecture_counts().items()]


def counts_line(counts: dict[str, int]) -> str:
    return (
        f"ArtifactUNet {counts['unet']:,} + classifier {counts['classifier']:,} "
        f"= {counts['total']:,}"
    )


def trained_on_text(card: DetectorCard) -> str:
    """What the card says the weights were trained on, as runs record it for the reports."""
    if card.fits_on_bench:
        return "the train split of the bench it is fitted on (each run records which)"
    if not card.trained_on:
        return "not published"
    parts = []
    for t in card.trained_on:
        split = f"split {t.split}" if t.split else "split not published"
        parts.append(f"{t.bench} ({split})" + (f": {t.note}" if t.note else ""))
    return "; ".join(parts)


def card_details(card: DetectorCard) -> list[str]:
    """Facts from the card, where each file's sha256 pin comes from (the card, or the record of
    the first fetch), cached fits of a bench-fitted model, and for the open ArtifactNet the
    counts of its shipped weights."""
    from artifactbench.assets import cached_fits, fetch_record, file_pins

    record = fetch_record(card)
    resolved = record.get("resolved")
    source = (
        f"{card.repo}@{card.revision}"
        if card.repo
        else f"revision {card.revision}"
        if card.revision
        else "packaged or user-supplied"
    )
    if isinstance(resolved, str) and resolved != card.revision:
        source += f" (resolved to {resolved} at first fetch)"
    view = card.view
    crop = f"{view.n_chunks} x {view.seconds} s chunks" if view.crop == "chunks" else view.crop
    origins = {
        "card": "pinned by the card",
        "recorded": "recorded at first fetch",
        "none": "not pinned yet: the first fetch records it",
    }
    files = ", ".join(
        f"{name} sha256 {(sha or '-')[:12]} ({origins[origin]})"
        for name, (sha, origin) in file_pins(card).items()
    )
    weights = f"{source}; {files}" if card.files else "none (fitted on the bench's train split)"
    lines = [
        f"params: {card.params or 'unknown'}",
        f"weights: {weights}",
        f"view: {view.rate} Hz, {crop if view.seconds else 'whole track'}; "
        f"threshold {card.threshold}",
        f"trained on: {trained_on_text(card)}",
    ]
    fetched = record.get("encoders")
    for encoder in card.encoders:
        entry = fetched.get(encoder.name) if isinstance(fetched, dict) else None
        files = entry.get("files") if isinstance(entry, dict) else None
        pins = (
            f"{len(files)} files, sha256 recorded at first fetch"
            if isinstance(files, dict)
            else "not pinned yet: the first fetch records each file's sha256"
        )
        code = "its own code (trust_remote_code)" if encoder.trust_remote_code else "no code"
        lines.append(
            f"encoder {encoder.name}: {encoder.repo}@{encoder.revision} (commit pinned by the "
            f"card); {pins}; runs {code} from the snapshot"
        )
    if card.fits_on_bench:
        fits = cached_fits(card)
        if not fits:
            lines.append("cached fits: none yet (a run on a bench fits and caches one)")
        for path, fit in fits:
            lines.append(
                f"cached fit: {path} (bench {fit.get('bench', '?')}, "
                f"{fit.get('bench_fingerprint', '?')}, {fit.get('split', '?')} split, "
                f"{fit.get('n_train_tracks', '?')} tracks); use with --weights {path}"
            )
    if card.family == "artifactnet_open":
        from artifactbench.assets import resolve_files
        from artifactbench.detectors.artifactnet_open.detector import read_weights
        from artifactbench.detectors.artifactnet_open.model import parameter_counts
        from artifactbench.detectors.base import Unavailable

        try:
            model, _, _ = read_weights(next(iter(resolve_files(card, None).values())))
        except (Unavailable, StopIteration, OSError, ValueError) as exc:
            lines.append(f"counted: weights not readable here ({exc})")
        else:
            lines.append(f"counted: {counts_line(parameter_counts(model))}")
    return lines
