"""Optional Demucs v4 source separation from weights already on local disk.

Two uses: a training teacher (the residual, mixture minus the sum of the stems, is what the
separator could not explain as music) and a "laundering" transform (the sum of the stems, i.e. the
track re-synthesised by the separator). This module never downloads: the bag's `<name>.yaml` and
its model files must already be in `demucs_dir()`; anything missing raises `DemucsUnavailable`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artifactbench.paths import cache_dir
from artifactbench.util import sha256_file

if TYPE_CHECKING:
    import torch
    from demucs.apply import BagOfModels

DEFAULT_DEMUCS = "htdemucs"
ENV_VAR = "ARTIFACTBENCH_DEMUCS"

# The model classes a safetensors file may name: `demucs.hf` instantiates whatever its metadata
# says, so without this check a crafted file could call any importable callable.
_MODEL_CLASSES = frozenset(
    {
        "demucs.demucs.Demucs",
        "demucs.hdemucs.HDemucs",
        "demucs.htdemucs.HTDemucs",
        "demucs.wdemucs.WDemucs",
    }
)


class DemucsUnavailable(Exception):
    """The demucs package or the bag's files are not here; the message says how to provide them."""


def demucs_dir(explicit: Path | None = None) -> Path:
    """Where the bag's files are looked for: `explicit`, else `ARTIFACTBENCH_DEMUCS`, else the
    cache's `demucs/` folder."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else cache_dir() / "demucs"


def _provide_hint(name: str, directory: Path) -> str:
    return f"put {name}.yaml and its model files in {directory} or set {ENV_VAR}"


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _require_package() -> None:
    """Cheap: only the top-level package, whose import pulls in nothing else."""
    try:
        import demucs  # noqa: F401
    except ImportError as exc:
        raise DemucsUnavailable("demucs is not installed: pip install demucs") from exc


def _model_file(directory: Path, sig: str) -> Path | None:
    """`<sig>.safetensors` if present, else the one `<sig>.th` / `<sig>-<checksum>.th` (named the
    way demucs's LocalRepo parses them)."""
    safetensors = directory / f"{sig}.safetensors"
    if safetensors.is_file():
        return safetensors
    found = sorted(
        path
        for path in directory.iterdir()
        if path.suffix == ".th" and path.is_file() and path.stem.rsplit("-", 1)[0] == sig
    )
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise ValueError(f"several model files for signature {sig} in {directory}: {names}")
    return found[0] if found else None


def _locate(directory: Path, name: str) -> tuple[Path, dict[str, Any], list[Path]]:
    """The bag's yaml, its parsed content and one model file per signature, without loading."""
    import yaml

    spec_path = directory / f"{name}.yaml"
    if not spec_path.is_file():
        raise DemucsUnavailable(
            f"no {spec_path.name} in {directory}: {_provide_hint(name, directory)}"
        )
    try:
        with open(spec_path) as fh:
            spec = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise DemucsUnavailable(f"{spec_path} is not valid YAML: {_one_line(exc)}") from exc
    sigs = spec.get("models") if isinstance(spec, dict) else None
    if not isinstance(sigs, list) or not sigs or not all(isinstance(s, str) for s in sigs):
        raise DemucsUnavailable(f"{spec_path} does not list its models under `models:`")
    paths = []
    for sig in sigs:
        path = _model_file(directory, sig)
        if path is None:
            raise DemucsUnavailable(
                f"model {sig} of {spec_path.name} ({sig}.safetensors or {sig}.th) is not in "
                f"{directory}: {_provide_hint(name, directory)}"
            )
        paths.append(path)
    return spec_path, spec, paths


def _load_safetensors(path: Path) -> Any:
    """Tensors plus JSON metadata: no unpickling; the class it names must be a demucs model."""
    from demucs.hf import load_safetensors_model
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        klass = (fh.metadata() or {}).get("klass")
    if klass not in _MODEL_CLASSES:
        raise ValueError(f"{path}: model class {klass!r} is not a demucs model")
    return load_safetensors_model(path)


def _load_model(path: Path, directory: Path) -> Any:
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    from demucs.pretrained import get_model

    # Legacy pickle; get_model verifies the `-<checksum>` suffix when the name has one.
    return get_model(path.stem.rsplit("-", 1)[0], repo=directory)


def demucs_available(directory: Path | None = None, name: str = DEFAULT_DEMUCS) -> str | None:
    """None when the package and the bag's files are present (nothing is loaded), else why not."""
    root = demucs_dir(directory)
    try:
        _require_package()
        if not root.is_dir():
            raise DemucsUnavailable(f"{root} does not exist: {_provide_hint(name, root)}")
        _locate(root, name)
    except (DemucsUnavailable, ValueError, OSError) as exc:
        return _one_line(exc)
    return None


def load_separator(directory: Path | None = None, name: str = DEFAULT_DEMUCS) -> Separator:
    """Load the bag `name` from `directory` (default `demucs_dir()`), never downloading.

    Each signature in `<name>.yaml` is read from `<sig>.safetensors` when present (tensors and
    JSON, never unpickled), else from demucs's legacy `<sig>.th` / `<sig>-<checksum>.th`. Those
    `.th` files are pickles that run code when loaded: put only files from a trusted source there.
    Missing package or files raise `DemucsUnavailable`; a `.th` whose checksum suffix does not
    match raises demucs's `ModelLoadingError`.
    """
    root = demucs_dir(directory)
    _require_package()
    try:
        import demucs
        from demucs.apply import BagOfModels
    except ImportError as exc:
        raise DemucsUnavailable(
            f"demucs cannot be imported ({_one_line(exc)}): pip install demucs"
        ) from exc
    if not root.is_dir():
        raise DemucsUnavailable(f"{root} does not exist: {_provide_hint(name, root)}")
    spec_path, spec, paths = _locate(root, name)
    models = []
    for path in paths:
        try:
            models.append(_load_model(path, root))
        except SystemExit as exc:  # demucs's `fatal()` exits, e.g. for a quantized model
            raise DemucsUnavailable(
                f"demucs could not load {path} (quantized models need `pip install diffq`)"
            ) from exc
    bag = BagOfModels(models, spec.get("weights"), spec.get("segment"))
    bag.eval()
    files = {path.name: sha256_file(path) for path in [spec_path, *paths]}
    return Separator(
        bag=bag,
        name=name,
        directory=root,
        files=files,
        samplerate=int(bag.samplerate),
        sources=tuple(bag.sources),
        demucs_version=getattr(demucs, "__version__", "unknown"),
    )


@dataclass(frozen=True)
class Separator:
    """A loaded Demucs bag and what identifies it; audio is mono float32 at `samplerate`.

    Computation runs on the bag's device (move it once with `separator.bag.to(device)`); results
    come back on the input's device (CPU for numpy).
    """

    bag: BagOfModels = field(repr=False, compare=False)
    name: str
    directory: Path
    files: dict[str, str]
    samplerate: int
    sources: tuple[str, ...]
    demucs_version: str = "unknown"

    @property
    def device(self) -> torch.device:
        return next(self.bag.parameters()).device

    def _mono(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        import torch

        mono = torch.as_tensor(audio).to(torch.float32)
        if mono.ndim != 2:
            raise ValueError(f"expected mono audio shaped [n, samples], got {tuple(mono.shape)}")
        return mono

    def _stems(self, mono: torch.Tensor) -> torch.Tensor:
        import torch
        from demucs.apply import apply_model

        n, samples = mono.shape
        if n == 0 or samples == 0:
            return mono.new_zeros(n, len(self.sources), samples)
        with torch.inference_mode():
            # Demucs was trained on unit-scale input; its own CLI normalises the same way. The
            # mean is left in: adding it back to every stem would put (S - 1) x mean in the sum.
            std = mono.std(dim=1, keepdim=True) if samples > 1 else torch.ones_like(mono)
            std = torch.where(std > 0, std, torch.ones_like(std))  # silent rows
            mix = (mono / std).unsqueeze(1).repeat(1, self.bag.audio_channels, 1)
            out = apply_model(
                self.bag,
                mix,
                shifts=0,
                split=True,
                overlap=0.25,
                progress=False,
                device=self.device,
            )
            stems = out.mean(dim=2) * std.unsqueeze(1)
        # A plain tensor, so callers may modify it in place outside inference mode.
        return stems.clone()

    def stems(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[n, samples] mono -> [n, len(sources), samples] mono stems (the channel mean of the
        stereo stems demucs returns for the mono track duplicated to stereo)."""
        return self._stems(self._mono(audio))

    def residual(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mixture minus the sum of the stems, [n, samples]: what the separator left out."""
        mono = self._mono(audio)
        return mono - self._stems(mono).sum(dim=1)

    def remix(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Sum of the stems, [n, samples]: the track as re-synthesised by the separator."""
        return self._stems(self._mono(audio)).sum(dim=1)

    def provenance(self) -> dict[str, Any]:
        """What to record beside results derived from this separator."""
        return {
            "name": self.name,
            "dir": str(self.directory),
            "files": dict(self.files),
            "demucs_version": self.demucs_version,
            "sources": list(self.sources),
            "samplerate": self.samplerate,
        }
