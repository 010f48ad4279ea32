"""A driver keys the score store with `identify`: it must match `load`'s key, loading nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnxruntime
import pytest
import torch
import transformers

from artifactbench.detectors import clam, fakeprint
from artifactbench.detectors.base import FitPlan, Identity, LoadContext, Unavailable
from artifactbench.detectors.registry import backend, cards, identify
from artifactbench.detectors.spectttra import SpecTTTra
from tests.conftest import RATE, music, upsampled
from tests.test_artifactnet_onnx import mean_square_graph
from tests.test_artifactnet_open_ablate import save_random_weights
from tests.test_clam import encoders, weights_dir  # noqa: F401 - `encoders` is a fixture
from tests.test_spectttra import TINY

REFUSED = "identify must not load the model"


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(REFUSED)


@contextmanager
def model_loading_refused() -> Iterator[None]:
    """Every way a backend builds its model (or fits one) raises while inside."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", _refuse)
        patch.setattr(onnxruntime, "InferenceSession", _refuse)
        patch.setattr(transformers.AutoModel, "from_pretrained", _refuse)
        patch.setattr(SpecTTTra, "from_pretrained", _refuse)
        patch.setattr(clam, "load_stream", _refuse)
        patch.setattr(fakeprint, "fit", _refuse)
        yield


def identify_and_load(
    card_id: str, weights: Path | None, context: LoadContext | None = None, heavy: bool = True
) -> tuple[Identity, Any]:
    """`identify` with model loading refused (which `load` is shown to hit when `heavy`), then
    `load`; both must name the same card and weights."""
    card, context = cards()[card_id], context or LoadContext()
    with model_loading_refused():
        identity = identify(card, weights, context)
        if heavy:
            with pytest.raises(Exception, match=REFUSED):
                backend(card).load(card, weights, context)
    detector = backend(card).load(card, weights, context)
    assert identity.card == card
    assert len(identity.weights_sha256) == 64
    assert identity.weights_sha256 == detector.weights_sha256
    return identity, detector


@pytest.mark.parametrize("external", [False, True])
def test_onnx(tmp_path: Path, external: bool) -> None:
    """The graph, and its external `.onnx.data` when there is one, without a session."""
    graph = mean_square_graph(tmp_path / "tiny.onnx", external=external)
    identity, detector = identify_and_load("artifactnet", graph)
    assert identity.provenance.items() <= detector.provenance.items()
    assert (identity.provenance["external_data"] is not None) == external


@pytest.mark.parametrize("weights", [TINY, TINY / "pytorch_model.bin"])
def test_spectttra(weights: Path) -> None:
    """A snapshot folder, or a path to one of its files, without building the model."""
    identity, detector = identify_and_load("spectttra-alpha-5s", weights)
    assert identity.provenance.items() <= detector.provenance.items()


def test_clam(tmp_path: Path, encoders: dict[str, Path]) -> None:  # noqa: F811
    """The head and both encoders' files and revisions, without transformers loading them."""
    weights = weights_dir(tmp_path, encoders, pin_mert=True)
    identity, detector = identify_and_load("clam", weights)
    assert identity.provenance["head_sha256"] == detector.provenance["head_sha256"]
    for name, record in identity.provenance["encoders"].items():
        assert record["revision"] == detector.provenance["encoders"][name]["revision"]


@pytest.mark.parametrize("given", [False, True])
def test_artifactnet_open(tmp_path: Path, given: bool) -> None:
    """The packaged demo weights, or a trainer's `.pt` given as weights, without reading it."""
    weights = save_random_weights(tmp_path / "open.pt") if given else None
    identity, detector = identify_and_load("artifactnet-open-demo", weights)
    assert identity.provenance.items() <= detector.provenance.items()


def test_fakeprint(tmp_path: Path) -> None:
    """A fit given as weights, or the bench's cached fit, read without fitting again."""
    examples = [(music(i), "real") for i in range(4)]
    examples += [(upsampled(music(20 + i), seed=i), "ai") for i in range(4)]
    path = tmp_path / "fit.json"
    path.write_text(fakeprint.fit(examples, RATE, seed=0).to_json())
    from_file, _ = identify_and_load("fakeprint", path, heavy=False)
    plan = FitPlan(path, examples=_refuse, record={})
    cached, _ = identify_and_load("fakeprint", None, LoadContext(fit_plan=plan), heavy=False)
    assert cached.weights_sha256 == from_file.weights_sha256


@pytest.mark.parametrize(
    ("card_id", "weights"),
    [
        ("artifactnet", None),
        ("artifactnet", "missing.onnx"),
        ("artifactnet-open-demo", "missing.pt"),
        ("spectttra-alpha-5s", "missing"),
        ("clam", "missing"),
        ("fakeprint", "missing.json"),
        ("fakeprint", None),
    ],
)
def test_missing_weights_are_the_same_unavailable(
    tmp_path: Path, card_id: str, weights: str | None
) -> None:
    """Weights that are not there: `identify` raises what `load` raises, message and hint."""
    card, path = cards()[card_id], None if weights is None else tmp_path / weights
    with pytest.raises(Unavailable) as identified:
        identify(card, path, LoadContext())
    with pytest.raises(Unavailable) as loaded:
        backend(card).load(card, path, LoadContext())
    assert str(identified.value) == str(loaded.value)
    assert identified.value.hint == loaded.value.hint
