"""The `artifactbench` command: one module per command group, each command parsing its options,
calling one library function and printing what it returns."""

from artifactbench.cli.app import app, main

__all__ = ["app", "main"]
