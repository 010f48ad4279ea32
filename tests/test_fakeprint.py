"""The fakeprint feature and detector: STFT convention, hull residue, fit, weights round trip."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.fakeprint import (
    HOP,
    N_FFT,
    FakeprintDetector,
    FakeprintFit,
    band_bins,
    fakeprint,
    fit,
    lower_hull,
    mean_log_spectrum,
)
from artifactbench.detectors.registry import cards
from tests.conftest import RATE, music, upsampled


def test_mean_log_spectrum_follows_the_centred_reflect_padded_stft() -> None:
    x = np.random.default_rng(0).standard_normal(RATE * 2)
    ours = mean_log_spectrum(x, RATE)
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    _, _, z = signal.stft(padded, nperseg=N_FFT, noverlap=N_FFT - HOP, window="hann",
                          boundary=None, padded=False)  # fmt: skip
    # scipy scales the STFT by 1 / sum(window): a constant offset in dB, nothing else.
    ref = (10 * np.log10(np.clip(np.abs(z) ** 2, 1e-30, None))).mean(axis=1)
    offset = ours - ref
    assert z.shape[1] == 1 + len(x) // HOP
    assert np.ptp(offset[1:-1]) < 1e-6


def test_lower_hull_stays_under_the_spectrum_and_respects_the_floor() -> None:
    bins = np.arange(400)
    spectrum = -30 + 10 * np.sin(bins / 30.0) + 6 * (bins % 25 == 0)
    hull = lower_hull(spectrum)
    assert np.all(hull <= spectrum + 1.5)
    assert np.all(spectrum - hull >= -1.5)
    assert np.all(lower_hull(spectrum - 100) == -45.0)


def test_upsampler_peaks_stand_out_in_the_fakeprint() -> None:
    real = fakeprint(music(1, seconds=6), RATE)
    fake = fakeprint(upsampled(music(1, seconds=6), factor=4), RATE)
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)[band_bins(RATE)]
    image = np.argmin(np.abs(freqs - RATE / 4))  # the image of the layer's bias at fs / 4
    assert fake.shape == real.shape == (len(freqs),)
    assert fake.max() == pytest.approx(1.0) and fake.min() >= 0
    assert fake[image - 1 : image + 2].min() == pytest.approx(1.0)  # clipped at the 5 dB cap
    assert real[image - 1 : image + 2].max() < 0.8


def test_fit_separates_and_weights_round_trip(tmp_path) -> None:
    examples = [(music(i), "real") for i in range(6)]
    examples += [(upsampled(music(20 + i), seed=i), "ai") for i in range(6)]
    fitted = fit(examples, RATE, seed=0)
    card = cards()["fakeprint"]
    detector = FakeprintDetector(card, fitted, {})
    held_out = [music(90), upsampled(music(91), seed=9)]
    real_p, fake_p = detector.score(held_out)
    assert real_p < 0.5 < fake_p
    path = tmp_path / "fit.json"
    path.write_text(fitted.to_json())
    again = FakeprintFit.from_file(path)
    assert again.sha256 == fitted.sha256
    assert FakeprintDetector(card, again, {}).score(held_out) == [real_p, fake_p]


def test_fit_refuses_a_single_class_and_bad_weight_files(tmp_path) -> None:
    with pytest.raises(Unavailable, match="AI and real"):
        fit([(music(i), "real") for i in range(3)], RATE, seed=0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"feature": "other"}')
    with pytest.raises(Unavailable, match="cannot read fakeprint weights"):
        FakeprintFit.from_file(bad)


def test_float16_views_would_move_scores_so_views_travel_as_float32() -> None:
    """Halving the bytes a view costs on the wire is only allowed if scores stay within 1e-6;
    float16 rounding moves fakeprint's by far more, so the engines ship the float32 buffers."""
    examples = [(music(i), "real") for i in range(4)]
    examples += [(upsampled(music(20 + i), seed=i), "ai") for i in range(4)]
    detector = FakeprintDetector(cards()["fakeprint"], fit(examples, RATE, seed=0), {})
    views = [music(90), upsampled(music(91), seed=9), 0.05 * music(92)]
    exact = np.array(detector.score(views))
    rounded = np.array(detector.score([v.astype(np.float16).astype(np.float32) for v in views]))
    assert all(v.dtype == np.float32 for v in views)
    assert np.abs(exact - rounded).max() > 1e-6
