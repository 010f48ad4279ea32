"""Which audited tracks a reference track may share audio with: an inverted index of
fingerprint items.

Only the audited bench is indexed; the reference bench (usually the larger, e.g. a training
set) streams through it one track at a time, so memory is a few hundred items per audited
track however large the reference is. A candidate is an audited track with which the reference
shares at least MIN_VOTES item keys at one alignment; `fingerprint.align` then verifies it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The key of an item is its top 20 bits: exact 32-bit items rarely survive a re-encode whole,
# 20 bits often enough to leave several hits per matching track.
KEY_SHIFT = 12
MIN_VOTES = 2
# Alignments tried per candidate, most votes first; each is tried one item either side too.
OFFSETS_PER_CANDIDATE = 3
# A key present in more audited tracks than this (and than STOP_FRACTION of them) carries no
# identity (near-silence, held chords) and is left out of the index.
STOP_TRACKS = 10
STOP_FRACTION = 0.02


class QueryIndex:
    """Sorted item keys of every audited fingerprint, each with its track and position."""

    def __init__(self, fingerprints: Sequence[np.ndarray | None]) -> None:
        parts = [(i, fp) for i, fp in enumerate(fingerprints) if fp is not None and len(fp)]
        if not parts:
            self.keys = np.zeros(0, dtype=np.uint32)
            self.tracks = np.zeros(0, dtype=np.int32)
            self.positions = np.zeros(0, dtype=np.int32)
            return
        keys = np.concatenate([fp >> KEY_SHIFT for _, fp in parts]).astype(np.uint32)
        tracks = np.concatenate([np.full(len(fp), i, dtype=np.int32) for i, fp in parts])
        positions = np.concatenate([np.arange(len(fp), dtype=np.int32) for _, fp in parts])
        keep = ~np.isin(keys, self._stop_keys(keys, tracks, len(parts)))
        order = np.argsort(keys[keep], kind="stable")
        self.keys = keys[keep][order]
        self.tracks = tracks[keep][order]
        self.positions = positions[keep][order]

    @staticmethod
    def _stop_keys(keys: np.ndarray, tracks: np.ndarray, n_tracks: int) -> np.ndarray:
        pairs = np.unique((keys.astype(np.int64) << 32) | tracks.astype(np.int64))
        per_key, count = np.unique(pairs >> 32, return_counts=True)
        limit = max(STOP_TRACKS, STOP_FRACTION * n_tracks)
        return per_key[count > limit].astype(np.uint32)

    def candidates(self, reference: np.ndarray) -> dict[int, list[int]]:
        """Audited track -> the offsets to try (reference item = query item + offset), for
        every track sharing MIN_VOTES keys with `reference` at one offset."""
        if not len(self.keys) or not len(reference):
            return {}
        wanted = (reference >> KEY_SHIFT).astype(np.uint32)
        lo = np.searchsorted(self.keys, wanted, side="left")
        hi = np.searchsorted(self.keys, wanted, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return {}
        firsts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        hits = firsts + np.arange(total)
        ref_pos = np.repeat(np.arange(len(reference), dtype=np.int64), counts)
        offsets = ref_pos - self.positions[hits]
        tracks = self.tracks[hits].astype(np.int64)
        span = int(len(reference) + self.positions.max() + 1)
        votes, count = np.unique(tracks * 2 * span + offsets + span, return_counts=True)
        strong = count >= MIN_VOTES
        found: dict[int, list[tuple[int, int]]] = {}
        for code, n in zip(votes[strong].tolist(), count[strong].tolist(), strict=True):
            track, shifted = divmod(code, 2 * span)
            found.setdefault(track, []).append((n, shifted - span))
        out: dict[int, list[int]] = {}
        for track, ranked in found.items():
            best = [offset for _, offset in sorted(ranked, key=lambda v: (-v[0], v[1]))]
            tries = []
            for offset in best[:OFFSETS_PER_CANDIDATE]:
                tries += [o for o in (offset, offset - 1, offset + 1) if o not in tries]
            out[track] = tries
        return out
