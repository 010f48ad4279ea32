"""Deterministic synthesized multi-instrument music: the 'real' material of the demo bench.

Everything is drawn from one numpy Generator so a track is a pure function of its seed. Notes
are rendered one at a time with vectorised table lookups (no per-sample Python): a 14 s stereo
track costs about a tenth of a second of CPU, which is what lets the whole demo bench build in
well under a minute.

The same seed must give the same samples on every machine, so everything here is built on the
portable arithmetic of `portable.py` (no CPU-dispatched NumPy kernels, no BLAS sums). The
modules split the synthesis by concern:

- `portable`: the arithmetic (sin, exp, log, windows, filters, resampling, exact matmul);
- `voices`: instrument timbres and how one note of each is rendered;
- `music`: a whole track (performance, parts, drums, mix, reverb) and the tape transfer.
"""

from __future__ import annotations

from artifactbench.benches.demo.synth.music import (
    MAJOR,
    MINOR,
    PROGRESSIONS,
    STYLES,
    Style,
    normalize,
    synthesize,
    tape_vintage,
)
from artifactbench.benches.demo.synth.portable import (
    RATE,
    butter_sos,
    complex_abs,
    complex_product,
    cos,
    cosine_window,
    exact_matmul,
    exp,
    fft_convolve,
    kaiser,
    log,
    lowpass_fir,
    power,
    resample_poly,
    sin,
    sinc,
    tanh,
)
from artifactbench.benches.demo.synth.voices import Voice, midi_hz

__all__ = [
    "MAJOR",
    "MINOR",
    "PROGRESSIONS",
    "RATE",
    "STYLES",
    "Style",
    "Voice",
    "butter_sos",
    "complex_abs",
    "complex_product",
    "cos",
    "cosine_window",
    "exact_matmul",
    "exp",
    "fft_convolve",
    "kaiser",
    "log",
    "lowpass_fir",
    "midi_hz",
    "normalize",
    "power",
    "resample_poly",
    "sin",
    "sinc",
    "synthesize",
    "tanh",
    "tape_vintage",
]
