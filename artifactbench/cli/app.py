"""The `artifactbench` application: the command groups in one typer app, and the entry point
that turns wrong input and interrupts into one line and an exit code."""

from __future__ import annotations

import signal
import sys

import typer

from artifactbench.cli import audit, catalog, experiments, results, scoring
from artifactbench.cli.common import UsageProblem

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Benchmark harness for detectors of AI-generated music.",
)
# The commands in the order `--help` lists them: score, read results, side flows, catalog.
COMMANDS = (
    scoring.run, scoring.codec, results.sanity, results.report, scoring.score,
    experiments.train, experiments.export, experiments.ablate, experiments.bandwidth,
    audit.audit, results.leaderboard, catalog.benches, catalog.models, experiments.reproduce,
)  # fmt: skip
for command in COMMANDS:
    app.command()(command)
app.add_typer(catalog.fetch_app, name="fetch")


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def _terminate(_signum: int, _frame: object) -> None:
    """SIGTERM stops a command as Ctrl-C does: committed work is kept, nothing half-written."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: wrong input is one line on stderr and exit code 2, never a traceback;
    SIGINT and SIGTERM are one line and exit code 130."""
    signal.signal(signal.SIGTERM, _terminate)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="artifactbench", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except UsageProblem as exc:
        _fail(str(exc))
    except typer.TyperException as exc:  # click's usage errors, vendored by typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message() + "\n")
            sys.exit(0)
        message = " ".join(exc.format_message().replace("Value error, ", "").split())
        if "No such command" in message:
            message += f" Commands: {', '.join(command.commands)}."
        _fail(message, getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
