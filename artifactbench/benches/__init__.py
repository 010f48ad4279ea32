"""Bench sources by name: `demo` (embedded, generated on first use) and `folder:PATH`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from artifactbench.benches.base import Bench

BENCH_CHOICES = ("demo", "folder:PATH", "artifactbench", "artifactbench:PATH", "sonics:PATH")


@dataclass(frozen=True)
class BenchOptions:
    """Source options a bench may use: local audio roots, a v2 protocol split, a hub revision."""

    audio_roots: tuple[Path, ...] = field(default_factory=tuple)
    protocol_split: str | None = None
    revision: str | None = None


class UnknownBench(ValueError):
    """A bench spec that names no source; the message lists the valid forms."""


def open_bench(spec: str, options: BenchOptions | None = None) -> Bench:
    """Resolve a `--bench` value to a Bench (metadata only; no audio is read)."""
    options = options or BenchOptions()
    name, _, arg = spec.partition(":")
    if name == "demo" and not arg:
        from artifactbench.benches.demo import load_demo_bench

        return load_demo_bench()
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
    return f"generated on first use (under a minute) into {root}"
