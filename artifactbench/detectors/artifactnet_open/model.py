"""Open ArtifactNet: ArtifactUNet residual extractor, seven forensic channels, compact CNN.

The shapes follow the paper (Sec. III): a U-Net with a gated residual bottleneck predicts a
mask bounded to [0, 0.5] on the STFT magnitude of 4 s of 44.1 kHz audio (3.6M parameters), the
residual r = m * |X| becomes seven HPSS-derived channels, and a 3-block CNN (0.4M) gives P(AI).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from artifactbench.detectors.artifactnet_open import inference
from artifactbench.detectors.artifactnet_open.features import (
    ForensicFeatures,
    MagnitudeSTFT,
    fast_path_applies,
)


@dataclass(frozen=True)
class ArtifactNetConfig:
    """Sizes of the whole detector; the defaults are the paper's 3.6M + 0.4M build."""

    sample_rate: int = 44100
    segment_samples: int = 176400
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128
    hpss_kernel: int = 31
    # Channels per U-Net level; the last is the bottleneck, one 2x downsampling per step.
    unet_widths: tuple[int, ...] = (16, 32, 64, 136, 272)
    bottleneck_blocks: int = 1
    classifier_widths: tuple[int, int, int] = (64, 128, 256)
    classifier_hidden: int = 96
    # False gives m = sigmoid(z) in [0, 1]: the ablation of Appendix B.
    bounded: bool = True

    @classmethod
    def small(cls) -> ArtifactNetConfig:
        """A build that trains on a CPU in minutes: fewer bins, mels and channels."""
        return cls(
            n_fft=1024,
            n_mels=64,
            unet_widths=(8, 16, 32, 64),
            classifier_widths=(16, 32, 64),
            classifier_hidden=32,
        )


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class DoubleConv(nn.Sequential):
    """Two 3x3 Conv-BN-ReLU: one U-Net level."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out))


class GatedResidualBlock(nn.Module):
    """x + BN(1x1(tanh(a(x)) * sigmoid(g(x)))): the gate lets the bottleneck pass x unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.value = nn.Conv2d(channels, channels, 3, padding=1)
        self.gate = nn.Conv2d(channels, channels, 3, padding=1)
        self.mix = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        gated = torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))
        return x + self.norm(self.mix(gated))


class ArtifactUNet(nn.Module):
    """Magnitude [batch, freq, time] -> (mask, residual), both [batch, freq, time].

    The network sees log1p(|X|), a scale the convolutions can handle; it is padded to a multiple
    of the total downsampling and the mask cropped back, so any STFT size works.
    """

    def __init__(self, config: ArtifactNetConfig) -> None:
        super().__init__()
        widths = config.unet_widths
        self.bounded = config.bounded
        self.stride = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out)
            for c_in, c_out in zip((1, *widths[:-2]), widths[:-1], strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.entry = DoubleConv(widths[-2], widths[-1])
        self.bottleneck = nn.Sequential(
            *(GatedResidualBlock(widths[-1]) for _ in range(config.bottleneck_blocks))
        )
        rev = widths[::-1]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
            for c_in, c_out in zip(rev[:-1], rev[1:], strict=True)
        )
        self.merge = nn.ModuleList(DoubleConv(2 * c, c) for c in rev[1:])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, mag: Tensor) -> tuple[Tensor, Tensor]:
        freq, time = mag.shape[-2], mag.shape[-1]
        pad_f = -freq % self.stride
        pad_t = -time % self.stride
        x = nn.functional.pad(torch.log1p(mag).unsqueeze(1), (0, pad_t, 0, pad_f))
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(self.entry(x))
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        z = self.head(x)[:, 0, :freq, :time]
        mask = 0.5 * torch.sigmoid(z) if self.bounded else torch.sigmoid(z)
        return mask, mask * mag


class SegmentClassifier(nn.Module):
    """Seven channels [batch, 7, n_mels, time] -> logit of P(AI) [batch]: 3x Conv-BN-ReLU-Pool."""

    def __init__(self, config: ArtifactNetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 7
        for c_out in config.classifier_widths:
            layers += [*_conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
            c_in = c_out
        # Global pooling exports as GlobalAveragePool whatever the batch and frame count.
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in, config.classifier_hidden),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(config.classifier_hidden, 1),
        )

    def forward(self, channels: Tensor) -> Tensor:
        return self.head(self.features(channels))[:, 0]


class ArtifactNetOpen(nn.Module):
    """Audio [batch, segment_samples] -> P(AI) [batch], the ONNX contract of the detector."""

    def __init__(self, config: ArtifactNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ArtifactNetConfig()
        cfg = self.config
        self.stft = MagnitudeSTFT(cfg.n_fft, cfg.hop)
        self.unet = ArtifactUNet(cfg)
        self.features = ForensicFeatures(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.hpss_kernel)
        self.classifier = SegmentClassifier(cfg)

    def logits(self, audio: Tensor) -> Tensor:
        """The classifier's logit per row: what a BCE-with-logits loss trains on.

        Eval-mode float32 inference on the CPU with no gradient recorded takes the
        chunk-at-a-time path of `inference` (within 1e-6 of P(AI), ~4x sooner); everything
        else, and all of it inside `features.reference_path()`, runs the torch graph below.
        """
        if (
            fast_path_applies(audio, self)
            and audio.dtype == self.stft.kernels.dtype == torch.float32
            and audio.shape[0] > 0
        ):
            return inference.logits(self, audio)
        _, residual = self.unet(self.stft(audio))
        return self.classifier(self.features(residual))

    def forward(self, audio: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(audio))


def parameter_counts(model: ArtifactNetOpen) -> dict[str, int]:
    """Trainable parameters per stage and in total (the fixed DFT and mel kernels are buffers)."""
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("unet", "classifier")
    }
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def architecture_counts() -> dict[str, dict[str, int]]:
    """Counted trainable parameters of the two shipped configurations, by stage."""
    return {
        "paper": parameter_counts(ArtifactNetOpen(ArtifactNetConfig())),
        "small": parameter_counts(ArtifactNetOpen(ArtifactNetConfig.small())),
    }
