"""Commands about what exists and what is here: `benches`, `models`, `fetch bench|model`."""

from __future__ import annotations

from typing import Annotated

import typer

from artifactbench.benches import fetchable_benches
from artifactbench.cli.common import UsageProblem, err, show

fetch_app = typer.Typer(
    no_args_is_help=True, help="Download a bench or model at its pinned revision into the cache."
)


def benches() -> None:
    """List every bench source, whether it is ready here, and what it needs."""
    from artifactbench.benches import BENCH_SOURCES

    for spec, source in BENCH_SOURCES.items():
        print(f"{spec}\t{source.status()}\t{source.needs}")


def models(
    details: Annotated[
        bool,
        typer.Option(help="add parameters, weights and their pins, cached fits, view, threshold"),
    ] = False,
) -> None:
    """List detectors (from their cards) and whether each can run here."""
    from artifactbench.detectors.details import architecture_lines, card_details
    from artifactbench.detectors.registry import availability, cards

    for card in cards().values():
        print(f"{card.id}\t{card.family}\t{availability(card)}")
        if details:
            for line in card_details(card):
                print(f"    {line}")
    if details:
        print("artifactnet-open architectures (counted trainable parameters):")
        for line in architecture_lines():
            print(f"    {line}")


def _fetch_failed(exc: Exception) -> None:
    err.print(f"error: {exc}", markup=False, highlight=False)
    raise typer.Exit(1) from exc


@fetch_app.command("bench")
def fetch_bench(
    name: Annotated[str, typer.Argument(help=" | ".join(fetchable_benches()))],
    revision: Annotated[str | None, typer.Option(help="hub revision (commit, tag, branch)")] = None,
) -> None:
    """Fetch a bench's published files (the hub must be reachable)."""
    from artifactbench.benches import UnknownBench, fetch_bench_source
    from artifactbench.errors import FetchError

    try:
        snapshot = fetch_bench_source(name, revision)
    except UnknownBench as exc:
        raise UsageProblem(str(exc)) from exc
    except FetchError as exc:
        _fetch_failed(exc)
    show(f"fetched {name} into {snapshot}")


@fetch_app.command("model")
def fetch_model_command(
    name: Annotated[str, typer.Argument(help="model id (see `artifactbench models`)")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="a file, a folder of its files, or a URL, instead of the hub"),
    ] = None,
) -> None:
    """Fetch a model's files and encoders into the cache; the first fetch records their pins."""
    from artifactbench.assets import FETCH_RECORD, fetch_model, model_dir
    from artifactbench.detectors.registry import UnknownModel, fetchable_card
    from artifactbench.errors import FetchError

    try:
        card = fetchable_card(name)
    except UnknownModel as exc:
        raise UsageProblem(str(exc)) from exc
    try:
        record = fetch_model(card, source)
    except FetchError as exc:
        _fetch_failed(exc)
    files = ", ".join(f"{k} ({v[:12]})" for k, v in sorted(record["files"].items()))
    commit = f" at commit {record['resolved']}" if record.get("resolved") else ""
    show(f"fetched {card.id}{commit} into {model_dir(card)}: {files}; pins in {FETCH_RECORD}")
