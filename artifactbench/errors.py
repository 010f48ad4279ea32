"""Errors more than one stage raises, defined once so a caller catches one class."""

from __future__ import annotations


class FetchError(ValueError):
    """A bench or model could not be fetched (hub unreachable, file missing, bytes changed); the
    message says what to do instead. A ValueError, so a command reports it as wrong input."""
