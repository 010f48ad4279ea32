"""Audit a bench against another for shared tracks, and write the audit directory.

Every selected track of both benches is decoded once through the decode pool to the protocol
buffer. A track of the audited bench is an exact copy of a reference track when the sha256 of
their float32 buffers agree, so any lossless re-encode counts; it is a fingerprint match when
their Chromaprint fingerprints align (see `fingerprint`), which catches lossy re-encodes and
trims. The audited bench's fingerprints are indexed; the reference bench streams through the
index. A track that cannot be read or decoded is a failure with its stage (`resolve`,
`decode`), one too short to fingerprint a `fingerprint` failure whose exact copies are still
looked for; none stops the audit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from artifactbench import __version__
from artifactbench.audio.decode import DECODE_PROTOCOL, PROTOCOL_RATE, ViewSpec
from artifactbench.audio.pool import Decoded, decode_stream
from artifactbench.audit import fingerprint as fpr
from artifactbench.audit.index import KEY_SHIFT, MIN_VOTES, QueryIndex
from artifactbench.audit.markdown import audit_markdown
from artifactbench.benches.base import Bench, Track
from artifactbench.progress import ProgressHook, no_progress

AUDIT_VERSION = 1
COUNTS = ("n_tracks", "n_exact", "n_fingerprint", "n_failed")
WHOLE_BUFFER = ViewSpec(rate=PROTOCOL_RATE, seconds=None)


@dataclass
class Fingerprinted:
    """One decoded track: the sha256 of its protocol buffer and its fingerprint (None when it
    could not be fingerprinted), or the failure that stopped it."""

    sha256: str | None = None
    items: np.ndarray | None = None
    failure: dict[str, Any] | None = None


@dataclass
class Audit:
    """What the audit found: matched pairs and failures, keyed to the audited tracks."""

    queries: list[Track]
    matches: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _fingerprinted(side: str, track: Track, decoded: Decoded) -> Fingerprinted:
    def failure(stage: str | None, error: str | None) -> dict[str, Any]:
        return {"side": side, "track_id": track.track_id, "subset": track.subset,
                "stage": stage, "error": error}  # fmt: skip

    if decoded.views is None:
        return Fingerprinted(failure=failure(decoded.stage, decoded.error))
    audio = np.ascontiguousarray(decoded.views[0], dtype=np.float32)
    sha = hashlib.sha256(memoryview(audio)).hexdigest()
    try:
        items = fpr.raw_fingerprint(audio)
    except ValueError as exc:
        return Fingerprinted(sha, None, failure("fingerprint", str(exc)))
    if len(items) < fpr.items(fpr.MIN_SECONDS):
        seconds = len(audio) / PROTOCOL_RATE
        why = f"too short to fingerprint: {seconds:.1f} s (a match needs {fpr.MIN_SECONDS:g} s)"
        return Fingerprinted(sha, None, failure("fingerprint", why))
    return Fingerprinted(sha, items)


def _decoded(
    side: str, tracks: list[Track], workers: int, label: str, progress: ProgressHook
) -> Iterator[tuple[int, Fingerprinted]]:
    advance = progress(label, len(tracks))
    for decoded in decode_stream(list(enumerate(tracks)), [WHOLE_BUFFER], workers):
        yield decoded.index, _fingerprinted(side, tracks[decoded.index], decoded)
        advance(1)


def _pair(query: Track, ref: Track, kind: str, hit: fpr.Alignment | None) -> dict[str, Any]:
    return {
        "track_id": query.track_id,
        "subset": query.subset,
        "against_track_id": ref.track_id,
        "against_subset": ref.subset,
        "against_origin": ref.bench_origin,
        "kind": kind,
        "ber": 0.0 if hit is None else round(hit.ber, 4),
        "offset_seconds": 0.0 if hit is None else round(hit.offset / fpr.ITEM_RATE, 2),
        "overlap_seconds": None if hit is None else round(hit.overlap / fpr.ITEM_RATE, 2),
    }


def find_shared(
    queries: list[Track],
    references: list[Track],
    workers: int,
    progress: ProgressHook = no_progress,
    names: tuple[str, str] = ("bench", "against"),
) -> Audit:
    """Every (audited, reference) pair of tracks holding the same audio, exact or by
    fingerprint, and every track that could not be checked."""
    fpr.chromaprint()  # missing: refused before anything is decoded
    audit = Audit(queries)
    known: list[Fingerprinted] = [Fingerprinted() for _ in queries]
    for i, found in _decoded("bench", queries, workers, f"audit: reading {names[0]}", progress):
        known[i] = found
        if found.failure:
            audit.failures.append(found.failure)
    by_sha: dict[str, list[int]] = {}
    for i, found in enumerate(known):
        if found.sha256:
            by_sha.setdefault(found.sha256, []).append(i)
    index = QueryIndex([found.items for found in known])
    label = f"audit: matching against {names[1]}"
    for j, ref in _decoded("against", references, workers, label, progress):
        if ref.failure:
            audit.failures.append(ref.failure)
        exact = set(by_sha.get(ref.sha256 or "", []))
        for i in sorted(exact):
            audit.matches.append(_pair(queries[i], references[j], "exact", None))
        if ref.items is None:
            continue
        for i, offsets in sorted(index.candidates(ref.items).items()):
            query = known[i].items
            if i in exact or query is None:
                continue
            hit = fpr.align(query, ref.items, offsets)
            if hit is not None and hit.matches:
                audit.matches.append(_pair(queries[i], references[j], "fingerprint", hit))
    audit.matches.sort(key=lambda m: (m["subset"], m["track_id"], m["kind"], m["against_track_id"]))
    audit.failures.sort(key=lambda f: (f["side"] != "bench", f["subset"], f["track_id"]))
    return audit


def _subsets(audit: Audit) -> dict[str, dict[str, Any]]:
    """Per audited subset: tracks, tracks with an exact copy, tracks matched by fingerprint
    only, and tracks that failed (any stage)."""
    kinds: dict[str, set[str]] = {}
    for m in audit.matches:
        kinds.setdefault(m["track_id"], set()).add(m["kind"])
    failed = {f["track_id"] for f in audit.failures if f["side"] == "bench"}
    out: dict[str, dict[str, Any]] = {}
    for t in audit.queries:
        row = out.setdefault(t.subset, {"label": t.label, **dict.fromkeys(COUNTS, 0)})
        row["n_tracks"] += 1
        found = kinds.get(t.track_id, set())
        row["n_exact"] += "exact" in found
        row["n_fingerprint"] += found == {"fingerprint"}
        row["n_failed"] += t.track_id in failed
    return out


def _describe(bench: Bench, split: str) -> dict[str, Any]:
    return {"name": bench.name, "fingerprint": bench.fingerprint, "split": split}


def audit_record(
    audit: Audit, bench: Bench, split: str, against: Bench, against_split: str, n_refs: int
) -> dict[str, Any]:
    """The contents of audit.json."""
    subsets = _subsets(audit)
    return {
        "audit_version": AUDIT_VERSION,
        "bench": {**_describe(bench, split), "n_tracks": len(audit.queries)},
        "against": {**_describe(against, against_split), "n_tracks": n_refs},
        "decode_protocol": DECODE_PROTOCOL,
        "method": {
            "exact": "sha256 of the float32 protocol buffer",
            "fingerprint": "Chromaprint raw fingerprint (default algorithm) of 16-bit PCM of "
            "the protocol buffer",
            "max_seconds": fpr.MAX_SECONDS,
            "min_overlap_seconds": fpr.MIN_OVERLAP_SECONDS,
            "short_fraction": fpr.SHORT_FRACTION,
            "min_seconds": fpr.MIN_SECONDS,
            "max_ber": fpr.MAX_BER,
            "min_distinct": fpr.MIN_DISTINCT,
            "key_bits": 32 - KEY_SHIFT,
            "min_votes": MIN_VOTES,
        },
        "subsets": subsets,
        "totals": {key: sum(row[key] for row in subsets.values()) for key in COUNTS},
        "matches": audit.matches,
        "failures": audit.failures,
        "harness": {"version": __version__},
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_audit_dir(record: dict[str, Any], out: Path) -> Path:
    """audit.json and audit.md into `out`, which appears only complete: written as
    OUT.partial and renamed (an interrupted audit leaves no directory behind)."""
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        (work / "audit.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        (work / "audit.md").write_text(audit_markdown(record))
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def default_audit_dir(bench: str, split: str, against: str, against_split: str) -> Path:
    """`audits/BENCH-SPLIT-vs-AGAINST-SPLIT-<UTC stamp>`, names made safe for a path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{bench}-{split}-vs-{against}-{against_split}"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-")
    return Path("audits") / f"{safe}-{stamp}"


def audit_benches(
    bench: Bench,
    against: Bench,
    out: Path,
    *,
    split: str = "all",
    against_split: str = "all",
    workers: int = 0,
    progress: ProgressHook = no_progress,
) -> Path:
    """Audit `bench` (its `split`) against `against` (its `against_split`) and write the audit
    directory `out`; ValueError, before any decode, when `out` exists or a selection is empty,
    `fingerprint.FingerprintUnavailable` when Chromaprint is missing."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} already exists; give another --out")
    queries, references = bench.select(split), against.select(against_split)
    sides = [(bench.name, split, queries), (against.name, against_split, references)]
    for name, chosen, tracks in sides:
        if not tracks:
            raise ValueError(f"bench {name!r} has no tracks in split {chosen!r}")
    names = (f"{bench.name} ({split})", f"{against.name} ({against_split})")
    audit = find_shared(queries, references, workers, progress, names)
    record = audit_record(audit, bench, split, against, against_split, len(references))
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_audit_dir(record, out)
