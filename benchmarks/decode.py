"""Cost of the decode protocol next to a bare PyAV decode, on real-length music.

    python benchmarks/decode.py [--runs 5] [--clock wall|cpu] [--save-hashes F] [--check-hashes F]

The source is a 74 s Vorbis track from Debian's `wesnoth-1.16-music` (installed with apt-get when
missing); from it the benchmark encodes, once, into a cache folder: MP3, FLAC (16 and 24 bit), WAV
(16 bit and float), Opus, AAC and Vorbis, at 44.1 and 48 kHz, stereo and mono. For each file it
prints the best of `--runs` of a raw decode (open, decode every frame of the first audio stream to
an ndarray, nothing else) and of `decode_audio(path)`, their ratio, and the sha256 of the protocol
buffer. `--save-hashes` writes those hashes; `--check-hashes` compares against such a file, so a
change to the decoder can show that every output keeps its bits (it exits non-zero otherwise).
On 48 kHz files the protocol's time includes the soxr resampling to 44.1 kHz.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

PACKAGE = "wesnoth-1.16-music"
DEFAULT_SOURCE = Path("/usr/share/games/wesnoth/1.16/data/core/music/battle-epic.ogg")

# name -> (format, rate, channels); "source" is the Debian file itself.
CORPUS: dict[str, tuple[str, int, int]] = {
    "vorbis-44k-stereo.ogg": ("source", 44100, 2),
    "vorbis-48k-stereo.ogg": ("vorbis", 48000, 2),
    "mp3-44k-stereo.mp3": ("mp3", 44100, 2),
    "mp3-48k-stereo.mp3": ("mp3", 48000, 2),
    "mp3-44k-mono.mp3": ("mp3", 44100, 1),
    "flac-44k-stereo.flac": ("flac", 44100, 2),
    "flac-48k-stereo.flac": ("flac", 48000, 2),
    "flac24-44k-stereo.flac": ("flac24", 44100, 2),
    "wav-44k-stereo.wav": ("wav", 44100, 2),
    "wav-48k-stereo.wav": ("wav", 48000, 2),
    "wav-44k-mono.wav": ("wav", 44100, 1),
    "wavf32-44k-stereo.wav": ("wavf32", 44100, 2),
    "opus-48k-stereo.opus": ("opus", 48000, 2),
    "aac-44k-stereo.m4a": ("m4a", 44100, 2),
}


def ensure_source(source: Path) -> Path:
    """The Debian music file, installing its package when it is the default and missing."""
    if source.exists():
        return source
    if source != DEFAULT_SOURCE:
        sys.exit(f"source {source} does not exist")
    print(f"installing {PACKAGE} for {source.name} ...", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-qq", PACKAGE]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    return source


def decode_stereo(path: Path) -> tuple[np.ndarray, int]:
    """The source as float32 [2, samples] at its own rate, for re-encoding."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        to_fltp = av.AudioResampler(format="fltp", layout="stereo", rate=stream.rate)
        blocks = [
            out.to_ndarray()
            for frame in container.decode(stream)
            for out in to_fltp.resample(frame)
        ]
        return np.concatenate(blocks, axis=1), stream.rate


def build_corpus(source: Path, work: Path) -> dict[str, Path]:
    """Encode the source into every corpus file not already in `work`."""
    import soundfile as sf
    import soxr

    from artifactbench.audio.encode import encode_audio

    work.mkdir(parents=True, exist_ok=True)
    paths = {name: work / name for name in CORPUS}
    paths["vorbis-44k-stereo.ogg"] = source
    missing = [name for name, path in paths.items() if not path.exists()]
    if not missing:
        return paths
    stereo, src_rate = decode_stereo(source)
    by_rate = {src_rate: stereo}
    for name in missing:
        fmt, rate, channels = CORPUS[name]
        print(f"encoding {name} ...", file=sys.stderr)
        if rate not in by_rate:
            by_rate[rate] = np.ascontiguousarray(soxr.resample(stereo.T, src_rate, rate, "HQ").T)
        audio = by_rate[rate] if channels == 2 else by_rate[rate].mean(axis=0)
        audio = np.clip(audio, -1.0, 1.0)
        tmp = paths[name].with_suffix(".part")
        if fmt in ("flac24", "wavf32"):
            subtype, container = ("PCM_24", "FLAC") if fmt == "flac24" else ("FLOAT", "WAV")
            sf.write(tmp, audio.T, rate, subtype=subtype, format=container)
        else:
            tmp.write_bytes(encode_audio(audio, rate, fmt))
        tmp.rename(paths[name])
    return paths


