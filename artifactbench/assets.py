"""Weights on disk: pinned fetches into the cache, `--weights` overrides, sha256 checks.

A detector's card names its files (repo, revision, sha256) and the encoders it builds on. This
module finds them locally, never downloads at run time, and says the exact command that would
make a missing detector available. `artifactbench fetch model NAME` is the only downloader.

Where a card leaves a pin open (`sha256: null`, `revision: main`), the first successful fetch
closes it: `fetch.json` beside the files records the resolved commit and every file's sha256,
later fetches download that commit, and both fetching and loading refuse a file whose bytes
differ from the record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from artifactbench.detectors.base import DetectorCard, EncoderRef, Unavailable
from artifactbench.errors import FetchError
from artifactbench.paths import cache_dir, hub_offline
from artifactbench.util import sha256_file


def fetch_command(card: DetectorCard) -> str:
    needs_source = any(f.url is not None or card.repo is None for f in card.files)
    return f"artifactbench fetch model {card.id}" + (" --from PATH_OR_URL" if needs_source else "")


def model_dir(card: DetectorCard) -> Path:
    """Where `fetch model` puts a card's files: one folder per (id, revision)."""
    return cache_dir() / "models" / card.id / (card.revision or "unpinned")


def packaged_dir() -> Path:
    """Weights that ship inside the package (the open ArtifactNet trained on the demo bench),
    with that model's card."""
    from importlib import resources

    return Path(str(resources.files("artifactbench.data") / "models"))


def data_folder(name: str) -> Path:
    """A data folder at the top of the checkout (`baselines`, `runners`, `reports`), installed as
    the package `artifactbench.data.NAME`: the checkout's own folder in an editable install, the
    installed copy otherwise, so one lookup serves both."""
    from importlib import resources

    return Path(str(resources.files(f"artifactbench.data.{name}")))


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
    and when a cached file's sha256 differs from its pin: the card's, else the first fetch's.
    """
    hint = fetch_command(card)
    found: dict[str, Path] = {}
    packaged = False
    if weights is not None and weights.is_file():
        primary = next((f for f in card.files if not f.optional), None)
        if primary is None:
            raise Unavailable(f"{card.id} takes a weights directory, not a file", hint)
        found[primary.name] = weights
    else:
        folder = weights if weights is not None else model_dir(card)
        if weights is None and all((packaged_dir() / f.name).is_file() for f in card.files):
            folder, packaged = packaged_dir(), True
        for f in card.files:
            if (folder / f.name).is_file():
                found[f.name] = folder / f.name
            elif not f.optional:
                where = f"in {folder}" if weights is not None else f"fetched (looked in {folder})"
                raise Unavailable(f"{card.id}: {f.name} is not {where}", hint)
    if weights is None:
        pins = file_pins(card, recorded=not packaged)
        for name, path in found.items():
            expected, origin = pins[name]
            got = cached_sha256(path) if expected else None
            if expected and got != expected:
                raise Unavailable(pin_mismatch(card, name, origin, expected, got or ""), hint)
    return found


PinOrigin = Literal["card", "recorded", "none"]
_COMMIT = re.compile(r"[0-9a-f]{40}")
FETCH_RECORD = "fetch.json"


def fetch_record(card: DetectorCard) -> dict[str, Any]:
    """What the first fetch of this card recorded beside its files ({} before any fetch)."""
    try:
        record = json.loads((model_dir(card) / FETCH_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def file_pins(card: DetectorCard, recorded: bool = True) -> dict[str, tuple[str | None, PinOrigin]]:
    """{file name: (sha256, where the pin comes from)}: the card's pin when it has one, else the
    sha256 the first fetch recorded, else none yet."""
    files = fetch_record(card).get("files") if recorded else None
    files = files if isinstance(files, dict) else {}
    pins: dict[str, tuple[str | None, PinOrigin]] = {}
    for f in card.files:
        if f.sha256:
            pins[f.name] = (f.sha256, "card")
        elif isinstance(files.get(f.name), str):
            pins[f.name] = (files[f.name], "recorded")
        else:
            pins[f.name] = (None, "none")
    return pins


def pin_mismatch(card: DetectorCard, name: str, origin: PinOrigin, expected: str, got: str) -> str:
    """One line naming the file, the pinned and the actual sha256."""
    if origin == "card":
        return (
            f"{card.id}: {name} has sha256 {got}, the card pins {expected}; refusing weights "
            "that are not the published ones"
        )
    return (
        f"{card.id}: {name} has sha256 {got}, the first fetch recorded {expected}; refusing "
        "weights whose bytes changed since they were fetched"
    )


def cached_fits(card: DetectorCard) -> list[tuple[Path, dict[str, Any]]]:
    """The cached fits of a bench-fitted detector, each with the provenance it was saved with
    (bench, fingerprint, split, train tracks); any of them can be given as `--weights`."""
    found = []
    for path in sorted((cache_dir() / "fits").glob(f"{card.id}-*.json")):
        try:
            provenance = json.loads(path.read_text()).get("provenance", {})
        except (OSError, ValueError, AttributeError):
            provenance = {}
        found.append((path, provenance if isinstance(provenance, dict) else {}))
    return found


def resolve_encoder(card: DetectorCard, name: str) -> Path:
    """The local snapshot of one of the card's pinned encoders, each file checked against the
    sha256 the first fetch recorded."""
    encoder = next((e for e in card.encoders if e.name == name), None)
    if encoder is None:
        raise ValueError(f"{card.id} has no encoder {name!r}")
    folder = encoder_dir(encoder)
    if not (folder / "config.json").is_file():
        raise Unavailable(
            f"{card.id}: encoder {encoder.repo}@{encoder.revision[:10]} is not fetched",
            fetch_command(card),
        )
    entry = fetch_record(card).get("encoders", {}).get(name)
    recorded = entry.get("files") if isinstance(entry, dict) else None
    for file, expected in (recorded or {}).items():
        path = folder / file
        got = cached_sha256(path) if path.is_file() else "(missing)"
        if got != expected:
            raise Unavailable(
                pin_mismatch(card, f"encoder {name} {file}", "recorded", expected, got),
                fetch_command(card),
            )
    return folder


def snapshot_files(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file of a hub snapshot, its download metadata aside."""
    return {
        path.relative_to(folder).as_posix(): cached_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(folder).parts
    }


