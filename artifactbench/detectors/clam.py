"""CLAM (MoM-CLAM, Batra et al.): MERT and wav2vec2 hidden states into a dual-stream head.

The head, as upstream defines it (and as the `clam-head-random` fixture proves): per stream a
Conv1d over the 13 hidden states (13 -> 3 channels, kernel 3, padding 1), ReLU, channel 0 kept ->
[batch, 768]; `nn.MultiheadAttention(768, 4)` as self-attention on that 2-D tensor; Linear 768 ->
512 (`fc1`, `fc2`); concatenate; Linear 1024 -> 1 (`fc3`). No activation after the attention or
after fc1/fc2. PyTorch reads a 2-D attention input as one unbatched sequence, so upstream's batch
axis is the sequence axis (`batch_first` never matters) and the tracks of a batch attend to each
other: a track's logit depends on its batch mates. The protocol therefore scores one track per
head forward, where the attention sees a sequence of one; `mix_batch=True` reproduces upstream's
batched forward for comparison only.

Features per stream: the 44.1 kHz protocol buffer resampled to the feature extractor's rate
(MERT 24 kHz, wav2vec2 16 kHz), the centred 90 s at that rate, end zero-padded, the extractor
(normalisation as its config says), the encoder's 13 hidden states (input to the first
transformer layer, then every layer's output), each averaged over time -> [13, 768]. The card's
view is the whole protocol buffer and both streams are cut here: cropping at each stream's own
rate is what "centred 90 s per stream" means, and resampling the whole track avoids the filter
edge effects that resampling an already cut 44.1 kHz excerpt would add at both ends.

Encoders load from local snapshots only (never downloaded here) and run no code from them. MERT
(model_type `mert_model`) is built as transformers' own `HubertModel` from its config.json and
weights (`artifactbench.detectors.mert`: MERT-v1-95M is HuBERT with MERT's feature projection,
proven equal to MERT's published code on the `mert-v1-95m-random` fixture); wav2vec2 through
`AutoModel`. Both give their hidden states from the model's own `output_hidden_states`, on
transformers 4 and 5. MERT's own code (`trust_remote_code`) runs only where a card opts in, and
then only for a snapshot whose revision is verified to be the card's pin; that path keeps two
workarounds, tested with a stand-in model: transformers 4.48 reads `config.conv_pos_batch_norm`
unguarded and MERT's config may lack it (AttributeError, transformers issue #35656), so the
attribute is set to False (MERT-v1's positional convolution is the weight-normed one) and the
model built again; from transformers 5 MERT's own forward bypasses the decorator on
`HubertModel.forward` that collects hidden states, so they are taken with forward hooks on the
encoder layers. The provenance records which loader ran. Encoders run in float16 on CUDA and
float32 on CPU; the time mean and the head are float32.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from artifactbench.audio.decode import ViewSpec, detector_view
from artifactbench.detectors.base import (
    DetectorCard,
    EncoderRef,
    Identity,
    LoadContext,
    Scored,
    Unavailable,
)
from artifactbench.detectors.checkpoints import state_dict_problems
from artifactbench.detectors.devices import module_device
from artifactbench.detectors.mert import LOADER, MertCheckpointError, is_mert, load_mert

EXCERPT_SECONDS = 90.0
STREAMS = ("mert", "wav2vec2")  # card encoder names, in the head's order (conv1 / conv2)
ATTENTION_HEADS = 4
FC_WIDTH = 512
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


class CheckpointError(ValueError):
    """A head checkpoint that does not fit the architecture; the message names every bad key."""


class CLAMHead(nn.Module):
    """Upstream's `CLAM(13, 13, 768, 768)` head; attribute names are its state-dict keys."""

    def __init__(
        self,
        mert_states: int = 13,
        w2v_states: int = 13,
        mert_width: int = 768,
        w2v_width: int = 768,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(mert_states, 3, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(w2v_states, 3, kernel_size=3, padding=1)
        self.crossAttention1 = nn.MultiheadAttention(mert_width, ATTENTION_HEADS)
        self.crossAttention2 = nn.MultiheadAttention(w2v_width, ATTENTION_HEADS)
        self.fc1 = nn.Linear(mert_width, FC_WIDTH)
        self.fc2 = nn.Linear(w2v_width, FC_WIDTH)
        self.fc3 = nn.Linear(2 * FC_WIDTH, 1)

    @staticmethod
    def _stream(
        x: torch.Tensor, conv: nn.Conv1d, attention: nn.MultiheadAttention, fc: nn.Linear
    ) -> torch.Tensor:
        x = torch.relu(conv(x))[:, 0, :]
        x, _ = attention(x, x, x, need_weights=False)  # 2-D: the batch axis is the sequence
        return fc(x)

    def _upstream(self, mert: torch.Tensor, w2v: torch.Tensor) -> torch.Tensor:
        a = self._stream(mert, self.conv1, self.crossAttention1, self.fc1)
        b = self._stream(w2v, self.conv2, self.crossAttention2, self.fc2)
        return self.fc3(torch.cat([a, b], dim=1)).squeeze(1)

    def forward(
        self, mert: torch.Tensor, w2v: torch.Tensor, mix_batch: bool = False
    ) -> torch.Tensor:
        """Logits [batch] from [batch, states, width] features, one track per upstream forward.

        `mix_batch=True` runs the whole batch through upstream's forward at once, where tracks
        attend to each other; it exists to compare with upstream, never to score.
        """
        if mix_batch:
            return self._upstream(mert, w2v)
        if len(mert) == 0:
            return mert.new_zeros(0)
        return torch.cat(
            [self._upstream(mert[i : i + 1], w2v[i : i + 1]) for i in range(len(mert))]
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, **dims: int) -> CLAMHead:
        """The head in eval mode from a MoM-CLAM checkpoint: bare, wrapped or `module.`-prefixed."""
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same failure here
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
        head = cls(**dims)
        head.load_state_dict(check_state_dict(unwrap_state_dict(raw), head.state_dict()))
        return head.eval()


def unwrap_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint saved bare, under a wrapper key, or from DataParallel."""
    state = raw
    while isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            found = ", ".join(sorted(map(str, state))[:8])
            raise CheckpointError(f"no state dict in the checkpoint (top-level keys: {found})")
        state = inner
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"the checkpoint holds {type(raw).__name__}, not a state dict")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def check_state_dict(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`state` unchanged if its keys and shapes are exactly `expected`'s, else every difference."""
    problems = state_dict_problems(state, expected)
    if problems:
        raise CheckpointError("CLAM head checkpoint does not match: " + "; ".join(problems))
    return state


def snapshot_revision(folder: Path) -> str | None:
    """The hub commit a local snapshot was fetched at, when the folder records it.

    `snapshot_download(local_dir=...)` writes the commit as the first line of each file's
    download metadata; a hub cache snapshot (and the harness's encoder cache) is named by it.
    """
    meta = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
    if meta.is_file():
        first = meta.read_text().splitlines()[:1]
        if first and _REVISION.match(first[0].strip()):
            return first[0].strip()
    return folder.name if _REVISION.match(folder.name) else None


def build_with_conv_pos_fallback(
    build: Callable[[Any], nn.Module], config: Any
) -> tuple[nn.Module, bool]:
    """`build(config)`, retried once with `conv_pos_batch_norm = False` when a transformers
    release reads that attribute and the config lacks it; also says whether it was set."""
    try:
        return build(config), False
    except AttributeError as exc:
        if "conv_pos_batch_norm" not in str(exc) or hasattr(config, "conv_pos_batch_norm"):
            raise
    config.conv_pos_batch_norm = False
    return build(config), True


def hidden_states(model: nn.Module, values: torch.Tensor, hooks: bool) -> list[torch.Tensor]:
    """Every hidden state, [batch, time, width] each: from the model's own output, or with
    `hooks` from the encoder layers (input to the first, then each output) when it gives none."""
    if not hooks:
        return list(model(values, output_hidden_states=True).hidden_states)
    captured: list[torch.Tensor] = []
    layers = model.encoder.layers

    def first_input(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])

    def output(_module: nn.Module, _args: tuple, out: Any) -> None:
        captured.append(out[0] if isinstance(out, tuple) else out)

    handles = [layers[0].register_forward_pre_hook(first_input, with_kwargs=True)]
    handles += [layer.register_forward_hook(output) for layer in layers]
    try:
        model(values)
    finally:
        for handle in handles:
            handle.remove()
    return captured


@dataclass
class Stream:
    """One encoder with its feature extractor and its view of the protocol buffer."""

    name: str
    model: nn.Module
    extractor: Any
    view: ViewSpec
    device: torch.device
    dtype: torch.dtype
    hooks: bool = False

    def features(self, views: list[np.ndarray]) -> torch.Tensor:
        """[batch, states, width] float32 from protocol buffers: each stream's own excerpt."""
        return self.encode([detector_view(v, self.view) for v in views])

    @torch.inference_mode()
    def encode(self, cut: list[np.ndarray]) -> torch.Tensor:
        """[batch, states, width] float32 from excerpts at the extractor's rate: each hidden
        state averaged over time."""
        inputs = self.extractor(cut, sampling_rate=self.view.rate, return_tensors="pt")
        values = inputs["input_values"].to(self.device, self.dtype)
        states = hidden_states(self.model, values, self.hooks)
        return torch.stack([s.float().mean(dim=1) for s in states], dim=1)


def load_stream(
    name: str,
    folder: Path,
    device: str | torch.device,
    trust_remote_code: bool = False,
    seconds: float = EXCERPT_SECONDS,
) -> tuple[Stream, dict[str, Any]]:
    """An encoder from a local snapshot, probed once to learn where its hidden states come from.

    A MERT snapshot becomes a `HubertModel` unless `trust_remote_code` opts in to its own code;
    any other goes through `AutoModel` (with the snapshot's code only under that opt-in)."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    device = torch.device(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    patched = False
    if not trust_remote_code and is_mert(folder):
        model, extractor = load_mert(folder)
        loader = LOADER
    else:
        common = {"trust_remote_code": trust_remote_code, "local_files_only": True}
        config = AutoConfig.from_pretrained(folder, **common)
        model, patched = build_with_conv_pos_fallback(
            lambda c: AutoModel.from_pretrained(folder, config=c, **common), config
        )
        extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        loader = "AutoModel (remote code)" if trust_remote_code else "AutoModel"
    model = model.to(device=device, dtype=dtype).eval()
    rate = int(extractor.sampling_rate)
    view = ViewSpec(rate=rate, seconds=seconds, crop="center", pad=True)
    stream = Stream(name, model, extractor, view, device, dtype)
    probe = torch.zeros(1, rate, device=device, dtype=dtype)
    with torch.inference_mode():
        states = model(probe, output_hidden_states=True).hidden_states
        stream.hooks = states is None
        if stream.hooks and getattr(model.config, "do_stable_layer_norm", False):
            raise Unavailable(
                f"{name}: {type(model).__name__} returns no hidden states and its final layer "
                "norm sits outside the layers, so hooks cannot recover them with this transformers",
                "pip install 'transformers<5'",
            )
        if stream.hooks:
            states = hidden_states(model, probe, hooks=True)
    record = {
        "path": str(folder),
        "loader": loader,
        "class": type(model).__name__,
        "rate": rate,
        "do_normalize": bool(getattr(extractor, "do_normalize", False)),
        "states": len(states),
        "width": states[0].shape[-1],
        "hidden_states_from": "layer hooks" if stream.hooks else "output_hidden_states",
        "conv_pos_batch_norm_set_false": patched,
        "trust_remote_code": trust_remote_code,
        "dtype": str(dtype).removeprefix("torch."),
    }
    return stream, record


class CLAMDetector:
    """Both encoders and the head; `encoder_batch` tracks share an encoder pass, the head
    always sees one track at a time."""

    def __init__(
        self,
        card: DetectorCard,
        head: CLAMHead,
        streams: tuple[Stream, Stream],
        weights_sha256: str,
        provenance: dict[str, Any],
        encoder_batch: int = 1,
    ) -> None:
        self.card = card
        self.head = head
        self.streams = streams
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        self.encoder_batch = encoder_batch

    @torch.inference_mode()
    def score(self, views: list[np.ndarray]) -> list[float | Scored]:
        device = next(self.head.parameters()).device
        out: list[float | Scored] = []
        for start in range(0, len(views), self.encoder_batch):
            chunk = views[start : start + self.encoder_batch]
            mert, w2v = (s.features(chunk).to(device) for s in self.streams)
            for logit in self.head(mert, w2v).tolist():
                if math.isfinite(logit):
                    out.append(1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0)
                else:
                    out.append(Scored(math.nan, f"non-finite logit {logit} from the CLAM head"))
        return out


# Each encoder's card entry, snapshot folder and the revision found there.
Verified = dict[str, tuple[EncoderRef, Path, str | None]]


def _encoder_folder(card: DetectorCard, ref: EncoderRef, weights: Path | None) -> Path:
    if weights is not None and weights.is_dir() and (weights / ref.name / "config.json").is_file():
        return weights / ref.name
    from artifactbench.assets import resolve_encoder

    return resolve_encoder(card, ref.name)


def _weights_digest(head_sha256: str, encoders: Verified) -> str:
    from artifactbench.assets import cached_sha256

    h = hashlib.sha256(f"head:{head_sha256}\n".encode())
    for name, (ref, folder, revision) in sorted(encoders.items()):
        h.update(f"{name}:{ref.repo}@{revision or 'unverified'}\n".encode())
        for pattern in WEIGHT_PATTERNS:
            for path in sorted(folder.glob(pattern)):
                h.update(f"  {path.name}:{cached_sha256(path)}\n".encode())
    return h.hexdigest()


def _resolve(card: DetectorCard, weights: Path | None) -> tuple[Path, Verified]:
    """The head file and each encoder's folder and revision; an encoder whose remote code would
    run is refused unless its snapshot is verifiably the card's revision."""
    from artifactbench.assets import fetch_command, resolve_files

    refs = {ref.name: ref for ref in card.encoders}
    if set(refs) != set(STREAMS):
        raise ValueError(f"{card.id}: CLAM needs encoders {STREAMS}, the card has {tuple(refs)}")
    head_file = next(f for f in card.files if not f.optional)
    head_path = resolve_files(card, weights)[head_file.name]
    verified: Verified = {}
    for name in STREAMS:
        ref = refs[name]
        folder = _encoder_folder(card, ref, weights)
        revision = snapshot_revision(folder)
        if ref.trust_remote_code and revision != ref.revision:
            raise Unavailable(
                f"{card.id}: {folder} is not verifiably {ref.repo}@{ref.revision[:10]} (found "
                f"{revision or 'no recorded revision'}); its remote code will not be run",
                fetch_command(card),
            )
        verified[name] = (ref, folder, revision)
    return head_path, verified


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The head's and both encoders' files and revisions, hashed, without loading 194M
    parameters."""
    from artifactbench.assets import cached_sha256

    head_path, verified = _resolve(card, weights)
    head_sha256 = cached_sha256(head_path)
    encoders = {
        name: {"repo": ref.repo, "revision": revision or "unverified", "folder": str(folder)}
        for name, (ref, folder, revision) in verified.items()
    }
    provenance = {"head": str(head_path), "head_sha256": head_sha256, "encoders": encoders}
    return Identity(card, _weights_digest(head_sha256, verified), provenance)


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> CLAMDetector:
    """Head from `weights` (the file, or a folder holding it and optionally `mert/`, `wav2vec2/`
    snapshots) or the fetch cache; encoders from that folder or the fetch cache."""
    import transformers

    from artifactbench.assets import cached_sha256, fetch_command

    head_path, verified = _resolve(card, weights)
    streams, records = [], {}
    for name in STREAMS:
        ref, folder, revision = verified[name]
        try:
            stream, record = load_stream(name, folder, context.device, ref.trust_remote_code)
        except MertCheckpointError as exc:
            raise Unavailable(f"{card.id}: {name}: {exc}", fetch_command(card)) from exc
        streams.append(stream)
        records[name] = {"repo": ref.repo, "revision": revision or "unverified", **record}
    dims = {
        "mert_states": records["mert"]["states"],
        "w2v_states": records["wav2vec2"]["states"],
        "mert_width": records["mert"]["width"],
        "w2v_width": records["wav2vec2"]["width"],
    }
    try:
        head = CLAMHead.from_checkpoint(head_path, **dims).to(streams[0].device)
    except CheckpointError as exc:
        raise Unavailable(f"{card.id}: {exc}", fetch_command(card)) from exc
    head_sha256 = cached_sha256(head_path)
    provenance = {
        "head": str(head_path),
        "head_sha256": head_sha256,
        "encoders": records,
        "requested_device": context.device,
        "device": module_device(head),
        "encoder_dtype": records["mert"]["dtype"],
        "head_dtype": "float32",
        "excerpt": f"centred {EXCERPT_SECONDS:g} s per stream at its own rate, end zero-padded",
        "head_forward": "one track at a time",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    digest = _weights_digest(head_sha256, verified)
    return CLAMDetector(card, head, (streams[0], streams[1]), digest, provenance)
