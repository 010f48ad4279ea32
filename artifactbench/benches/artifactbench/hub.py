"""The Hugging Face snapshot of ArtifactBench: fetched once into the cache at a revision, the
resolved commit recorded, and found again offline from that record."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artifactbench.benches.artifactbench.common import write_json
from artifactbench.errors import FetchError
from artifactbench.paths import hub_offline

REPO_ID = "intrect/artifactbench"
FETCH_COMMAND = "artifactbench fetch bench artifactbench"
ALLOW_PATTERNS = ["*.parquet", "*.json", "*.md"]
DEFAULT_REVISION = "main"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _fetch_hint(revision: str | None) -> str:
    return FETCH_COMMAND + (f" --revision {revision}" if revision else "")


def fetch_artifactbench(revision: str | None, cache: Path) -> Path:
    """Download the dataset's shards and cards into `cache` and record the resolved commit.

    Only `*.parquet`, `*.json` and `*.md` are fetched; the audio stays embedded and undecoded.
    With `HF_HUB_OFFLINE` set, only an already cached snapshot is accepted.
    """
    offline = hub_offline()
    requested = revision or DEFAULT_REVISION
    try:
        import huggingface_hub
    except ImportError as exc:
        raise FetchError(
            "fetching ArtifactBench needs the huggingface_hub package: "
            f"pip install huggingface_hub, then run `{_fetch_hint(revision)}`"
        ) from exc
    try:
        snapshot = huggingface_hub.snapshot_download(
            repo_id=REPO_ID,
            repo_type="dataset",
            revision=revision,
            allow_patterns=ALLOW_PATTERNS,
            cache_dir=str(cache / "hub"),
            local_files_only=offline,
        )
    except Exception as exc:  # the hub's errors vary by version; each is reported the same way
        if offline:
            raise FetchError(
                f"{REPO_ID}@{requested} is not in the cache ({cache}) and HF_HUB_OFFLINE is set: "
                f"run `{_fetch_hint(revision)}` where the Hugging Face hub is reachable "
                "(HF_HUB_OFFLINE unset)"
            ) from exc
        reason = " ".join(str(exc).split())
        raise FetchError(
            f"cannot fetch {REPO_ID}@{requested}: {type(exc).__name__}: {reason}; the Hugging "
            f"Face hub must be reachable: rerun `{_fetch_hint(revision)}`"
        ) from exc
    path = Path(snapshot)
    resolved = path.name if _COMMIT.fullmatch(path.name) else None
    if resolved is None and not offline:
        try:
            resolved = huggingface_hub.HfApi().dataset_info(REPO_ID, revision=revision).sha
        except Exception as exc:  # as above
            raise FetchError(
                f"fetched {REPO_ID}@{requested} but cannot resolve its commit: {exc}; rerun "
                f"`{_fetch_hint(revision)}` while the Hugging Face hub is reachable"
            ) from exc
    _record_revision(cache, requested, resolved, path)
    return path


def _record_file(cache: Path) -> Path:
    return cache / "hub.json"


def read_record(cache: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_file(cache).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _record_revision(cache: Path, requested: str, resolved: str | None, snapshot: Path) -> None:
    record = read_record(cache)
    revisions = record.setdefault("revisions", {})
    where = snapshot.resolve()
    base = cache.resolve()
    revisions[requested] = {
        "resolved": resolved,
        "path": where.relative_to(base).as_posix() if where.is_relative_to(base) else str(where),
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record["repo"] = REPO_ID
    write_json(_record_file(cache), record)


def fetched_snapshot(cache: Path, revision: str | None) -> tuple[Path, str | None]:
    """The fetched snapshot for `revision` and its commit; FetchError with the command if none."""
    requested = revision or DEFAULT_REVISION
    entry = read_record(cache).get("revisions", {}).get(requested)
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        path = cache / entry["path"]
        if any(path.rglob("*.parquet")):
            return path, entry.get("resolved")
    raise FetchError(
        f"ArtifactBench ({REPO_ID}@{requested}) is not fetched into {cache}: run "
        f"`{_fetch_hint(revision)}` once (the Hugging Face hub must be reachable), or pass "
        "--bench artifactbench:PATH for a local copy"
    )


def fetch_status(cache: Path) -> str:
    """Whether the snapshot is fetched into `cache`, and at which commit, without reading it."""
    ready = []
    for revision in sorted(read_record(cache).get("revisions") or {}):
        try:
            path, commit = fetched_snapshot(
                cache, None if revision == DEFAULT_REVISION else revision
            )
        except FetchError:
            continue
        flag = "" if revision == DEFAULT_REVISION else f" (--revision {revision})"
        ready.append(f"{revision}{flag} at commit {(commit or 'unresolved')[:12]} in {path}")
    if not ready:
        return f"not fetched: run `{FETCH_COMMAND}` once (the Hugging Face hub must be reachable)"
    return "ready: fetched " + "; ".join(ready)
