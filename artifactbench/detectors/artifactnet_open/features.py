"""The front end and the seven forensic channels of the open ArtifactNet, in ONNX-exportable torch.

Every op here (Conv1d, Pad, Gather, TopK, MatMul, elementwise) exports with
`torch.onnx.export(dynamo=False)` at opset 17, so the whole detector ships as one graph.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

CHANNELS = ("mel_res", "mel_H", "mel_P", "delta", "delta2", "hp_ratio", "spectral_flux")
# Floor inside the logs: far below any audible residual, far above float32 denormals.
LOG_EPS = 1e-6
_TINY = float(np.finfo(np.float32).tiny)


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


def median_filter(x: Tensor, kernel: int, dim: int) -> Tensor:
    """Running median along `dim` of a [batch, freq, time] tensor, edges as scipy.ndimage.

    In torch the windows are an `unfold` view and `median` picks the middle one (no copy). ONNX
    has neither a median nor a strided view, so under export the windows are stacked shifted
    slices (Slice + Concat) and the median is their (kernel // 2 + 1)-th largest value (TopK):
    for an odd kernel both pick the same element, so the two graphs agree exactly.
    """
    if kernel % 2 != 1:
        raise ValueError(f"median kernel must be odd, got {kernel}")
    pad = kernel // 2
    x = x.transpose(dim, -1)
    length = int(x.shape[-1])
    padded = torch.index_select(x, -1, _symmetric_index(length, pad, x.device))
    if not torch.onnx.is_in_onnx_export():
        return padded.unfold(-1, kernel, 1).median(dim=-1).values.transpose(dim, -1)
    windows = torch.stack([padded[..., i : i + length] for i in range(kernel)], dim=-1)
    return torch.topk(windows, pad + 1, dim=-1).values[..., -1].transpose(dim, -1)


def hpss(
    mag: Tensor, kernel: int = 31, power: float = 2.0, margin: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Soft harmonic and percussive masks of a magnitude [batch, freq, time], as librosa's.

    Harmonic energy is smooth along time, percussive energy along frequency; each mask is the
    Wiener-style share (X / Z)^power / ((X / Z)^power + (ref / Z)^power). Bins where both
    medians vanish are split 0.5 / 0.5 when margin is 1 and given to neither otherwise.
    """
    harm = median_filter(mag, kernel, dim=-1)
    perc = median_filter(mag, kernel, dim=-2)
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
        mask_h, mask_p = hpss(residual, kernel=self.hpss_kernel)
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
