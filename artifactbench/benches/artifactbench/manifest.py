"""ArtifactBench's v1 and v2 JSON manifests: the document's form, and each row validated.

Rows are checked here, before any is bound to a local file (`binding.py`): required fields,
labels, splits, a well-formed audio_sha256, a relative path that stays under the audio root.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from artifactbench.benches.artifactbench.common import ORIGINS, Taxonomy
from artifactbench.benches.base import LABELS, Label
from artifactbench.benches.catalog import PROTOCOL_SPLITS

MANIFEST = "manifest.json"
V2_FIELDS = (
    "generator_family",
    "generator_version",
    "protocol_split",
    "lineage_id",
    "audio_format",
    "audio_sha256",
)
V1_REQUIRED = ("track_id", "path", "label", "source", "bench_origin")
V2_REQUIRED = ("track_id", "label", "source", "protocol_split")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row, before it is bound to a file."""

    index: int
    track_id: str
    label: Label
    source: str
    generator: str
    origin: str
    path: str | None
    sha256: str | None
    fields: tuple[tuple[str, str], ...]


def parse_manifest(path: Path, data: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """The form (v1 or v2), the rows, and the scalar entries of a `metadata` block."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{path.name} is not a JSON manifest: {exc}") from exc
    expected = '{"bench": [...], "metadata": {...}} (v1) or {"tracks": [...]} (v2)'
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: expected a JSON object, {expected}")
    if "tracks" in doc and "bench" in doc:
        raise ValueError(f"{path.name}: has both 'tracks' (v2) and 'bench' (v1); expected one")
    key, form = ("tracks", "manifest-v2") if "tracks" in doc else ("bench", "manifest-v1")
    rows = doc.get(key)
    if not isinstance(rows, list):
        raise ValueError(f"{path.name}: no list under 'bench' or 'tracks'; expected {expected}")
    if not rows:
        raise ValueError(f"{path.name}: the manifest lists no tracks")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return form, rows, {}
    scalars = (str, int, float, bool, type(None))
    return form, rows, {k: v for k, v in metadata.items() if isinstance(v, scalars)}


def _text(value: Any) -> str | None:
    """A manifest value as stripped text; None for null or empty."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def parse_row(
    name: str, form: str, index: int, row: Any, taxonomy: Taxonomy, seen: dict[str, int]
) -> ManifestRow:
    values = {k: _text(v) for k, v in row.items()} if isinstance(row, dict) else {}
    track_id = values.get("track_id")

    def fail(reason: str) -> ValueError:
        who = f"track_id {track_id!r}" if track_id else "no track_id"
        return ValueError(f"{name} row {index} ({who}): {reason}")

    if not isinstance(row, dict):
        raise fail(f"expected an object, got {type(row).__name__}")
    required = V2_REQUIRED if form == "manifest-v2" else V1_REQUIRED
    missing = [f for f in required if not values.get(f)]
    if form == "manifest-v2" and not (values.get("path") or values.get("audio_sha256")):
        missing.append("path or audio_sha256")
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    assert track_id is not None
    if track_id in seen:
        raise fail(f"duplicate track_id (first at row {seen[track_id]})")
    seen[track_id] = index
    label = cast(str, values["label"]).lower()
    if label not in LABELS:
        raise fail(f"unknown label {values['label']!r}; use ai or real")
    origin = (values.get("bench_origin") or ORIGINS[-1]).lower()
    if origin not in ORIGINS:
        raise fail(f"unknown bench_origin {values['bench_origin']!r}; use train or test")
    fields = {f: values[f] for f in V2_FIELDS if values.get(f)}
    if "protocol_split" in fields:
        fields["protocol_split"] = fields["protocol_split"].lower()
        if fields["protocol_split"] not in PROTOCOL_SPLITS:
            raise fail(
                f"unknown protocol_split {values['protocol_split']!r}; "
                f"use {', '.join(PROTOCOL_SPLITS)}"
            )
    sha = fields.get("audio_sha256")
    if sha is not None:
        sha = fields["audio_sha256"] = sha.lower()
        if not _SHA256.fullmatch(sha):
            raise fail(f"audio_sha256 {values['audio_sha256']!r} is not a sha256 hex digest")
    file = values.get("path")
    if file is not None and not os.path.isabs(file) and _escapes(file):
        raise fail(f"path {file!r} escapes the audio root")
    source = cast(str, values["source"])
    try:
        taxonomy.subset_of(source, label)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    return ManifestRow(
        index=index,
        track_id=track_id,
        label=cast(Label, label),
        source=source,
        generator=values.get("generator") or source,
        origin=origin,
        path=file,
        sha256=sha,
        fields=tuple(fields.items()),
    )


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")
