"""ArtifactBench's published taxonomy: its 28 sources, the hard ones, and the paper's groups.

Facts from the ArtifactNet paper (Tables VII-IX): 22 AI generators in four groups, 6 real
sources in three groups; the Stable Audio subsets are judged at TPR >= 0.60.
"""

from __future__ import annotations

# The splits of a v2 manifest (`--protocol-split`).
PROTOCOL_SPLITS = ("calibration", "validation", "test")

AI_GROUPS: dict[str, tuple[str, ...]] = {
    "SONICS": (
        "sonics_chirp-v2-xxl-alpha",
        "sonics_chirp-v3",
        "sonics_chirp-v3.5",
        "sonics_udio-120s",
        "sonics_udio-30s",
    ),
    "MoM": ("mom_diffrythm", "mom_riffusion", "mom_udio", "mom_yue"),
    "AIME": (
        "aime_musicgen_small",
        "aime_musicgen_medium",
        "aime_musicgen_large",
        "aime_riffusion",
        "aime_stable_audio_v1",
        "aime_stable_audio_v2",
        "aime_suno_v3",
        "aime_suno_v35",
        "aime_udio",
    ),
    "latest CDN": ("suno_cdn_latest", "suno_extra", "udio_cdn_latest", "udio_extra"),
}
REAL_GROUPS: dict[str, tuple[str, ...]] = {
    "SONICS real": ("sonics_real",),
    "MoM real": ("mom_real", "mom_real_wav", "mom_extra_real"),
    "hard negatives": ("fma_hardneg", "youtube_hardneg"),
}
AI_SUBSETS: tuple[str, ...] = tuple(s for group in AI_GROUPS.values() for s in group)
REAL_SUBSETS: tuple[str, ...] = tuple(s for group in REAL_GROUPS.values() for s in group)
HARD_SUBSETS: frozenset[str] = frozenset({"aime_stable_audio_v1", "aime_stable_audio_v2"})


def group_of(subset: str) -> str | None:
    """The paper's group of an ArtifactBench subset, or None for a subset outside the taxonomy."""
    for groups in (AI_GROUPS, REAL_GROUPS):
        for name, members in groups.items():
            if subset in members:
                return name
    return None
