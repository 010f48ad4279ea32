"""Which detectors exist, read from cards alone: listing or validating never imports a backend."""

from __future__ import annotations

import difflib
import importlib
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from artifactbench.audio import ViewSpec
from artifactbench.detectors.base import AssetFile, DetectorCard, EncoderRef

# family -> module implementing `load(card, weights, device, context)`; imported only when chosen.
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
    fields = {k: v for k, v in data.items() if k not in ("view", "files", "encoders")}
    return DetectorCard(view=view, files=files, encoders=encoders, **fields)


def card_dirs() -> list[Path]:
    """The shipped `baselines/`, then any directories listed in `ARTIFACTBENCH_CARDS`."""
    extra = [Path(p) for p in os.environ.get("ARTIFACTBENCH_CARDS", "").split(os.pathsep) if p]
    return [Path(str(resources.files("artifactbench.data") / "baselines")), *extra]


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


def resolve_models(spec: str) -> list[DetectorCard]:
    """`all`, or a comma-separated list of ids, into cards; unknown names get a suggestion."""
    known = cards()
    if spec.strip() == "all":
        return list(known.values())
    chosen = []
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownModel(
                f"unknown model {name!r}{hint}; choose from: all, {', '.join(known)}"
            )
        if known[name] not in chosen:
            chosen.append(known[name])
    if not chosen:
        raise UnknownModel(f"no model given; choose from: all, {', '.join(known)}")
    return chosen


def backend(card: DetectorCard) -> Any:
    """The module that loads this card's family, imported now and not before."""
    return importlib.import_module(card.module or FAMILIES[card.family])


def availability(card: DetectorCard) -> str:
    """A one-line answer to "can this run here?", without importing the backend."""
    from artifactbench.assets import resolve_encoder, resolve_files
    from artifactbench.detectors.base import Unavailable
    from artifactbench.paths import cache_dir

    if card.fits_on_bench:
        fits = sorted((cache_dir() / "fits").glob(f"{card.id}-*.json"))
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