def raw_decode(path: Path) -> list[np.ndarray]:
    """The floor: PyAV's decode of every frame to an ndarray, nothing else."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [frame.to_ndarray() for frame in container.decode(stream)]


def best_of(runs: int, clock: Callable[[], float], *fns: Callable[[], object]) -> list[float]:
    """Best time of each function, interleaved run by run so load drifts hit all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = clock()
            fn()
            best[i] = min(best[i], clock() - start)
    return best


def describe(path: Path) -> tuple[str, int, int, str]:
    with av.open(str(path)) as container:
        ctx = container.streams.audio[0].codec_context
        return ctx.name, ctx.sample_rate, ctx.channels, ctx.format.name


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--work", type=Path, help="corpus folder (default: the cache folder)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time, steadier on a machine shared with other work",
    )
    parser.add_argument("--only", nargs="*", help="corpus file names to run (default: all)")
    parser.add_argument("--save-hashes", type=Path, help="write output sha256s to this JSON")
    parser.add_argument("--check-hashes", type=Path, help="compare output sha256s to this JSON")
    args = parser.parse_args()

    from artifactbench.audio.decode import PROTOCOL_RATE, decode_audio
    from artifactbench.paths import cache_dir

    source = ensure_source(args.source)
    paths = build_corpus(source, args.work or cache_dir() / "decode-bench")
    names = args.only or list(CORPUS)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    expected = json.loads(args.check_hashes.read_text()) if args.check_hashes else {}
    hashes: dict[str, dict[str, str]] = {}
    header = "| file | codec | fmt | rate | ch | seconds | raw s | protocol s | ratio | sha256 |"
    if expected:
        header += " same bits |"
    print(f"best of {args.runs} runs, {args.clock} clock; seconds: length of the decoded buffer\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    mismatches = 0
    for name in names:
        path = paths[name]
        codec, rate, channels, fmt = describe(path)
        raw_s, protocol_s = best_of(
            args.runs, clock, lambda p=path: raw_decode(p), lambda p=path: decode_audio(p)
        )
        output = decode_audio(path)
        seconds = len(output) / PROTOCOL_RATE
        digest = hashlib.sha256(output.tobytes()).hexdigest()
        hashes[name] = {"file_sha256": sha256_file(path), "output_sha256": digest}
        row = (
            f"| {name} | {codec} | {fmt} | {rate} | {channels} | {seconds:.1f} | {raw_s:.3f} "
            f"| {protocol_s:.3f} | {protocol_s / raw_s:.2f}x | {digest[:12]} |"
        )
        if expected:
            want = expected.get(name)
            if want is None:
                verdict = "no reference"
            elif want["file_sha256"] != hashes[name]["file_sha256"]:
                verdict = "input differs"
            else:
                verdict = "yes" if want["output_sha256"] == digest else "NO"
            mismatches += verdict != "yes"
            row += f" {verdict} |"
        print(row, flush=True)
    if args.save_hashes:
        args.save_hashes.write_text(json.dumps(hashes, indent=2) + "\n")
    if expected and mismatches:
        sys.exit(f"{mismatches} file(s) without a bit-identical reference match")


if __name__ == "__main__":
    main()
