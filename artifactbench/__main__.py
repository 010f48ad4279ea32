"""`python -m artifactbench` runs the CLI."""

from artifactbench.cli import main

main()
