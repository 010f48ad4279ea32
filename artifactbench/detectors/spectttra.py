"""SpecTTTra (Rahman et al., SONICS, ICLR 2025) in plain torch, loading the published checkpoints.

The Hugging Face repositories `awsaf49/sonics-spectttra-{alpha,beta,gamma}-{5s,120s}` hold a
`config.json` (the full SONICS training config, nested sections) and a `pytorch_model.bin` state
dict. This module rebuilds the same module tree, so that state dict loads with strict key and
shape checking, and computes the same logits:

    waveform [batch, samples] at 16 kHz
    -> mel power spectrogram (centred reflect-padded STFT, periodic Hann window, HTK mel scale,
       no filterbank norm; window and filterbank are buffers read from the checkpoint)
    -> dB (10 log10 of the power clipped at 1e-10) floored at max - top_db, per clip
    -> per-clip mean/std normalisation: (x - mean) / (unbiased std + 1e-6)
    -> bilinear resize to `model.input_shape` (align_corners=False)
    -> temporal and spectral tokenizers: conv1d with kernel = stride = t_clip (f_clip), GELU,
       learned positional encoding, LayerNorm (eps 1e-6)
    -> pre-LN transformer blocks (qkv without bias, GELU MLP, LayerNorm eps 1e-5)
    -> mean over tokens -> linear -> one logit (sigmoid = P(AI))

One deliberate difference from upstream: SONICS applies `top_db` with torchaudio's
`AmplitudeToDB` on a [batch, mels, frames] tensor, which floors at the maximum of the whole batch,
so an upstream score depends on which other clips share the batch. Here the floor is each clip's
own maximum, so a score depends on its clip alone. Scored one clip per forward pass, as the
fixture's expected logits were, the two agree exactly.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artifactbench.detectors.base import DetectorCard, Identity, LoadContext, Unavailable
from artifactbench.detectors.checkpoints import state_dict_problems
from artifactbench.detectors.devices import module_device

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "pytorch_model.bin"
AMIN = 1e-10
NORM_EPS = 1e-6
TOKENIZER_LN_EPS = 1e-6
BLOCK_LN_EPS = 1e-5
# Clips per forward pass; scores never depend on it (top_db per clip). On 2 CPU cores a forward
# of 8 x 120 s clips gave 0.87x the tracks/s of one clip at a time (benchmarks/detectors.py), so
# the CPU takes one clip at a time, at the least memory; an accelerator takes 8.
CLIPS_PER_FORWARD = {"cpu": 1, "accelerator": 8}
TOP_DB_NOTE = (
    "top_db is applied per clip (floor at each clip's own max); upstream SONICS floors at the "
    "max of the whole batch, so its scores depend on batch composition. Identical for one clip."
)


class CheckpointMismatch(ValueError):
    """A state dict that does not fit the architecture its config describes."""


@dataclass(frozen=True)
class SpecTTTraConfig:
    """The facts a SpecTTTra forward pass depends on, read from a SONICS config."""

    sample_rate: int
    max_len: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    f_min: float
    f_max: float
    top_db: float
    embed_dim: int
    num_heads: int
    num_layers: int
    mlp_ratio: float
    t_clip: int
    f_clip: int
    input_shape: tuple[int, int]
    experiment_name: str = ""

    @classmethod
    def from_sonics(cls, data: dict[str, Any]) -> SpecTTTraConfig:
        """Parse `config.json` as SONICS writes it; refuse settings this module does not compute."""
        try:
            audio, mel, model = data["audio"], data["melspec"], data["model"]
            unsupported = {
                "melspec.norm": (mel.get("norm"), "mean_std"),
                "melspec.power": (mel.get("power"), 2),
                "model.pre_norm": (model.get("pre_norm"), True),
                "model.pe_learnable": (model.get("pe_learnable"), True),
                "num_classes": (data.get("num_classes", 1), 1),
            }
            for key, (got, want) in unsupported.items():
                if got != want:
                    raise ValueError(f"{key} is {got!r}; only {want!r} is supported")
            max_len = audio.get("max_len") or int(audio["max_time"] * audio["sample_rate"])
            config = cls(
                sample_rate=int(audio["sample_rate"]),
                max_len=int(max_len),
                n_fft=int(mel["n_fft"]),
                hop_length=int(mel["hop_length"]),
                win_length=int(mel.get("win_length") or mel["n_fft"]),
                n_mels=int(mel["n_mels"]),
                f_min=float(mel["f_min"]),
                f_max=float(mel["f_max"]),
                top_db=float(mel["top_db"]),
                embed_dim=int(model["embed_dim"]),
                num_heads=int(model["num_heads"]),
                num_layers=int(model["num_layers"]),
                mlp_ratio=float(model["mlp_ratio"]),
                t_clip=int(model["t_clip"]),
                f_clip=int(model["f_clip"]),
                input_shape=(int(model["input_shape"][0]), int(model["input_shape"][1])),
                experiment_name=str(data.get("experiment_name", "")),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a SONICS SpecTTTra config: missing or bad {exc}") from exc
        if config.embed_dim % config.num_heads:
            raise ValueError(f"embed_dim {config.embed_dim} is not divisible by num_heads")
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> SpecTTTraConfig:
        return cls.from_sonics(json.loads(Path(path).read_text()))

    @property
    def seconds(self) -> float:
        return self.max_len / self.sample_rate

    @property
    def num_tokens(self) -> tuple[int, int]:
        """(temporal, spectral) token counts: one per non-overlapping clip of the resized input."""
        return self.input_shape[1] // self.t_clip, self.input_shape[0] // self.f_clip


def htk_mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int
) -> torch.Tensor:
    """Triangular filters [n_freqs, n_mels] evenly spaced on the HTK mel scale, unnormalised.

    Computed in float32, as the published checkpoints' buffers were, so the two agree bit for bit.
    """
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_lo, mel_hi = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    mels = torch.linspace(mel_lo, mel_hi, n_mels + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    widths = edges[1:] - edges[:-1]
    rise = (freqs[:, None] - edges[None, :-2]) / widths[None, :-1]
    fall = (edges[None, 2:] - freqs[:, None]) / widths[None, 1:]
    return torch.clamp(torch.minimum(rise, fall), min=0.0)


class Spectrogram(nn.Module):
    """Power STFT; the window is a buffer so the checkpoint's own window is the one used."""

    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win_length = config.n_fft, config.hop_length, config.win_length
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            audio,
            self.n_fft,
            self.hop,
            self.win_length,
            self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.abs().pow(2)


