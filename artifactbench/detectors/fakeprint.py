"""Spectral fakeprint detector after Afchar et al., "A Fourier Explanation of AI-music Artifacts".

Transposed-convolution upsamplers in generators leave periodic peaks in the mean spectrum. The
fakeprint isolates them: the mean log power spectrum over 5-16 kHz minus its lower hull, clipped to
[0, 5] dB and normalised, fed to a logistic regression. The STFT follows the reference
implementation's torchaudio defaults (n_fft 16384, hop n_fft // 2, periodic Hann window, centred
with reflect padding, power 2, dB = 10 log10 of the power clipped to [1e-10, 1e6]).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import interp1d
from scipy.ndimage import minimum_filter1d
from scipy.signal import get_window

from artifactbench.detectors.base import DetectorCard, Identity, LoadContext, Unavailable

N_FFT = 16384
HOP = N_FFT // 2
BAND_HZ = (5000.0, 16000.0)
HULL_WINDOW = 10
HULL_FLOOR_DB = -45.0
RESIDUE_CLIP_DB = 5.0
FEATURE_VERSION = "fakeprint-v1"
# numpy and scikit-learn on the host: `--device` does not move this model.
DEVICE = "cpu"


def mean_log_spectrum(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mean over frames of the dB power spectrum, computed frame block by frame block."""
    x = np.asarray(audio, dtype=np.float64)
    pad = N_FFT // 2
    if len(x) <= pad:
        x = np.pad(x, (0, pad + 1 - len(x)))
    x = np.pad(x, pad, mode="reflect")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    window = get_window("hann", N_FFT, fftbins=True)
    total = np.zeros(N_FFT // 2 + 1)
    for start in range(0, n_frames, 32):
        idx = np.arange(start, min(start + 32, n_frames))[:, None] * HOP + np.arange(N_FFT)
        power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
        total += (10.0 * np.log10(np.clip(power, 1e-10, 1e6))).sum(axis=0)
    return total / n_frames


def band_bins(rate: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / rate)
    return np.flatnonzero((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]))


def lower_hull(spectrum: np.ndarray) -> np.ndarray:
    """Quadratic interpolation through the points that are minima of their 10-bin window."""
    floor = minimum_filter1d(spectrum, size=HULL_WINDOW, mode="nearest")
    anchors = np.flatnonzero(spectrum <= floor)
    if anchors[0] != 0:
        anchors = np.concatenate([[0], anchors])
    if anchors[-1] != len(spectrum) - 1:
        anchors = np.concatenate([anchors, [len(spectrum) - 1]])
    values = floor[anchors]
    kind = "quadratic" if len(anchors) >= 3 else "linear"
    hull = interp1d(anchors, values, kind=kind)(np.arange(len(spectrum)))
    return np.maximum(hull, HULL_FLOOR_DB)


def fakeprint(audio: np.ndarray, rate: int) -> np.ndarray:
    """The normalised 5-16 kHz residue above the lower hull (all zeros when there is none)."""
    band = mean_log_spectrum(audio, rate)[band_bins(rate)]
    residue = np.clip(band - lower_hull(band), 0.0, RESIDUE_CLIP_DB)
    peak = residue.max()
    return residue / peak if peak > 0 else residue


