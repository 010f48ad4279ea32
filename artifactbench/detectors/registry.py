"""Which detectors exist, read from cards alone: listing or validating never imports a backend."""

from __future__ import annotations

import difflib
import importlib
import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from artifactbench.audio.decode import ViewSpec
from artifactbench.detectors.base import (
    AssetFile,
    DetectorCard,
    EncoderRef,
    Identity,
    LoadContext,
    TrainedOn,
)

# family -> module implementing `load(card, weights, context)` (the device is `context.device`);
# imported only when chosen.
FAMILIES: dict[str, str] = {
    "artifactnet_onnx": "artifactbench.detectors.artifactnet_onnx",
    "artifactnet_open": "artifactbench.detectors.artifactnet_open.detector",
    "clam": "artifactbench.detectors.clam",
    "fakeprint": "artifactbench.detectors.fakeprint",
    "spectttra": "artifactbench.detectors.spectttra",
}


class UnknownModel(ValueError):
    """A model name that no card declares; the message suggests the closest names."""


def card_from_dict(data: dict[str, Any]) -> DetectorCard:
    view = ViewSpec(**data.get("view", {}))
    files = tuple(AssetFile(**f) for f in data.get("files", []) or [])
    encoders = tuple(EncoderRef(**e) for e in data.get("encoders", []) or [])
    trained_on = tuple(TrainedOn(**t) for t in data.get("trained_on", []) or [])
    nested = ("view", "files", "encoders", "trained_on")
    fields = {k: v for k, v in data.items() if k not in nested}
    return DetectorCard(view=view, files=files, encoders=encoders, trained_on=trained_on, **fields)


def card_dirs() -> list[Path]:
    """The demo model's card beside its shipped weights, the published baselines (`baselines/`),
    then any directories listed in `ARTIFACTBENCH_CARDS` (a later card of the same id wins)."""
    from artifactbench.assets import data_folder, packaged_dir

    extra = [Path(p) for p in os.environ.get("ARTIFACTBENCH_CARDS", "").split(os.pathsep) if p]
    return [packaged_dir(), data_folder("baselines"), *extra]


@cache
def _cards_in(dirs: tuple[Path, ...]) -> dict[str, DetectorCard]:
    found: dict[str, DetectorCard] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")):
            card = card_from_dict(yaml.safe_load(path.read_text()))
            if card.family not in FAMILIES and card.module is None:
                raise ValueError(f"{path}: unknown family {card.family!r} and no `module`")
            found[card.id] = card
    return found


def cards() -> dict[str, DetectorCard]:
    """Every known card by id: shipped ones, then users' own (which may name a `module`)."""
    return _cards_in(tuple(card_dirs()))


def resolve_models(
    spec: str, *, allow_all: bool = True, among: dict[str, DetectorCard] | None = None
) -> list[DetectorCard]:
    """`all`, or a comma-separated list of ids, into cards; unknown names get a suggestion.

    `among` narrows the valid ids (e.g. to what `fetch model` can fetch) and `allow_all=False`
    refuses `all`, so an error lists exactly what the calling command accepts.
    """
    known = cards() if among is None else among
    choices = ", ".join([*(["all"] if allow_all else []), *known])
    if allow_all and spec.strip() == "all":
        return list(known.values())
    chosen = []
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownModel(f"unknown model {name!r}{hint}; choose from: {choices}")
        if known[name] not in chosen:
            chosen.append(known[name])
    if not chosen:
        raise UnknownModel(f"no model given; choose from: {choices}")
    return chosen


def model_choices(allow_all: bool = True) -> list[str]:
    """The ids `--models` accepts, with `all` first where a command takes it."""
    return [*(["all"] if allow_all else []), *cards()]


def fetch_refusal(card: DetectorCard) -> str | None:
    """Why `fetch model` has nothing to download for this card, or None when it has."""
    if card.fits_on_bench:
        return "it fits on the bench's train split"
    if not card.files:
        return "its card names no weight files"
    from artifactbench.assets import packaged_dir

    if all((packaged_dir() / f.name).is_file() for f in card.files):
        return "its weights ship inside the package"
    return None


def fetchable_cards() -> dict[str, DetectorCard]:
    """The cards with published weight files that `fetch model` downloads."""
    return {name: card for name, card in cards().items() if fetch_refusal(card) is None}


def backend(card: DetectorCard) -> Any:
    """The module that loads this card's family, imported now and not before."""
    return importlib.import_module(card.module or FAMILIES[card.family])


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The card's exact weights (their sha256) and where they come from, without loading the
    model: each backend hashes its files. A user's module without `identify` is loaded once."""
    module = backend(card)
    if hasattr(module, "identify"):
        return module.identify(card, weights, context)
    detector = module.load(card, weights, context)
    return Identity(card, detector.weights_sha256, dict(detector.provenance))


def availability(card: DetectorCard) -> str:
    """A one-line answer to "can this run here?", without importing the backend."""
    from artifactbench.assets import cached_fits, resolve_encoder, resolve_files
    from artifactbench.detectors.base import Unavailable

    if card.fits_on_bench:
        fits = cached_fits(card)
        return (
            f"available: fits on the bench's train split on first use ({len(fits)} cached fit(s))"
        )
    try:
        resolve_files(card, None)
        for encoder in card.encoders:
            resolve_encoder(card, encoder.name)
    except Unavailable as exc:
        return f"not available: {exc}; fix: {exc.hint} (or pass --weights)"
    return "available"


def fetchable_card(name: str) -> DetectorCard:
    """The card `fetch model NAME` downloads; UnknownModel naming what can be fetched when NAME
    is unknown, has nothing to download (saying why), or is more than one model."""
    fetchable = fetchable_cards()
    known = cards()
    if name in known and name not in fetchable:
        raise UnknownModel(
            f"cannot fetch {name!r}: fetch one model with published weights "
            f"({fetch_refusal(known[name])}); choose from: {', '.join(fetchable)}"
        )
    chosen = resolve_models(name, allow_all=False, among=fetchable)
    if len(chosen) != 1:
        raise UnknownModel(f"fetch one model at a time; choose from: {', '.join(fetchable)}")
    return chosen[0]