def files_sha256(files: dict[str, Path]) -> str:
    """One digest over every weight file, in name order: the score store's weights key."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{cached_sha256(files[name])}\n".encode())
    return h.hexdigest()


def fetch_model(card: DetectorCard, source: str | None = None) -> dict[str, Any]:
    """Download a card's files and encoders at their pinned revisions into the cache.

    Hub files come through `huggingface_hub`; a file the card only knows by URL (or that has no
    repo), or every file when `source` is given, comes from `source`: a local file, a directory
    holding the card's file names, or a URL. The first fetch records the resolved commit and each
    file's sha256 in `fetch.json`; a later fetch downloads that commit and refuses other bytes.
    """
    target = model_dir(card)
    target.mkdir(parents=True, exist_ok=True)
    previous = fetch_record(card)
    pins = file_pins(card)
    from_hub = source is None and card.repo is not None
    resolved = previous.get("resolved") if isinstance(previous.get("resolved"), str) else None
    keep_cached = from_hub and hub_offline()
    digests: dict[str, str] = {}
    with _quiet_hub_retries():
        if from_hub and any(f.url is None for f in card.files):
            resolved = _hub_commit(card, card.repo or "", resolved or card.revision, target)
        for f in card.files:
            expected, origin = pins[f.name]
            if not keep_cached:
                _drop_if_changed(target / f.name, expected)
            if from_hub and f.url is None:
                path = _hub_file(card, f.name, resolved or card.revision, target, f.optional)
            else:
                path = _copy_source(card, f.name, source, f.url, target, f.optional)
            if path is None:
                continue
            digest = cached_sha256(path) if path == target / f.name else sha256_file(path)
            if expected and digest != expected:
                if not keep_cached:
                    path.unlink()
                message = pin_mismatch(card, f.name, origin, expected, digest)
                if origin == "recorded":
                    message += f"; to accept new weights, delete {target} and fetch again"
                raise FetchError(message)
            if path != target / f.name:
                path.replace(target / f.name)
            digests[f.name] = digest
        encoders = {}
        for encoder in card.encoders:
            _hub_commit(card, encoder.repo, encoder.revision, encoder_dir(encoder))
            folder = _hub_snapshot(card, encoder)
            files = snapshot_files(folder)
            before = previous.get("encoders", {}).get(encoder.name)
            for file, expected in (
                before.get("files", {}) if isinstance(before, dict) else {}
            ).items():
                if files.get(file, expected) != expected:
                    what = f"encoder {encoder.name} {file}"
                    raise FetchError(
                        pin_mismatch(card, what, "recorded", expected, files[file])
                        + f"; to accept new weights, delete {folder} and fetch again"
                    )
            encoders[encoder.name] = {"repo": encoder.repo, "commit": encoder.revision,
                                      "path": str(folder), "files": files}  # fmt: skip
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "card": card.id,
        "revision": card.revision,
        "resolved": resolved,
        "source": "hub" if from_hub else _described(source),
        "first_fetched_at": previous.get("first_fetched_at", now),
        "fetched_at": now,
        "files": digests,
        "pins": {name: "card" if pins[name][1] == "card" else "recorded" for name in digests},
    }
    if encoders:
        record["encoders"] = encoders
    tmp = target / f".{FETCH_RECORD}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(target / FETCH_RECORD)
    return record


def _described(source: str | None) -> str:
    """The `--from` source as recorded: an absolute path, a URL, or the card's own URLs."""
    if source is None:
        return "url"
    local = Path(source).expanduser()
    return str(local.resolve()) if local.exists() else source


