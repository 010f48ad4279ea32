"""Bench sources by name: `demo` (embedded, generated on first use), `folder:PATH`,
`artifactbench` (fetched from the hub) or `artifactbench:PATH`, and `sonics:PATH`.

`BENCH_SOURCES` is the one list of them: `--bench` choices and `artifactbench benches` both read it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from artifactbench.benches.base import Bench, BenchOptions
from artifactbench.progress import ProgressHook


class UnknownBench(ValueError):
    """A bench spec that names no source; the message lists the valid forms."""


def open_bench(
    spec: str, options: BenchOptions | None = None, progress: ProgressHook | None = None
) -> Bench:
    """Resolve a `--bench` value to a Bench (metadata only; no audio is read). `progress`
    follows the demo bench's generation on first use."""
    options = options or BenchOptions()
    name, _, arg = spec.partition(":")
    if name == "demo" and not arg:
        from artifactbench.benches.demo import load_demo_bench

        return load_demo_bench(progress=progress)
    if name == "folder" and arg:
        from artifactbench.benches.folder import load_folder_bench

        path = Path(arg).expanduser()
        if not path.is_dir():
            raise UnknownBench(f"bench folder not found: {path}")
        return load_folder_bench(path)
    if name == "artifactbench":
        from artifactbench.benches.artifactbench import load_artifactbench

        path = Path(arg).expanduser() if arg else None
        if path is not None and not path.exists():
            raise UnknownBench(f"ArtifactBench path not found: {path}")
        return load_artifactbench(path, options)
    if name == "sonics" and arg:
        from artifactbench.benches.sonics import load_sonics_bench

        path = Path(arg).expanduser()
        if not path.is_dir():
            raise UnknownBench(f"SONICS folder not found: {path}")
        return load_sonics_bench(path, options)
    close = difflib.get_close_matches(name, [c.split(":")[0] for c in BENCH_CHOICES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close and close[0] != name else ""
    raise UnknownBench(f"unknown bench {spec!r}{hint}; choose from: {', '.join(BENCH_CHOICES)}")


def demo_status() -> str:
    """Whether the default demo bench is cached here, without generating it."""
    from artifactbench.benches.demo import default_root

    root = default_root()
    if (root / "bench.json").is_file():
        return f"ready (cached at {root})"
    return f"generated on first use (a few minutes) into {root}"


def artifactbench_status() -> str:
    """Whether ArtifactBench is fetched into the cache, and at which commit, without reading it."""
    from artifactbench.benches.artifactbench import (
        DEFAULT_REVISION,
        FETCH_COMMAND,
        FetchError,
        _fetched_snapshot,
        _read_record,
        default_cache,
    )

    cache = default_cache()
    ready = []
    for revision in sorted(_read_record(cache).get("revisions") or {}):
        try:
            path, commit = _fetched_snapshot(
                cache, None if revision == DEFAULT_REVISION else revision
            )
        except FetchError:
            continue
        flag = "" if revision == DEFAULT_REVISION else f" (--revision {revision})"
        ready.append(f"{revision}{flag} at commit {(commit or 'unresolved')[:12]} in {path}")
    if not ready:
        return f"not fetched: run `{FETCH_COMMAND}` once (the Hugging Face hub must be reachable)"
    return "ready: fetched " + "; ".join(ready)


def _given_path() -> str:
    return "nothing to fetch: ready once PATH holds it"


@dataclass(frozen=True)
class BenchSource:
    """One `--bench` form: what it needs, and a check of whether it is ready here."""

    needs: str
    status: Callable[[], str]


BENCH_SOURCES: dict[str, BenchSource] = {
    "demo": BenchSource(
        "nothing: synthetic tones with known labels, generated once into the cache", demo_status
    ),
    "folder:PATH": BenchSource(
        "your own audio: PATH/manifest.csv, or PATH/ai and PATH/real", _given_path
    ),
    "artifactbench": BenchSource(
        "the Hugging Face dataset intrect/artifactbench (CC BY-NC 4.0), fetched once",
        artifactbench_status,
    ),
    "artifactbench:PATH": BenchSource(
        "a local copy: a folder of its parquet shards, or a v1/v2 manifest (.json) whose audio "
        "is found under --audio-root DIR",
        _given_path,
    ),
    "sonics:PATH": BenchSource(
        "the SONICS release folder: its split CSVs with fake_songs/ and real_songs/ audio",
        _given_path,
    ),
}
BENCH_CHOICES = tuple(BENCH_SOURCES)
