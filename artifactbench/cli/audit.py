"""`audit`: which tracks of a bench are also in another (a detector's training data, say), and
the `--audit` option with which `report` and `leaderboard` mark results on such tracks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from artifactbench.benches import bench_spec_help
from artifactbench.benches.base import SPLITS
from artifactbench.cli.common import (
    DEFAULT_WORKERS,
    Split,
    UsageProblem,
    WorkersOption,
    err,
    parse_bench,
    show,
)
from artifactbench.progress import progress_to

if TYPE_CHECKING:
    from artifactbench.reports.leakage import AuditFindings

AuditOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--audit",
        help="an audit directory (`artifactbench audit`): mark results on tracks a model was "
        "trained on (repeatable)",
    ),
]


def split_spec(spec: str) -> tuple[str, str]:
    """`BENCH[:SPLIT]` into the bench spec and the split (`all` when none is named)."""
    head, _, tail = spec.rpartition(":")
    if head and tail in SPLITS:
        return head, tail
    return spec, "all"


def read_audits(paths: list[Path] | None) -> list[AuditFindings]:
    """The findings of each `--audit` directory, refused in one line when one is no audit."""
    from artifactbench.reports.leakage import AuditMismatch, read_audit

    try:
        return [read_audit(path) for path in paths or []]
    except AuditMismatch as exc:
        raise UsageProblem(str(exc)) from exc


def audit(
    bench: Annotated[str, typer.Argument(help=f"the bench to audit: {bench_spec_help()}")],
    against: Annotated[
        str,
        typer.Option(
            help="the bench to look in, with an optional :SPLIT (e.g. sonics:/data/sonics:train)"
        ),
    ],
    split: Annotated[Split, typer.Option(help="bench_origin of BENCH to audit")] = Split.all,
    audio_root: Annotated[
        list[Path] | None, typer.Option(help="where a manifest's local audio lives (repeatable)")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="the audit directory to write (default: under audits/)"),
    ] = None,
    workers: WorkersOption = DEFAULT_WORKERS,
) -> None:
    """Find tracks of BENCH also present in another bench: exact copies (sha256 of the decoded
    audio) and Chromaprint fingerprint matches (re-encodes, trims); writes audit.json and
    audit.md."""
    from artifactbench.audit import FingerprintUnavailable, audit_benches
    from artifactbench.audit.run import default_audit_dir
    from artifactbench.benches import BenchOptions

    against_spec, against_split = split_spec(against)
    options = BenchOptions(audio_roots=tuple(audio_root or ()))
    audited, reference = parse_bench(bench, options), parse_bench(against_spec)
    out = out_dir or default_audit_dir(audited.name, split.value, reference.name, against_split)
    try:
        with progress_to(err) as progress:
            written = audit_benches(
                audited, reference, out, split=split.value, against_split=against_split,
                workers=workers, progress=progress,
            )  # fmt: skip
    except (ValueError, FingerprintUnavailable) as exc:
        raise UsageProblem(str(exc).splitlines()[0]) from exc
    show((written / "audit.md").read_text())
    show(f"audit: {written}")