def _drop_if_changed(path: Path, expected: str | None) -> None:
    """A cached file that no longer matches its pin is removed so the fetch replaces it."""
    if expected and path.is_file() and cached_sha256(path) != expected:
        path.unlink()


@contextmanager
def _quiet_hub_retries() -> Iterator[None]:
    """huggingface_hub logs every retry of a failed request; the fetch reports failure once."""
    http_logger = logging.getLogger("huggingface_hub.utils._http")
    level = http_logger.level
    http_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        http_logger.setLevel(level)


_UNREACHABLE = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ConnectionError",
        "NetworkError",
        "TimeoutException",
        "Timeout",
        "ProxyError",
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
    }
)


def _connection_failure(exc: BaseException) -> BaseException | None:
    """The exception in `exc`'s chain that says the hub could not be reached, if any.

    Matched by class name, so requests, httpx and huggingface_hub errors are all recognised
    without importing them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)) or any(
            c.__name__ in _UNREACHABLE for c in type(current).__mro__
        ):
            cause = current.__cause__ or current.__context__
            inner = _connection_failure(cause) if cause is not None else None
            return inner or current
        current = current.__cause__ or current.__context__
    return None


def _hub_commit(card: DetectorCard, repo: str, revision: str | None, target: Path) -> str | None:
    """The commit `revision` of `repo` resolves to, asked once and without retries, so that an
    unreachable hub is reported at once instead of after every download's retries."""
    if hub_offline():
        return revision if revision and _COMMIT.fullmatch(revision) else None
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo, revision=revision).sha
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise FetchError("huggingface_hub is not installed") from exc
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean the same here
        raise _hub_failure(card, f"{repo}@{revision}", exc, target) from exc
    return sha or revision


def _hub_file(
    card: DetectorCard, name: str, revision: str | None, target: Path, optional: bool
) -> Path | None:
    repo = card.repo or ""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise FetchError("huggingface_hub is not installed") from exc
    try:
        return Path(
            hf_hub_download(
                repo, name, revision=revision, local_dir=target, local_files_only=hub_offline()
            )
        )
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean the same here
        missing = any(c.__name__ == "EntryNotFoundError" for c in type(exc).__mro__)
        offline = hub_offline()
        if missing and (offline or _connection_failure(exc) is None):
            if optional:
                return None
            if not offline:
                raise FetchError(f"{repo}@{revision} has no file {name}") from None
        raise _hub_failure(card, f"{repo}/{name}@{revision}", exc, target) from exc


def _hub_snapshot(card: DetectorCard, encoder: EncoderRef) -> Path:
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
        what = f"encoder {encoder.repo}@{encoder.revision}"
        raise _hub_failure(card, what, exc, encoder_dir(encoder)) from exc


def _hub_failure(card: DetectorCard, what: str, exc: Exception, target: Path) -> FetchError:
    """One line: an unreachable hub, a file missing while offline, or the hub's own error."""
    give = f"artifactbench fetch model {card.id} --from PATH"
    if hub_offline():
        return FetchError(
            f"{what} is not in the cache ({target}) and HF_HUB_OFFLINE is set: fetch where the "
            f"Hugging Face hub is reachable (HF_HUB_OFFLINE unset), or give the files: {give}"
        )
    failure = _connection_failure(exc)
    if failure is not None:
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        reason = " ".join(f"{type(failure).__name__}: {failure}".split())[:200]
        return FetchError(
            f"cannot reach the Hugging Face hub ({endpoint}) to fetch {what}: {reason}; fetch "
            "where the hub is reachable, set HF_HUB_OFFLINE=1 to use only what is already "
            f"fetched, or give the files: {give}"
        )
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return FetchError(f"cannot fetch {what}: {reason}")


def _copy_source(
    card: DetectorCard, name: str, source: str | None, url: str | None, target: Path, optional: bool
) -> Path | None:
    """One file from the user's `--from` (a file, a directory of the card's files, or a URL),
    else from the card's URL, written to a partial file that the caller checks before keeping."""
    origin = source or url
    if origin is None:
        raise FetchError(f"{name} has no public download; give it: {fetch_command(card)}")
    local = Path(origin).expanduser()
    partial = target / f".{name}.{os.getpid()}.partial"
    if local.is_dir():
        if not (local / name).is_file():
            if optional:
                return None
            raise FetchError(f"{name} is not in {local}")
        shutil.copyfile(local / name, partial)
        return partial
    required = [f.name for f in card.files if not f.optional]
    if source is not None and required != [name]:
        if optional and len(required) == 1:
            return None
        names = ", ".join(f.name for f in card.files)
        raise FetchError(f"{card.id} has several files: give --from a directory holding {names}")
    if local.is_file():
        shutil.copyfile(local, partial)
        return partial
    if not origin.startswith(("https://", "http://")):
        raise FetchError(f"{origin} is neither a file, a directory nor a URL")
    try:
        with urllib.request.urlopen(origin, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"cannot download {origin}: {exc}") from exc
    return partial
