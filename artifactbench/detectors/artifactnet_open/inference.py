"""CPU inference path of the open ArtifactNet: the same network, arranged for a single core.

Besides the median filters (see `features.median_filter`), three things make the torch graph
slow on a CPU, and none of them is part of what it computes: a whole batch of full-resolution
U-Net activations is tens of MB per tensor, which misses the caches and is paged in afresh on
every allocation; BatchNorm and ReLU each take an extra pass over memory; and oneDNN runs 3x3
convolutions of few channels several times faster channels-last. Here each chunk goes through
the front end, the U-Net and the classifier's convolutions alone, every U-Net BatchNorm is
folded into the convolution before it, ReLUs run in place and activations are channels-last.
Folding and layout change float32 rounding only: P(AI) stays within 1e-6 of the torch graph.
Training, export, tracing and CUDA never come here (see `features.fast_path_applies`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

Step = Callable[[Tensor], Tensor]


class FoldedConv:
    """Conv2d with the eval-mode BatchNorm after it folded into its weights, then an optional
    in-place ReLU. The fold is computed in float64 and rounded to float32 once.

    A convolution of one input channel runs as a depthwise one on that channel repeated per
    output: the same sums, which oneDNN computes about 3x sooner than from one channel.
    """

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d | None = None, relu: bool = False):
        weight = conv.weight.detach().double()
        bias = None if conv.bias is None else conv.bias.detach().double()
        if norm is not None:
            if norm.running_mean is None or norm.running_var is None:
                raise ValueError("only BatchNorm with running statistics can be folded")
            scale = torch.rsqrt(norm.running_var.double() + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight.detach().double()
            shift = -norm.running_mean.double() * scale
            if norm.bias is not None:
                shift = shift + norm.bias.detach().double()
            weight = weight * scale[:, None, None, None]
            bias = shift if bias is None else shift + bias * scale
        self.weight = weight.float().contiguous(memory_format=torch.channels_last)
        self.bias = None if bias is None else bias.float()
        self.stride = conv.stride
        self.padding = conv.padding
        self.relu = relu
        self.fan_out = conv.out_channels if conv.in_channels == conv.groups == 1 else 0

    def __call__(self, x: Tensor) -> Tensor:
        groups = 1
        if self.fan_out > 1:
            groups = self.fan_out
            x = x.expand(-1, groups, -1, -1).contiguous(memory_format=torch.channels_last)
        y = nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, groups)
        return y.relu_() if self.relu else y


def max_pool2(x: Tensor) -> Tensor:
    """2x2 max pooling, stride 2, odd edges dropped (MaxPool2d(2)) as the maximum of four
    strided views: the same values, NaN included, without the indices MaxPool2d computes."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    bottom = torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2])
    return torch.maximum(top, bottom, out=top)


def fold_sequence(modules: Sequence[nn.Module]) -> list[Step]:
    """The steps of a Conv-BN-ReLU stack (a DoubleConv) with BatchNorms folded, ReLUs fused."""
    steps: list[Step] = []
    mods = list(modules)
    i = 0
    while i < len(mods):
        module = mods[i]
        i += 1
        if not isinstance(module, nn.Conv2d):
            steps.append(module)
            continue
        norm = None
        if i < len(mods) and isinstance(mods[i], nn.BatchNorm2d):
            norm = mods[i]
            i += 1
        relu = i < len(mods) and isinstance(mods[i], nn.ReLU)
        i += int(relu)
        steps.append(FoldedConv(module, norm, relu))
    return steps


def _is_plain_pool2(pool: nn.MaxPool2d) -> bool:
    return (
        pool.kernel_size in (2, (2, 2))
        and pool.stride in (2, (2, 2))
        and pool.padding in (0, (0, 0))
        and pool.dilation in (1, (1, 1))
        and not pool.ceil_mode
        and not pool.return_indices
    )


def _channels_last(weight: Tensor) -> Tensor:
    return weight.detach().contiguous(memory_format=torch.channels_last)


def run(steps: Sequence[Step], x: Tensor) -> Tensor:
    for step in steps:
        x = step(x)
    return x


class UNetPlan:
    """ArtifactUNet.forward on one chunk with folded weights and channels-last activations."""

    def __init__(self, unet: nn.Module) -> None:
        """`unet`: an eval-mode ArtifactUNet (model.py imports this module, not the reverse)."""
        self.stride = unet.stride
        self.bounded = unet.bounded
        self.down = [fold_sequence(block) for block in unet.down]
        self.entry = fold_sequence(unet.entry)
        self.bottleneck = [
            (FoldedConv(block.value), FoldedConv(block.gate), FoldedConv(block.mix, block.norm))
            for block in unet.bottleneck
        ]
        self.up = [
            (_channels_last(up.weight), None if up.bias is None else up.bias.detach(), up.stride)
            for up in unet.up
        ]
        self.merge = [fold_sequence(block) for block in unet.merge]
        self.head = FoldedConv(unet.head)

    def __call__(self, mag: Tensor) -> tuple[Tensor, Tensor]:
        freq, time = mag.shape[-2], mag.shape[-1]
        pad = (0, -time % self.stride, 0, -freq % self.stride)
        x = nn.functional.pad(torch.log1p(mag).unsqueeze(1), pad)
        x = x.contiguous(memory_format=torch.channels_last)
        skips = []
        for block in self.down:
            x = run(block, x)
            skips.append(x)
            x = max_pool2(x)
        x = run(self.entry, x)
        for value, gate, mix in self.bottleneck:
            x = x + mix(torch.tanh(value(x)).mul_(torch.sigmoid(gate(x))))
        for (weight, bias, stride), merge, skip in zip(
            self.up, self.merge, reversed(skips), strict=True
        ):
            up = nn.functional.conv_transpose2d(x, weight, bias, stride)
            x = run(merge, torch.cat([up, skip], dim=1))
        z = self.head(x)[:, 0, :freq, :time]
        mask = 0.5 * torch.sigmoid(z) if self.bounded else torch.sigmoid(z)
        return mask, mask * mag


def classifier_steps(classifier: nn.Module) -> list[Step]:
    """The classifier's convolution stack as it is, max pools without indices. Its BatchNorms
    stay unfolded: its inputs carry large offsets (log floors) that the running means cancel,
    and folding that cancellation into a bias costs more float32 precision than it saves time.
    """
    return [
        max_pool2 if isinstance(m, nn.MaxPool2d) and _is_plain_pool2(m) else m
        for m in classifier.features
    ]


def logits(model: nn.Module, audio: Tensor) -> Tensor:
    """ArtifactNetOpen.logits of every row of `audio`, one chunk at a time."""
    unet = UNetPlan(model.unet)
    convs = classifier_steps(model.classifier)
    pooled = []
    for row in audio.split(1):
        _, residual = unet(model.stft(row))
        pooled.append(run(convs, model.features(residual)))
    # The head runs row by row too, so a chunk's score never depends on its batch.
    return torch.cat([model.classifier.head(p) for p in pooled])[:, 0]