class MelScale(nn.Module):
    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        fb = htk_mel_filterbank(
            config.n_fft // 2 + 1, config.f_min, config.f_max, config.n_mels, config.sample_rate
        )
        self.register_buffer("fb", fb)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return torch.matmul(power.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.spectrogram = Spectrogram(config)
        self.mel_scale = MelScale(config)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mel_scale(self.spectrogram(audio))


class FeatureExtractor(nn.Module):
    """Waveforms [batch, samples] -> normalised dB mel spectrograms [batch, mels, frames]."""

    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.top_db = config.top_db
        self.audio2melspec = MelSpectrogram(config)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        db = 10.0 * torch.log10(self.audio2melspec(audio.float()).clamp(min=AMIN))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - self.top_db)
        mean = db.mean(dim=(-2, -1), keepdim=True)
        std = db.std(dim=(-2, -1), keepdim=True)
        return (db - mean) / (std + NORM_EPS)


class LearnedPosition(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.pe


class Tokenizer1D(nn.Module):
    """Non-overlapping clips along one axis of the spectrogram, each projected to one token."""

    def __init__(self, channels: int, dim: int, clip: int, num_tokens: int) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(channels, dim, kernel_size=clip, stride=clip, bias=False)
        self.pos_encoder = LearnedPosition(num_tokens, dim)
        self.norm_pre = nn.LayerNorm(dim, eps=TOKENIZER_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = F.gelu(self.conv1d(x)).transpose(1, 2)
        return self.norm_pre(self.pos_encoder(tokens))


class STTokenizer(nn.Module):
    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        n_mels, n_frames = config.input_shape
        n_temporal, n_spectral = config.num_tokens
        dim = config.embed_dim
        self.temporal_tokenizer = Tokenizer1D(n_mels, dim, config.t_clip, n_temporal)
        self.spectral_tokenizer = Tokenizer1D(n_frames, dim, config.f_clip, n_spectral)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        temporal = self.temporal_tokenizer(spec)
        spectral = self.spectral_tokenizer(spec.transpose(1, 2))
        return torch.cat([temporal, spectral], dim=1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, dim = x.shape
        qkv = self.qkv(x).reshape(batch, n, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(config.embed_dim, config.num_heads, config.mlp_ratio)
            for _ in range(config.num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.st_tokenizer = STTokenizer(config)
        self.transformer = Transformer(config)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.st_tokenizer(spec))


class SpecTTTra(nn.Module):
    """The whole published model: float32 waveforms [batch, samples] -> logits [batch]."""

    def __init__(self, config: SpecTTTraConfig) -> None:
        super().__init__()
        self.config = config
        self.ft_extractor = FeatureExtractor(config)
        self.encoder = Encoder(config)
        self.classifier = nn.Linear(config.embed_dim, 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = self.ft_extractor(audio).unsqueeze(1)
        spec = F.interpolate(spec, size=self.config.input_shape, mode="bilinear")
        tokens = self.encoder(spec.squeeze(1))
        return self.classifier(tokens.mean(dim=1)).squeeze(-1)

    def load_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Strict load; every missing, unexpected or mis-shaped key is named in one error."""
        problems = state_dict_problems(state, self.state_dict())
        if problems:
            name = self.config.experiment_name or "SpecTTTra"
            raise CheckpointMismatch(f"checkpoint does not fit {name}: " + "; ".join(problems))
        self.load_state_dict(state, strict=True)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SpecTTTra:
        """Build from a hub snapshot (`config.json` + `pytorch_model.bin`), in eval mode on CPU."""
        folder = Path(directory)
        model = cls(SpecTTTraConfig.from_file(folder / CONFIG_FILE))
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise CheckpointMismatch(f"{folder / WEIGHTS_FILE} is not a state dict")
        model.load_checkpoint(state)
        return model.eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SpecTTTraDetector:
    """Scores 16 kHz views (the model's length, end zero-padded) as sigmoid of the logit."""

    def __init__(
        self,
        card: DetectorCard,
        model: SpecTTTra,
        device: str,
        weights_sha256: str,
        provenance: dict[str, Any],
    ) -> None:
        self.card = card
        self.model = model
        self.device = device
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        kind = "cpu" if torch.device(device).type == "cpu" else "accelerator"
        self.clips_per_forward = CLIPS_PER_FORWARD[kind]

    def score(self, views: list[np.ndarray]) -> list[float]:
        want = self.model.config.max_len
        for view in views:
            if view.shape != (want,):
                raise ValueError(f"view of shape {view.shape}; this model takes ({want},) samples")
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(views), self.clips_per_forward):
                chunk = views[i : i + self.clips_per_forward]
                batch = torch.from_numpy(np.stack(chunk).astype(np.float32))
                logits = self.model(batch.to(self.device))
                out.extend(torch.sigmoid(logits.double()).cpu().tolist())
        return out


def _weight_files(card: DetectorCard, weights: Path | None) -> dict[str, Path]:
    from artifactbench.assets import resolve_files

    if weights is not None and weights.is_file():
        weights = weights.parent  # a path to either file names its snapshot folder
    return resolve_files(card, weights)


def _files_record(files: dict[str, Path]) -> dict[str, Any]:
    from artifactbench.assets import cached_sha256

    return {
        "source": str(files[WEIGHTS_FILE].parent),
        "files": {name: cached_sha256(path) for name, path in sorted(files.items())},
    }


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The checkpoint's files and their sha256, without building the model."""
    from artifactbench.assets import files_sha256

    files = _weight_files(card, weights)
    return Identity(card, files_sha256(files), _files_record(files))


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> SpecTTTraDetector:
    """The card's published checkpoint (or the `weights` directory), on `context.device`."""
    from artifactbench.assets import fetch_command, files_sha256

    files = _weight_files(card, weights)
    device = context.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Unavailable(f"{card.id}: device {device!r} but CUDA is not available", "--device cpu")
    folder = files[WEIGHTS_FILE].parent
    try:
        model = SpecTTTra.from_pretrained(folder)
    except (ValueError, OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise Unavailable(f"{card.id}: cannot load {folder}: {exc}", fetch_command(card)) from exc
    config = model.config
    if config.sample_rate != card.view.rate or config.seconds != card.view.seconds:
        raise Unavailable(
            f"{card.id}: the checkpoint takes {config.seconds:g} s at {config.sample_rate} Hz, "
            f"the card's view is {card.view.seconds} s at {card.view.rate} Hz",
            fetch_command(card),
        )
    model = model.to(device)
    provenance = {
        **_files_record(files),
        "requested_device": device,
        "device": module_device(model),
        "variant": config.experiment_name,
        "max_time": config.seconds,
        "embed_dim": config.embed_dim,
        "num_heads": config.num_heads,
        "num_layers": config.num_layers,
        "t_clip": config.t_clip,
        "f_clip": config.f_clip,
        "input_shape": list(config.input_shape),
        "params": model.num_parameters(),
        "top_db": TOP_DB_NOTE,
    }
    return SpecTTTraDetector(card, model, device, files_sha256(files), provenance)
