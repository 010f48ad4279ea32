"""The torch detectors that need the upstream fixtures record where their weights live."""

from __future__ import annotations

from pathlib import Path

from artifactbench.detectors.base import LoadContext
from artifactbench.detectors.registry import backend, cards
from tests.conftest import upstream_fixtures
from tests.test_clam import encoders, weights_dir  # noqa: F401 - `encoders` is a fixture

TINY = upstream_fixtures() / "spectttra-tiny-5s"


def test_spectttra_records_the_device_of_its_weights() -> None:
    card = cards()["spectttra-alpha-5s"]
    detector = backend(card).load(card, TINY, LoadContext(device="cpu"))
    assert detector.provenance["device"] == "cpu"
    assert detector.provenance["requested_device"] == "cpu"
    assert str(next(detector.model.parameters()).device) == "cpu"


def test_clam_records_the_device_of_its_head(tmp_path: Path, encoders) -> None:  # noqa: F811
    card = cards()["clam"]
    folder = weights_dir(tmp_path, encoders, pin_mert=True)
    detector = backend(card).load(card, folder, LoadContext(device="cpu"))
    assert detector.provenance["device"] == "cpu"
    assert detector.provenance["requested_device"] == "cpu"
