"""Effective bandwidth of a track's residual (ArtifactNet paper, Appendix C, Table XI, Fig. 5).

The paper's f* is the smallest frequency at which the cumulative magnitude energy from 0 Hz
reaches 95% of the total, on a uniform STFT (n_fft 2048, hop 512) at 44.1 kHz, averaged over
the track. The text leaves three choices open; this module fixes them as follows.

* Energy: |X|^2 per bin (``energy="power"``, Parseval's energy, the default); ``"magnitude"``
  sums |X| instead. Power weighs loud bins more, so its f* sits at or below the magnitude one.
* Threshold: f* is the centre frequency k * rate / n_fft of the first bin k whose cumulative
  share (bins 0..k inclusive) is >= the fraction. It is quantised to bins (21.5 Hz at the
  paper's grid) and never below the true continuous point.
* Averaging: f* per frame, then the mean over the frames that are not silent. A frame is
  silent when every bin's magnitude is <= ``silence_floor``; a track with no such frame has
  no bandwidth (NaN). ``average="summed"`` gives the alternative: one f* of the spectrum summed
  over the non-silent frames, which lets loud frames dominate.

Residual models turn mono 44.1 kHz audio into the residual magnitude that f* is measured on:
``hpss`` (the open ArtifactNet's offline teacher, always available), ``artifactnet-open`` (the
trained U-Net's residual, on the model's own STFT grid) and ``demucs`` (mixture minus stems).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

RATE = 44100
N_FFT = 2048
HOP = 512
FRACTION = 0.95
HPSS_KERNEL = 31
# 10x the 1e-6 floor MagnitudeSTFT puts under its sqrt, so its (and the U-Net's) rendering of
# digital silence counts as silent; a sinusoid this weak in a 2048 Hann frame is ~ -150 dBFS.
SILENCE_FLOOR = 1e-5
WEIGHTS_HINT = (
    "train one with `artifactbench train artifactnet-open --bench demo --small` or pass the "
    "packaged demo model, artifactbench.assets.packaged_dir() / 'artifactnet_open.pt'"
)

Energy = Literal["power", "magnitude"]
Average = Literal["frames", "summed"]

# Frames per block when a long track's spectrum is processed piecewise, to bound memory.
_BLOCK_FRAMES = 2048


def _bin_energy(magnitude: np.ndarray, energy: str) -> np.ndarray:
    mag = np.abs(np.asarray(magnitude, dtype=np.float64))
    if energy == "power":
        return mag * mag
    if energy == "magnitude":
        return mag
    raise ValueError(f"energy must be 'power' or 'magnitude', got {energy!r}")


def _first_reaching(energy: np.ndarray, fraction: float) -> np.ndarray:
    """Index of the first bin whose cumulative share reaches `fraction`, per column.

    The total is the cumulative sum's own last entry, so the last bin always qualifies and
    rounding can never leave a column without an answer.
    """
    cum = np.cumsum(energy, axis=0)
    return np.argmax(cum >= fraction * cum[-1:], axis=0)


def _check(magnitude: np.ndarray, n_fft: int, fraction: float) -> np.ndarray:
    mag = np.asarray(magnitude)
    if mag.ndim != 2:
        raise ValueError(f"magnitude must be [freq, frames], got shape {mag.shape}")
    if mag.shape[0] != n_fft // 2 + 1:
        raise ValueError(
            f"magnitude has {mag.shape[0]} bins but n_fft {n_fft} gives {n_fft // 2 + 1}: "
            "bin -> Hz needs the n_fft the spectrum was computed with"
        )
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return mag


def frame_bandwidths(
    magnitude: np.ndarray,
    rate: int,
    n_fft: int,
    fraction: float = FRACTION,
    energy: Energy = "power",
    silence_floor: float = SILENCE_FLOOR,
) -> np.ndarray:
    """f* in Hz of every frame of a magnitude [freq, frames]; NaN for silent frames.

    Exposed so per-frame spread (not only the track mean) can be inspected and tested.
    """
    mag = _check(magnitude, n_fft, fraction)
    out = np.full(mag.shape[1], np.nan)
    hz_per_bin = rate / n_fft
    for start in range(0, mag.shape[1], _BLOCK_FRAMES):
        block = mag[:, start : start + _BLOCK_FRAMES]
        voiced = np.abs(block).max(axis=0, initial=0.0) > silence_floor
        if voiced.any():
            bins = _first_reaching(_bin_energy(block[:, voiced], energy), fraction)
            out[start : start + block.shape[1]][voiced] = bins * hz_per_bin
    return out


def effective_bandwidth(
    magnitude: np.ndarray,
    rate: int,
    n_fft: int,
    fraction: float = FRACTION,
    energy: Energy = "power",
    *,
    average: Average = "frames",
    silence_floor: float = SILENCE_FLOOR,
) -> float:
    """The track's f* in Hz from its residual magnitude [n_fft // 2 + 1, frames].

    energy: "power" sums |X|^2 per bin (the default), "magnitude" sums |X|.
    average: "frames" (default) is the mean of the per-frame f* over non-silent frames, so
    every sounding frame counts once whatever its loudness; "summed" is the f* of the energy
    summed over the non-silent frames. A frame is silent when all its bins are <=
    `silence_floor`. Returns NaN when every frame is silent (or there are no frames): a
    silent track has no bandwidth, and NaN keeps it out of means rather than reading as 0 Hz.
    """
    if average == "frames":
        per_frame = frame_bandwidths(magnitude, rate, n_fft, fraction, energy, silence_floor)
        finite = per_frame[np.isfinite(per_frame)]
        return float(finite.mean()) if finite.size else math.nan
    if average != "summed":
        raise ValueError(f"average must be 'frames' or 'summed', got {average!r}")
    mag = _check(magnitude, n_fft, fraction)
    total = np.zeros(mag.shape[0])
    for start in range(0, mag.shape[1], _BLOCK_FRAMES):
        block = mag[:, start : start + _BLOCK_FRAMES]
        voiced = np.abs(block).max(axis=0, initial=0.0) > silence_floor
        total += _bin_energy(block[:, voiced], energy).sum(axis=1)
    if not total.any():
        return math.nan
    return float(_first_reaching(total[:, None], fraction)[0] * rate / n_fft)


def uniform_magnitude(audio: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT| [n_fft // 2 + 1, 1 + samples // hop] as float32: periodic Hann, centred frames,
    reflect padding; the framing of MagnitudeSTFT (so of the open ArtifactNet), in numpy so
    digital silence stays exactly 0."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio [samples], got shape {x.shape}")
    pad = n_fft // 2
    if x.size <= pad:
        raise ValueError(f"audio of {x.size} samples is too short for n_fft {n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad, mode="reflect"), n_fft)
    frames = frames[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    out = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], _BLOCK_FRAMES):
        block = frames[start : start + _BLOCK_FRAMES] * window
        out[:, start : start + block.shape[0]] = np.abs(np.fft.rfft(block, axis=1)).T
    return out


@dataclass(frozen=True)
class ResidualModel:
    """Mono float32 audio [samples] at `rate` -> residual magnitude [n_fft // 2 + 1, frames].

    Carries its own grid (n_fft, hop) because bin -> Hz depends on it: artifactnet-open
    measures on the trained model's STFT, which need not be the paper's 2048-point one.
    """

    name: str
    n_fft: int
    hop: int
    compute: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    rate: int = RATE
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [samples], got shape {x.shape}")
        return self.compute(x)

    def bandwidth(
        self,
        audio: np.ndarray,
        fraction: float = FRACTION,
        energy: Energy = "power",
        *,
        average: Average = "frames",
    ) -> float:
        """f* in Hz of the residual of `audio`, on this model's own grid."""
        return effective_bandwidth(
            self(audio), self.rate, self.n_fft, fraction, energy, average=average
        )


def _hpss_model(chunk_frames: int = 1024) -> ResidualModel:
    """|X| (1 - harmonic mask), kernel 31, on the uniform grid: the offline teacher.

    Computed in blocks of `chunk_frames` frames with kernel // 2 frames of context on each
    side, which gives exactly the whole-track result (the time median only looks that far)
    without holding kernel copies of a long spectrum in memory.
    """
    import torch

    from artifactbench.detectors.artifactnet_open.features import hpss_residual

    context = HPSS_KERNEL // 2

    def compute(audio: np.ndarray) -> np.ndarray:
        mag = uniform_magnitude(audio)
        out = np.empty_like(mag)
        frames = mag.shape[1]
        for start in range(0, frames, chunk_frames):
            stop = min(start + chunk_frames, frames)
            lo, hi = max(0, start - context), min(frames, stop + context)
            with torch.inference_mode():
                part = hpss_residual(torch.from_numpy(mag[None, :, lo:hi]), HPSS_KERNEL)
            out[:, start:stop] = part[0, :, start - lo : stop - lo].numpy()
        return out

    return ResidualModel(
        "hpss",
        N_FFT,
        HOP,
        compute,
        provenance={"teacher": "hpss", "kernel": HPSS_KERNEL, "chunk_frames": chunk_frames},
    )


def _artifactnet_model(weights: Path | None, device: str, batch: int = 8) -> ResidualModel:
    """The trained U-Net's residual m * |X| over consecutive segments of the model's length.

    The model's STFT may not be 2048 points (the demo build uses 1024) and the U-Net gives a
    magnitude, not a waveform, so nothing can be resynthesised onto the uniform grid: f* is
    measured on the model's own grid and converted with its own n_fft. Each segment is framed
    on its own, as the detector sees it; a final partial segment runs at its own length when
    it has at least n_fft samples and is dropped otherwise (under 1/40 s at 44.1 kHz).
    """
    import torch

    from artifactbench.assets import packaged_dir
    from artifactbench.detectors.artifactnet_open.detector import read_weights
    from artifactbench.detectors.base import Unavailable
    from artifactbench.util import sha256_file

    path = Path(weights) if weights is not None else packaged_dir() / "artifactnet_open.pt"
    if not path.is_file():
        raise Unavailable(f"artifactnet-open: no weights file at {path}; {WEIGHTS_HINT}", "")
    try:
        model, _, meta = read_weights(path)
    except Exception as exc:  # noqa: BLE001 - any read failure means the file is unusable
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise Unavailable(f"artifactnet-open: cannot read {path}: {reason}", "") from exc
    cfg = model.config
    if cfg.sample_rate != RATE:
        raise ValueError(f"{path}: model runs at {cfg.sample_rate} Hz, bandwidth needs {RATE}")
    dev = torch.device(device if device == "cpu" or torch.cuda.is_available() else "cpu")
    model.to(dev)
    seg = cfg.segment_samples

    def run(pieces: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(pieces)).to(dev)
            _, residual = model.unet(model.stft(x))
        return list(residual.cpu().numpy())

    def compute(audio: np.ndarray) -> np.ndarray:
        full = [audio[i : i + seg] for i in range(0, audio.size - seg + 1, seg)]
        tail = audio[len(full) * seg :]
        parts: list[np.ndarray] = []
        for i in range(0, len(full), batch):
            parts += run(full[i : i + batch])
        if tail.size >= cfg.n_fft:
            parts += run([tail])
        if not parts:
            raise ValueError(f"audio of {audio.size} samples is shorter than n_fft {cfg.n_fft}")
        return np.concatenate(parts, axis=1)

    provenance = {
        "weights": str(path),
        "sha256": sha256_file(path),
        "n_fft": cfg.n_fft,
        "hop": cfg.hop,
        "segment_samples": seg,
        "teacher": meta.get("teacher"),
        "device": str(dev),
    }
    return ResidualModel("artifactnet-open", cfg.n_fft, cfg.hop, compute, provenance=provenance)


def _demucs_model(directory: Path | None, device: str) -> ResidualModel:
    """|uniform STFT| of mixture minus the sum of Demucs's stems: the paper's own teacher.

    Loads eagerly, so missing weights raise `DemucsUnavailable` when the model is asked for,
    not halfway through a bench.
    """
    import torch

    from artifactbench.audio.separation import load_separator

    sep = load_separator(directory)
    if sep.samplerate != RATE:
        raise ValueError(f"Demucs bag {sep.name} runs at {sep.samplerate} Hz, not {RATE}")
    if device != "cpu" and torch.cuda.is_available():
        sep.bag.to(device)

    def compute(audio: np.ndarray) -> np.ndarray:
        residual = sep.residual(torch.from_numpy(audio[None]).to(sep.device))
        return uniform_magnitude(residual[0].cpu().numpy())

    return ResidualModel("demucs", N_FFT, HOP, compute, provenance=sep.provenance())


def _hpss_without_weights(weights: Path | None, device: str) -> ResidualModel:
    if weights is not None:
        raise ValueError("the hpss residual model takes no weights")
    return _hpss_model()


# name -> factory(weights, device): what `bandwidth --residual` accepts, in this order.
RESIDUAL_MODELS: dict[str, Callable[[Path | None, str], ResidualModel]] = {
    "hpss": _hpss_without_weights,
    "artifactnet-open": _artifactnet_model,
    "demucs": _demucs_model,
}


def residual_model(name: str, weights: Path | None = None, *, device: str = "cpu") -> ResidualModel:
    """The residual model `name`, one of RESIDUAL_MODELS, ready to call on audio.

    weights: for artifactnet-open the `.pt` file (default: the packaged demo model); for
    demucs the folder holding the bag (default: `separation.demucs_dir()`); hpss takes none.
    Raises ValueError for an unknown name, `detectors.base.Unavailable` for unusable
    artifactnet-open weights and `separation.DemucsUnavailable` when Demucs is not here.
    """
    if name not in RESIDUAL_MODELS:
        choices = ", ".join(RESIDUAL_MODELS)
        raise ValueError(f"unknown residual model {name!r}; choose from: {choices}")
    return RESIDUAL_MODELS[name](weights, device)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def bandwidth_table(rows: Iterable[tuple[str, str, float]]) -> dict[str, Any]:
    """Table XI from (subset, label, bandwidth_hz) per track.

    Returns {"subsets": {subset: {"label", "n", "mean_hz", "std_hz"}} ordered by mean_hz
    descending, "real" and "ai": {"n", "mean_hz"}, "ratio_ai_real", "n_tracks", "n_skipped"}.
    Class means pool the tracks (not the subset means), so a large generator weighs more. NaN
    bandwidths (silent tracks) are left out of every mean and counted in n_skipped; std is
    population (ddof 0); means and ratio are None where nothing was measured.
    """
    by_subset: dict[str, list[float]] = {}
    labels: dict[str, str] = {}
    by_class: dict[str, list[float]] = {"real": [], "ai": []}
    n_tracks = n_skipped = 0
    for subset, label, hz in rows:
        if label not in by_class:
            raise ValueError(f"label must be 'real' or 'ai', got {label!r} in subset {subset!r}")
        if labels.setdefault(subset, label) != label:
            raise ValueError(f"subset {subset!r} mixes labels {labels[subset]!r} and {label!r}")
        values = by_subset.setdefault(subset, [])
        n_tracks += 1
        if not math.isfinite(hz):
            n_skipped += 1
            continue
        values.append(float(hz))
        by_class[label].append(float(hz))
    subsets = {}
    for subset, values in by_subset.items():
        mean, std = _mean_std(values)
        subsets[subset] = {"label": labels[subset], "n": len(values), "mean_hz": mean}
        subsets[subset]["std_hz"] = std

    def widest_first(name: str) -> tuple[bool, float]:
        mean = subsets[name]["mean_hz"]
        return mean is None, -(mean or 0.0)

    order = sorted(subsets, key=widest_first)
    classes = {k: {"n": len(v), "mean_hz": _mean_std(v)[0]} for k, v in by_class.items()}
    real, ai = classes["real"]["mean_hz"], classes["ai"]["mean_hz"]
    return {
        "subsets": {s: subsets[s] for s in order},
        "real": classes["real"],
        "ai": classes["ai"],
        "ratio_ai_real": ai / real if real and ai is not None else None,
        "n_tracks": n_tracks,
        "n_skipped": n_skipped,
    }


_COLORS = {"real": "#1f77b4", "ai": "#d62728"}


def plot_bandwidth(table: dict[str, Any], path: Path, *, title: str | None = None) -> Path:
    """Fig. 5: one horizontal bar per subset (widest at the top), blue real, red AI, with a
    dashed line at each class mean; subsets with no measured track are left out.

    title: the first title line (default: the paper's 95%-energy definition); the AI / real
    ratio, when there is one, goes on a second line.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    shown = [(s, v) for s, v in table["subsets"].items() if v["mean_hz"] is not None]
    shown.sort(key=lambda item: item[1]["mean_hz"])
    with matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": 9}):
        fig = Figure(figsize=(6.5, 1.2 + 0.32 * max(len(shown), 1)))
        ax = fig.add_subplot()
        widths_khz = [v["mean_hz"] / 1000 for _, v in shown]
        ax.barh(
            range(len(shown)),
            widths_khz,
            xerr=[v["std_hz"] / 1000 for _, v in shown],
            color=[_COLORS[v["label"]] for _, v in shown],
            error_kw={"lw": 0.7, "capsize": 2, "ecolor": "0.3"},
        )
        ax.set_yticks(range(len(shown)), [f"{s} (n={v['n']})" for s, v in shown])
        handles: list[Any] = []
        for label in ("real", "ai"):
            mean = table[label]["mean_hz"]
            handles.append(Patch(color=_COLORS[label], label=label))
            if mean is not None:
                handles.append(
                    ax.axvline(
                        mean / 1000,
                        color=_COLORS[label],
                        ls="--",
                        lw=1.0,
                        label=f"{label} mean {mean / 1000:.2f} kHz",
                    )
                )
        ratio = table.get("ratio_ai_real")
        title = title or "Effective bandwidth of the residual (95% energy)"
        ax.set_title(title + (f"\nAI / real = {ratio:.2f}" if ratio is not None else ""))
        ax.set_xlabel("f* (kHz)")
        ax.set_xlim(0, RATE / 2000)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(handles=handles, loc="lower right", fontsize=8)
        fig.tight_layout()
        FigureCanvasAgg(fig)
        fig.savefig(path, format="png", dpi=120, metadata={"Software": None})
    return path
