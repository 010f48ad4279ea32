"""Weights on disk: pinned fetches into the cache, `--weights` overrides, sha256 checks.

A detector's card names its files (repo, revision, sha256) and the encoders it builds on. This
module finds them locally, never downloads at run time, and says the exact command that would
make a missing detector available. `artifactbench fetch model NAME` is the only downloader.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from artifactbench.detectors.base import DetectorCard, EncoderRef, Unavailable, sha256_file
from artifactbench.paths import cache_dir, hub_offline


def fetch_command(card: DetectorCard) -> str:
    needs_source = any(f.url is not None or card.repo is None for f in card.files)
    return f"artifactbench fetch model {card.id}" + (" --from PATH_OR_URL" if needs_source else "")


def model_dir(card: DetectorCard) -> Path:
    """Where `fetch model` puts a card's files: one folder per (id, revision)."""
    return cache_dir() / "models" / card.id / (card.revision or "unpinned")


def packaged_dir() -> Path:
    """Weights that ship inside the package (the open ArtifactNet trained on the demo bench)."""
    from importlib import resources

    return Path(str(resources.files("artifactbench.data") / "models"))


def encoder_dir(encoder: EncoderRef) -> Path:
    return cache_dir() / "models" / "encoders" / encoder.repo.replace("/", "--") / encoder.revision


def cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so multi-GB weights hash once."""
    index_path = cache_dir() / "sha256-index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in index:
        index[key] = sha256_file(path)
        tmp = index_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index, sort_keys=True))
        tmp.replace(index_path)
    return index[key]


def resolve_files(card: DetectorCard, weights: Path | None) -> dict[str, Path]:
    """{file name: local path} for the card's files, from `weights` or the fetch cache.

    `weights` may be a directory holding the card's file names or, for a one-file model, the file
    itself (any name). Raises Unavailable with the fetch command when a required file is missing
    and when a file's sha256 differs from the card's.
    """
    hint = fetch_command(card)
    found: dict[str, Path] = {}
    if weights is not None and weights.is_file():
        primary = next((f for f in card.files if not f.optional), None)
        if primary is None:
            raise Unavailable(f"{card.id} takes a weights directory, not a file", hint)
        found[primary.name] = weights
    else:
        folder = weights if weights is not None else model_dir(card)
        if weights is None and all((packaged_dir() / f.name).is_file() for f in card.files):
            folder = packaged_dir()
        for f in card.files:
            if (folder / f.name).is_file():
                found[f.name] = folder / f.name
            elif not f.optional:
                where = f"in {folder}" if weights is not None else f"fetched (looked in {folder})"
                raise Unavailable(f"{card.id}: {f.name} is not {where}", hint)
    for f in card.files:
        if f.sha256 and f.name in found and weights is None:
            got = cached_sha256(found[f.name])
            if got != f.sha256:
                raise Unavailable(
                    f"{card.id}: {f.name} has sha256 {got[:16]}..., the card pins "
                    f"{f.sha256[:16]}...; refusing weights that are not the published ones",
                    hint,
                )
    return found


def resolve_encoder(card: DetectorCard, name: str) -> Path:
    """The local snapshot of one of the card's pinned encoders."""
    encoder = next((e for e in card.encoders if e.name == name), None)
    if encoder is None:
        raise ValueError(f"{card.id} has no encoder {name!r}")
    folder = encoder_dir(encoder)
    if not (folder / "config.json").is_file():
        raise Unavailable(
            f"{card.id}: encoder {encoder.repo}@{encoder.revision[:10]} is not fetched",
            fetch_command(card),
        )
    return folder


def files_sha256(files: dict[str, Path]) -> str:
    """One digest over every weight file, in name order: the score store's weights key."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{cached_sha256(files[name])}\n".encode())
    return h.hexdigest()


class FetchError(Exception):
    """A fetch that cannot complete here; the message says what is needed."""


def fetch_model(card: DetectorCard, source: str | None = None) -> dict[str, Any]:
    """Download a card's files and encoders at their pinned revisions into the cache.

    Hub files come through `huggingface_hub`; a file the card only knows by URL (or that has no
    repo) comes from `source`, a local path or URL given by the user. Returns a record of what was
    fetched, also written beside the files.
    """
    target = model_dir(card)
    target.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"card": card.id, "revision": card.revision, "files": {}}
    for f in card.files:
        if card.repo is not None and f.url is None:
            path = _hub_file(card.repo, f.name, card.revision, target, f.optional)
        else:
            path = _copy_source(source, f.name, f.url, target, fetch_command(card))
        if path is None:
            continue
        digest = sha256_file(path)
        if f.sha256 and digest != f.sha256:
            path.unlink()
            raise FetchError(f"{f.name}: sha256 {digest} does not match the card's {f.sha256}")
        record["files"][f.name] = digest
    for encoder in card.encoders:
        record.setdefault("encoders", {})[encoder.name] = str(_hub_snapshot(encoder))
    (target / "fetch.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _hub_file(
    repo: str, name: str, revision: str | None, target: Path, optional: bool
) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise FetchError("huggingface_hub is not installed") from exc
    try:
        return Path(
            hf_hub_download(
                repo, name, revision=revision, local_dir=target, local_files_only=hub_offline()
            )
        )
    except EntryNotFoundError:
        if optional:
            return None
        raise FetchError(f"{repo}@{revision}: no file {name}") from None
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean the same here
        raise _hub_failure(f"{repo}/{name}@{revision}", exc) from exc


def _hub_snapshot(encoder: EncoderRef) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                encoder.repo,
                revision=encoder.revision,
                local_dir=encoder_dir(encoder),
                local_files_only=hub_offline(),
            )
        )
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean the same here
        raise _hub_failure(f"encoder {encoder.repo}@{encoder.revision}", exc) from exc


def _hub_failure(what: str, exc: Exception) -> FetchError:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return FetchError(
        f"cannot fetch {what}: {reason}; the Hugging Face hub must be reachable "
        "(HF_HUB_OFFLINE unset)"
    )


def _copy_source(source: str | None, name: str, url: str | None, target: Path, hint: str) -> Path:
    origin = source or url
    if origin is None:
        raise FetchError(f"{name} has no public download; give it: {hint}")
    dest = target / name
    if Path(origin).expanduser().is_file():
        shutil.copyfile(Path(origin).expanduser(), dest)
        return dest
    if not origin.startswith(("https://", "http://")):
        raise FetchError(f"{origin} is neither a file nor a URL")
    try:
        with urllib.request.urlopen(origin, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise FetchError(f"cannot download {origin}: {exc}") from exc
    return dest
