"""Chromaprint fingerprints of protocol buffers, and how well two of them line up.

Chromaprint (the AcoustID fingerprint, the field's standard for finding the same recording
under another encoding) is fed our own decoded audio as 16-bit PCM: decoding stays the
project's protocol, Chromaprint only fingerprints. Its raw fingerprint is one 32-bit item per
1365 samples at 11025 Hz (about 8 per second), each bit a thresholded chroma filter response,
so a re-encode flips a few bits and a trim shifts the items. Two tracks are the same recording
when some alignment of their items has a low bit error rate over a long enough overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from artifactbench.audio.decode import PROTOCOL_RATE

# Items per second of audio: Chromaprint's frames of 4096 samples at 11025 Hz overlap by 2/3.
ITEM_RATE = 11025 / (4096 / 3)
# Only the first minute is fingerprinted, like AcoustID's lookups (which take two): a few
# hundred items per track, whatever its length.
MAX_SECONDS = 60.0
# A match needs this much aligned audio, or 80% of the shorter track when that is shorter
# than 12.5 s, and never less than MIN_SECONDS.
MIN_OVERLAP_SECONDS = 10.0
SHORT_FRACTION = 0.8
MIN_SECONDS = 5.0
# The highest bit error rate over the overlap that still counts as the same recording.
# Unrelated music sits near 0.5; re-encodes and trims of the same recording well below.
MAX_BER = 0.2
# Silence or a held drone repeats one item: an overlap needs this share of distinct items.
MIN_DISTINCT = 0.5

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class FingerprintUnavailable(RuntimeError):
    """Chromaprint (the `pyacoustid` package and the libchromaprint library) is not here."""


def chromaprint() -> ModuleType:
    """pyacoustid's ctypes binding to libchromaprint, or FingerprintUnavailable saying how to
    install what is missing."""
    try:
        import chromaprint as module
    except ImportError as exc:
        raise FingerprintUnavailable(
            f"Chromaprint is not available ({exc}); install the `pyacoustid` package and "
            "Debian's libchromaprint1 (apt-get install libchromaprint1)"
        ) from exc
    return module


def items(seconds: float) -> int:
    """Fingerprint items covering `seconds` of audio."""
    return int(round(seconds * ITEM_RATE))


def raw_fingerprint(audio: np.ndarray, max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """The raw Chromaprint fingerprint (uint32 items) of a protocol buffer's first
    `max_seconds` (None: all of it), fed as 16-bit PCM at the protocol rate."""
    module = chromaprint()
    if max_seconds is not None:
        audio = audio[: int(max_seconds * PROTOCOL_RATE)]
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    printer = module.Fingerprinter()
    try:
        printer.start(PROTOCOL_RATE, 1)
        printer.feed(pcm.tobytes())
        encoded = printer.finish()
        values, _ = module.decode_fingerprint(encoded)
    except module.FingerprintError as exc:
        raise ValueError("Chromaprint could not fingerprint the audio") from exc
    return np.asarray(values, dtype=np.int64).astype(np.uint32)


def bit_errors(a: np.ndarray, b: np.ndarray) -> int:
    """Differing bits between two equally long uint32 arrays."""
    return int(_POPCOUNT[np.bitwise_xor(a, b).view(np.uint8)].sum(dtype=np.int64))


def min_overlap(n_query: int, n_reference: int) -> int:
    """Items two fingerprints must share for a match (see MIN_OVERLAP_SECONDS)."""
    short = int(SHORT_FRACTION * min(n_query, n_reference))
    return max(items(MIN_SECONDS), min(items(MIN_OVERLAP_SECONDS), short))


@dataclass(frozen=True)
class Alignment:
    """Query item i lines up with reference item i + offset over `overlap` items."""

    offset: int
    overlap: int
    ber: float

    @property
    def matches(self) -> bool:
        return self.ber <= MAX_BER


def align(query: np.ndarray, reference: np.ndarray, offsets: list[int]) -> Alignment | None:
    """The lowest-BER alignment among `offsets` whose overlap is long enough and not silence
    (see MIN_DISTINCT); None when no offset qualifies."""
    need = min_overlap(len(query), len(reference))
    best: Alignment | None = None
    for offset in offsets:
        q0, r0 = max(0, -offset), max(0, offset)
        n = min(len(query) - q0, len(reference) - r0)
        if n < need:
            continue
        mine = query[q0 : q0 + n]
        ber = bit_errors(mine, reference[r0 : r0 + n]) / (32.0 * n)
        if (best is None or ber < best.ber) and len(np.unique(mine)) >= MIN_DISTINCT * n:
            best = Alignment(offset, n, ber)
    return best
