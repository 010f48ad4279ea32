"""Cards are data: listing them never imports a backend; unknown names get a suggestion."""

from __future__ import annotations

import subprocess
import sys

import pytest

from artifactbench.detectors.registry import (
    UnknownModel,
    backend,
    cards,
    fetch_refusal,
    fetchable_cards,
    model_choices,
    resolve_models,
)
from tests.test_demo_reproducible import FULL_FINGERPRINT


def test_listing_cards_imports_no_backend() -> None:
    code = (
        "import sys; from artifactbench.detectors.registry import cards; cards();"
        "print(sorted(m for m in sys.modules if m.startswith('artifactbench.detectors.')));"
        "print('sklearn' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, heavy = out.stdout.strip().splitlines()
    assert "fakeprint" not in modules and heavy == "False False"


def test_resolve_models_all_list_and_suggestions() -> None:
    assert [c.id for c in resolve_models("all")] == list(cards())
    assert [c.id for c in resolve_models("counting, fakeprint,counting")] == [
        "counting",
        "fakeprint",
    ]
    with pytest.raises(UnknownModel, match="did you mean 'fakeprint'"):
        resolve_models("fake_print")
    with pytest.raises(UnknownModel, match="no model given"):
        resolve_models(" , ")


def test_backend_is_imported_on_demand() -> None:
    module = backend(cards()["fakeprint"])
    assert callable(module.load)
    assert cards()["fakeprint"].view.seconds == 180 and not cards()["fakeprint"].view.pad


def test_the_shipped_open_artifactnet_is_the_pinned_demo_model() -> None:
    """The package carries the `--small` model trained on the demo bench, pinned by sha256."""
    from artifactbench.assets import packaged_dir, resolve_files
    from artifactbench.detectors.artifactnet_open.detector import read_weights

    card = cards()["artifactnet-open-demo"]
    (path,) = resolve_files(card, None).values()
    assert path.parent == packaged_dir()
    model, means, meta = read_weights(path)
    assert meta["bench"] == "demo" and meta["small"] and meta["phases"] == [1, 2, 3]
    assert meta["bench_fingerprint"] == FULL_FINGERPRINT  # trained on the demo bench of today
    assert meta["train_metrics"]["auc"] >= 0.85
    assert means.shape == (7, model.config.n_mels)
    assert "synthetic demo data only" in card.description


def test_a_command_without_all_lists_only_model_ids() -> None:
    with pytest.raises(UnknownModel) as exc:
        resolve_models("all", allow_all=False)
    listed = str(exc.value).split("choose from: ")[1].split(", ")
    assert listed == list(cards()) == model_choices(allow_all=False)
    assert model_choices() == ["all", *cards()]
    assert [c.id for c in resolve_models("fakeprint", allow_all=False)] == ["fakeprint"]


def test_fetch_choices_are_the_cards_with_published_files() -> None:
    fetchable = fetchable_cards()
    assert {"artifactnet", "clam", "spectttra-alpha-120s"} <= set(fetchable)
    for name in ("fakeprint", "artifactnet-open-demo", "counting"):
        assert name not in fetchable and fetch_refusal(cards()[name])
    with pytest.raises(UnknownModel) as exc:
        resolve_models("fakeprint", allow_all=False, among=fetchable)
    assert str(exc.value).split("choose from: ")[1].split(", ") == list(fetchable)
