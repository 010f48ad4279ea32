"""The front end and the seven forensic channels of the open ArtifactNet, in ONNX-exportable torch.

Every op here (Conv1d, Pad, Gather, TopK, MatMul, elementwise) exports with
`torch.onnx.export(dynamo=False)` at opset 17, so the whole detector ships as one graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import scipy.ndimage
import torch
from torch import Tensor, nn

CHANNELS = ("mel_res", "mel_H", "mel_P", "delta", "delta2", "hp_ratio", "spectral_flux")
# Floor inside the logs: far below any audible residual, far above float32 denormals.
LOG_EPS = 1e-6
_TINY = float(np.finfo(np.float32).tiny)
# Set inside `reference_path()`: every forward then takes the torch graph of training.
_REFERENCE: ContextVar[bool] = ContextVar("artifactnet_open_reference_path", default=False)


class MagnitudeSTFT(nn.Module):
    """|STFT| as a strided Conv1d with fixed DFT kernels: exports as one Conv, unlike stft.

    Periodic Hann window and centred frames with reflect padding, as librosa's defaults.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        n = np.arange(n_fft)
        k = np.arange(n_fft // 2 + 1)[:, None]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
        phase = 2 * np.pi * k * n / n_fft
        kernels = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window])
        self.register_buffer("kernels", torch.tensor(kernels[:, None, :], dtype=torch.float32))

    def forward(self, audio: Tensor) -> Tensor:
        """audio [batch, samples] -> magnitude [batch, n_fft // 2 + 1, frames]."""
        pad = self.n_fft // 2
        x = nn.functional.pad(audio.unsqueeze(1), (pad, pad), mode="reflect")
        spec = nn.functional.conv1d(x, self.kernels, stride=self.hop)
        real, imag = spec.chunk(2, dim=1)
        # The floor keeps the gradient of sqrt finite on exact silence.
        return torch.sqrt(real * real + imag * imag + 1e-12)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangles from 0 Hz to Nyquist (librosa's default)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        linear = hz / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log, linear)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        linear = mel * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel >= 15.0, log, linear)

    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _symmetric_index(length: int, pad: int, device: torch.device) -> Tensor:
    """Indices that pad an axis by mirroring with the edge repeated (scipy's 'reflect' mode),
    on the device of the tensor they index."""
    period = 2 * length
    idx = np.mod(np.arange(-pad, length + pad), period)
    idx = np.where(idx >= length, period - 1 - idx, idx)
    return torch.tensor(idx, dtype=torch.long, device=device)


@contextmanager
def reference_path() -> Iterator[None]:
    """Run every forward in this context through the exact torch graph of training and export:
    the baseline the CPU inference path is measured and checked against."""
    token = _REFERENCE.set(True)
    try:
        yield
    finally:
        _REFERENCE.reset(token)


def fast_path_applies(x: Tensor, module: nn.Module | None = None) -> bool:
    """True where a CPU inference shortcut may replace the torch graph for input `x` (and
    `module`, which must then be in eval mode): nothing records gradients, the tensor is on the
    CPU, and no ONNX export, tracing, scripting or compiling needs the graph itself."""
    if _REFERENCE.get() or x.device.type != "cpu":
        return False
    if module is not None and module.training:
        return False
    if torch.is_grad_enabled():
        if x.requires_grad:
            return False
        if module is not None and any(p.requires_grad for p in module.parameters()):
            return False
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return not torch.compiler.is_compiling()


def _scipy_median_applies(x: Tensor) -> bool:
    """The scipy kernel takes plain float tensors; NaN stays with torch, whose median
    propagates it, where scipy's running median makes no such promise."""
    if not fast_path_applies(x) or x.dtype not in (torch.float32, torch.float64):
        return False
    return x.numel() > 0 and not bool(torch.isnan(x).any())


def _scipy_median(padded: Tensor, kernel: int, length: int) -> Tensor:
    """Running median of every row of `padded` (already mirrored by kernel // 2 each side).

    The rows are laid end to end and filtered as one 1-D signal by scipy's O(n log k) kernel;
    every kept output's window lies inside its own padded row, so the seams between rows and
    scipy's boundary mode never reach a kept value.
    """
    pad = kernel // 2
    rows = padded.contiguous().numpy()
    out = scipy.ndimage.median_filter(rows.reshape(-1), size=kernel, mode="nearest")
    return torch.from_numpy(out.reshape(rows.shape)[..., pad : pad + length])


def median_filter(x: Tensor, kernel: int, dim: int, allow_fast: bool = True) -> Tensor:
    """Running median along `dim` of a [batch, freq, time] tensor, edges as scipy.ndimage.

    In torch the windows are an `unfold` view and `median` picks the middle one (no copy). ONNX
    has neither a median nor a strided view, so under export the windows are stacked shifted
    slices (Slice + Concat) and the median is their (kernel // 2 + 1)-th largest value (TopK):
    for an odd kernel both pick the same element, so the two graphs agree exactly. Inference
    on CPU (`allow_fast` and no gradient needed) runs scipy's running median on the same padded
    rows instead: it selects the same element, so the result is bit-identical, ~10x sooner.
    """
    if kernel % 2 != 1:
        raise ValueError(f"median kernel must be odd, got {kernel}")
    pad = kernel // 2
    x = x.transpose(dim, -1)
    length = int(x.shape[-1])
    padded = torch.index_select(x, -1, _symmetric_index(length, pad, x.device))
    if allow_fast and _scipy_median_applies(x):
        return _scipy_median(padded, kernel, length).transpose(dim, -1)
    if not torch.onnx.is_in_onnx_export():
        return padded.unfold(-1, kernel, 1).median(dim=-1).values.transpose(dim, -1)
    windows = torch.stack([padded[..., i : i + length] for i in range(kernel)], dim=-1)
    return torch.topk(windows, pad + 1, dim=-1).values[..., -1].transpose(dim, -1)


def hpss(
    mag: Tensor,
    kernel: int = 31,
    power: float = 2.0,
    margin: float = 1.0,
    allow_fast: bool = True,
) -> tuple[Tensor, Tensor]:
    """Soft harmonic and percussive masks of a magnitude [batch, freq, time], as librosa's.

    Harmonic energy is smooth along time, percussive energy along frequency; each mask is the
    Wiener-style share (X / Z)^power / ((X / Z)^power + (ref / Z)^power). Bins where both
    medians vanish are split 0.5 / 0.5 when margin is 1 and given to neither otherwise.
    `allow_fast` lets the medians take the bit-identical CPU inference kernel.
    """
    harm = median_filter(mag, kernel, dim=-1, allow_fast=allow_fast)
    perc = median_filter(mag, kernel, dim=-2, allow_fast=allow_fast)
    empty = 0.5 if margin == 1.0 else 0.0
    return (
        _softmask(harm, perc * margin, power, empty),
        _softmask(perc, harm * margin, power, empty),
    )


def _softmask(x: Tensor, ref: Tensor, power: float, empty: float) -> Tensor:
    z = torch.maximum(x, ref)
    bad = z < _TINY
    z = torch.where(bad, torch.ones_like(z), z)
    mask = (x / z) ** power
    ref_mask = (ref / z) ** power
    return torch.where(bad, torch.full_like(mask, empty), mask / (mask + ref_mask))


def _time_difference(x: Tensor) -> Tensor:
    """Central difference along the last axis, edges repeated: frame-to-frame dynamics."""
    padded = torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)
    return 0.5 * (padded[..., 2:] - padded[..., :-2])