@dataclass(frozen=True)
class FakeprintFit:
    """Logistic-regression weights over the fakeprint, plus where they came from."""

    coef: tuple[float, ...]
    intercept: float
    rate: int
    provenance: dict[str, Any]

    def to_json(self) -> str:
        body = {
            "feature": FEATURE_VERSION,
            "rate": self.rate,
            "coef": list(self.coef),
            "intercept": self.intercept,
            "provenance": self.provenance,
        }
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> FakeprintFit:
        try:
            body = json.loads(path.read_text())
            if body.get("feature") != FEATURE_VERSION:
                raise ValueError(f"feature {body.get('feature')!r}, expected {FEATURE_VERSION!r}")
            return cls(
                tuple(body["coef"]),
                float(body["intercept"]),
                int(body["rate"]),
                body.get("provenance", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"cannot read fakeprint weights {path}: {exc}", "") from exc

    @property
    def sha256(self) -> str:
        """Hash of the weights alone: the same fit reached twice shares its cached scores."""
        blob = json.dumps([self.rate, list(self.coef), self.intercept]).encode()
        return hashlib.sha256(blob).hexdigest()


C_GRID = tuple(float(c) for c in np.logspace(-3, 2, 11))


def fit(examples: Iterable[tuple[np.ndarray, str]], rate: int, seed: int) -> FakeprintFit:
    """Fit the logistic regression on (view, label) pairs from a train split.

    A fakeprint has thousands of bins and a train split may have only hundreds of tracks, so the
    L2 strength is chosen by stratified 5-fold cross-validation (log loss) on the train split
    itself; the test split is never seen.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    feats, labels = [], []
    for view, label in examples:
        feats.append(fakeprint(view, rate))
        labels.append(1 if label == "ai" else 0)
    smallest = min(sum(labels), len(labels) - sum(labels))
    if smallest == 0:
        raise Unavailable("fakeprint needs AI and real tracks in the train split to fit", "")
    x, y = np.stack(feats), np.array(labels)
    base = LogisticRegression(max_iter=5000, class_weight="balanced", random_state=seed)
    if smallest >= 2:
        folds = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
        search = GridSearchCV(base, {"C": list(C_GRID)}, cv=folds, scoring="neg_log_loss")
        model = search.fit(x, y).best_estimator_
    else:
        model = base.set_params(C=1.0).fit(x, y)
    return FakeprintFit(
        tuple(float(c) for c in model.coef_[0]),
        float(model.intercept_[0]),
        rate,
        {"n_train": len(labels), "n_ai": int(y.sum()), "seed": seed, "C": float(model.C)},
    )


class FakeprintDetector:
    """Scores views with a fitted logistic regression; no state beyond the weights."""

    def __init__(self, card: DetectorCard, weights: FakeprintFit, provenance: dict[str, Any]):
        self.card = card
        self.weights = weights
        self.weights_sha256 = weights.sha256
        self.provenance = provenance
        self._coef = np.asarray(weights.coef)

    def score(self, views: list[np.ndarray]) -> list[float]:
        out = []
        for view in views:
            z = float(fakeprint(view, self.weights.rate) @ self._coef + self.weights.intercept)
            out.append(1.0 / (1.0 + math.exp(-z)) if z >= -700 else 0.0)
        return out


def identify(card: DetectorCard, weights: Path | None, context: LoadContext) -> Identity:
    """The fit is the weights: a small JSON read (or fitted and cached now), nothing to spare."""
    detector = load(card, weights, context)
    return Identity(card, detector.weights_sha256, detector.provenance)


def load(card: DetectorCard, weights: Path | None, context: LoadContext) -> FakeprintDetector:
    """Weights from `--weights`, else the cached fit for this bench, else fit and cache now."""
    if weights is not None:
        fitted = FakeprintFit.from_file(weights)
        provenance = {"weights": str(weights), "source": "file", "device": DEVICE}
        return FakeprintDetector(card, fitted, provenance)
    fit_plan = context.fit_plan
    if fit_plan is None:
        raise Unavailable(
            "fakeprint fits on a train split and the scored bench has none",
            "--fit-on demo (or another bench with a train split), or --weights FIT.json "
            "(`artifactbench models --details` lists cached fits)",
        )
    if fit_plan.cache_path.exists():
        fitted = FakeprintFit.from_file(fit_plan.cache_path)
        source = "cached fit"
    else:
        fitted = fit(fit_plan.examples(), card.view.rate, context.seed)
        fitted = FakeprintFit(
            fitted.coef, fitted.intercept, fitted.rate, {**fitted.provenance, **fit_plan.record}
        )
        tmp = fit_plan.cache_path.with_suffix(".tmp")
        fit_plan.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(fitted.to_json())
        tmp.replace(fit_plan.cache_path)
        source = "fitted now"
    provenance = {
        "source": source,
        "path": str(fit_plan.cache_path),
        **fitted.provenance,
        "device": DEVICE,
    }
    return FakeprintDetector(card, fitted, provenance)
