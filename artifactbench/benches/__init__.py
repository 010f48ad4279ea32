"""Bench sources by name, and the one registry of them (`BENCH_SOURCES`):

- `demo`: the embedded demo bench (synthesized music, real and through AI-generator mechanisms),
  generated into the cache on first use;
- `folder:PATH`: your own audio, PATH/manifest.csv or PATH/ai and PATH/real;
- `artifactbench`: ArtifactBench from the Hugging Face hub, fetched once into the cache
  (`artifactbench fetch bench artifactbench`), then read offline;
- `artifactbench:PATH`: a local copy of ArtifactBench, its parquet shards or a v1/v2 manifest;
- `sonics:PATH`: the SONICS release folder, its split CSVs and audio folders.

Each entry carries its opener, what it needs, a check of whether it is ready here, and its fetcher
if it has one. `open_bench` dispatches through it, and everything that lists sources reads it:
`BENCH_CHOICES`, `bench_spec_help()` (the `--bench` help), `fetchable_benches()` and
`fetch_bench_source` (`fetch bench`), and `artifactbench benches`. The openers import their
source's module lazily, so naming the sources costs no heavy import.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from artifactbench.benches.base import Bench, BenchOptions
from artifactbench.progress import ProgressHook

__all__ = [
    "BENCH_CHOICES",
    "BENCH_SOURCES",
    "Bench",
    "BenchOptions",
    "BenchSource",
    "UnknownBench",
    "artifactbench_status",
    "bench_spec_help",
    "demo_status",
    "fetch_bench_source",
    "fetchable_benches",
    "open_bench",
]


class UnknownBench(ValueError):
    """A bench spec that names no source; the message lists the valid forms."""


# (the text after "name:", or "" when none; options; progress) -> the bench
Opener = Callable[[str, BenchOptions, ProgressHook | None], Bench]


@dataclass(frozen=True)
class BenchSource:
    """One `--bench` form: how to open it, what it needs, whether it is ready here, and how to
    fetch it when it can be fetched (`fetch(revision)` -> where it was fetched to)."""

    open: Opener
    needs: str
    status: Callable[[], str]
    fetch: Callable[[str | None], Path] | None = None

    @property
    def fetchable(self) -> bool:
        return self.fetch is not None


def _open_demo(arg: str, options: BenchOptions, progress: ProgressHook | None) -> Bench:
    from artifactbench.benches.demo import load_demo_bench

    return load_demo_bench(progress=progress)


def _open_folder(arg: str, options: BenchOptions, progress: ProgressHook | None) -> Bench:
    from artifactbench.benches.folder import load_folder_bench

    path = Path(arg).expanduser()
    if not path.is_dir():
        raise UnknownBench(f"bench folder not found: {path}")
    return load_folder_bench(path)


def _open_artifactbench(arg: str, options: BenchOptions, progress: ProgressHook | None) -> Bench:
    from artifactbench.benches.artifactbench import load_artifactbench

    path = Path(arg).expanduser() if arg else None
    if path is not None and not path.exists():
        raise UnknownBench(f"ArtifactBench path not found: {path}")
    return load_artifactbench(path, options)


def _open_artifactbench_stream(
    arg: str, options: BenchOptions, progress: ProgressHook | None
) -> Bench:
    from artifactbench.benches.artifactbench.stream import stream_hub

    return stream_hub(options.revision, options.protocol_split)


def _open_sonics(arg: str, options: BenchOptions, progress: ProgressHook | None) -> Bench:
    from artifactbench.benches.sonics import load_sonics_bench

    path = Path(arg).expanduser()
    if not path.is_dir():
        raise UnknownBench(f"SONICS folder not found: {path}")
    return load_sonics_bench(path, options)


def demo_status() -> str:
    """Whether the default demo bench is cached here, without generating it."""
    from artifactbench.benches.demo import default_root

    root = default_root()
    if (root / "bench.json").is_file():
        return f"ready (cached at {root})"
    return f"generated on first use (a few minutes) into {root}"


def artifactbench_status() -> str:
    """Whether ArtifactBench is fetched into the cache, and at which commit, without reading it."""
    from artifactbench.benches.artifactbench import default_cache, fetch_status

    return fetch_status(default_cache())


def _fetch_artifactbench(revision: str | None) -> Path:
    from artifactbench.benches.artifactbench import default_cache, fetch_artifactbench

    return fetch_artifactbench(revision, default_cache())


def _streamed() -> str:
    return "nothing to fetch: streamed while the run scores (the hub must be reachable)"


def _given_path() -> str:
    return "nothing to fetch: ready once PATH holds it"


BENCH_SOURCES: dict[str, BenchSource] = {
    "demo": BenchSource(
        open=_open_demo,
        needs="nothing: synthetic tones with known labels, generated once into the cache",
        status=demo_status,
    ),
    "folder:PATH": BenchSource(
        open=_open_folder,
        needs="your own audio: PATH/manifest.csv, or PATH/ai and PATH/real",
        status=_given_path,
    ),
    "artifactbench": BenchSource(
        open=_open_artifactbench,
        needs="the Hugging Face dataset intrect/artifactbench (CC BY-NC 4.0), fetched once",
        status=artifactbench_status,
        fetch=_fetch_artifactbench,
    ),
    "artifactbench:hub": BenchSource(
        open=_open_artifactbench_stream,
        needs="the Hugging Face hub, reachable: intrect/artifactbench streamed at a pinned commit "
        "through `datasets`, with no fetch first (the audio is read as tracks are scored)",
        status=_streamed,
    ),
    "artifactbench:PATH": BenchSource(
        open=_open_artifactbench,
        needs="a local copy: a folder of its parquet shards, or a v1/v2 manifest (.json) whose "
        "audio is found under --audio-root DIR",
        status=_given_path,
    ),
    "sonics:PATH": BenchSource(
        open=_open_sonics,
        needs="the SONICS release folder: its split CSVs with fake_songs/ and real_songs/ audio",
        status=_given_path,
    ),
}
BENCH_CHOICES = tuple(BENCH_SOURCES)


def _source_for(name: str, arg: str) -> BenchSource | None:
    """The entry for `name` with an argument (`name:PATH`) or without (`name`); a literal
    entry (`artifactbench:hub`) wins over a placeholder (`artifactbench:PATH`)."""
    if arg and f"{name}:{arg}" in BENCH_SOURCES:
        return BENCH_SOURCES[f"{name}:{arg}"]
    for choice, source in BENCH_SOURCES.items():
        base, _, placeholder = choice.partition(":")
        literal = bool(placeholder) and not placeholder.isupper()  # matched exactly, above
        if base == name and not literal and bool(placeholder) == bool(arg):
            return source
    return None


def open_bench(
    spec: str, options: BenchOptions | None = None, progress: ProgressHook | None = None
) -> Bench:
    """Resolve a `--bench` value to a Bench (metadata only; no audio is read). `progress`
    follows the demo bench's generation on first use."""
    options = options or BenchOptions()
    name, _, arg = spec.partition(":")
    source = _source_for(name, arg)
    if source is not None:
        return source.open(arg, options, progress)
    close = difflib.get_close_matches(name, [c.split(":")[0] for c in BENCH_CHOICES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close and close[0] != name else ""
    raise UnknownBench(f"unknown bench {spec!r}{hint}; choose from: {', '.join(BENCH_CHOICES)}")


def bench_spec_help() -> str:
    """The `--bench` forms in one line, a source open with or without PATH written once:
    `demo | folder:PATH | artifactbench[:PATH] | sonics:PATH`."""
    forms: dict[str, list[str]] = {}
    for choice in BENCH_SOURCES:
        base, sep, placeholder = choice.partition(":")
        forms.setdefault(base, []).append(sep + placeholder)
    parts = []
    for base, suffixes in forms.items():
        args = [s for s in suffixes if s]
        if "" in suffixes and args:
            parts.extend(f"{base}[{a}]" for a in args)
        else:
            parts.extend(base + s for s in suffixes)
    return " | ".join(parts)


def fetchable_benches() -> tuple[str, ...]:
    """The sources `fetch bench NAME` can download: `("artifactbench",)` today."""
    return tuple(name for name, source in BENCH_SOURCES.items() if source.fetchable)


def fetch_bench_source(name: str, revision: str | None = None) -> Path:
    """Fetch the named source at `revision` (its default when None) into the cache and return
    where it went; UnknownBench for a name that cannot be fetched, `errors.FetchError` when the
    fetch fails."""
    source = BENCH_SOURCES.get(name)
    if source is None or source.fetch is None:
        raise UnknownBench(
            f"cannot fetch bench {name!r}; choose from: {', '.join(fetchable_benches())}"
        )
    return source.fetch(revision)