class ForensicFeatures(nn.Module):
    """Residual magnitude [batch, freq, time] -> seven channels [batch, 7, n_mels, time].

    mel_res, mel_H, mel_P are log mels of the residual and of its HPSS parts; delta and delta2
    are the first and second time derivatives of mel_res; hp_ratio is log(H / P) per mel bin;
    spectral_flux is the half-wave rectified frame-to-frame rise of mel_res (0 on frame one).
    """

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, hpss_kernel: int = 31) -> None:
        super().__init__()
        self.hpss_kernel = hpss_kernel
        fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels))
        self.register_buffer("mel", fb)

    def to_mel(self, mag: Tensor) -> Tensor:
        """Linear mel energy [batch, n_mels, time] of a magnitude [batch, freq, time]."""
        return torch.matmul(self.mel, mag)

    def forward(self, residual: Tensor) -> Tensor:
        # Training keeps the torch graph end to end, whatever needs gradients.
        mask_h, mask_p = hpss(residual, kernel=self.hpss_kernel, allow_fast=not self.training)
        mel_lin = self.to_mel(residual)
        mel_h_lin = self.to_mel(residual * mask_h)
        mel_p_lin = self.to_mel(residual * mask_p)
        mel_res = torch.log(mel_lin + LOG_EPS)
        mel_h = torch.log(mel_h_lin + LOG_EPS)
        mel_p = torch.log(mel_p_lin + LOG_EPS)
        delta = _time_difference(mel_res)
        delta2 = _time_difference(delta)
        hp_ratio = mel_h - mel_p
        rise = torch.relu(mel_res[..., 1:] - mel_res[..., :-1])
        flux = torch.cat([torch.zeros_like(mel_res[..., :1]), rise], dim=-1)
        return torch.stack([mel_res, mel_h, mel_p, delta, delta2, hp_ratio, flux], dim=1)


def hpss_residual(mag: Tensor, kernel: int) -> Tensor:
    """The non-harmonic part |X| * (1 - H_mask) of the HPSS split: the training teacher without
    Demucs, and a residual of the bandwidth measurement."""
    mask_h, _ = hpss(mag, kernel=kernel)
    return mag * (1.0 - mask_h)
