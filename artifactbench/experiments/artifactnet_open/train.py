"""Train the open ArtifactNet on a bench's train split, in the paper's three phases.

1. Distillation: the U-Net residual learns the shape of a teacher residual (L1 + multi-resolution
   magnitude loss). The paper's teacher is Demucs v4: |STFT(mixture - sum of its stems)|, used
   when its weights are on local disk (`separation.py`). Otherwise the teacher is the HPSS
   residual |X| * (1 - H_mask). Which one was used is recorded (`teacher` in the weights' meta).
2. Steering: the CNN learns on frozen residuals, then the U-Net is tuned through the frozen CNN.
3. Codec-aware tuning: every segment as WAV, MP3, AAC and Opus (128 kbps) in one batch.

Each phase is seeded and checkpointed (`phaseN.pt`), so an interrupted run resumes where it
stopped and reproduces the weights of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from artifactbench.analysis.metrics import binary_metrics
from artifactbench.audio.decode import PROTOCOL_RATE, ViewSpec
from artifactbench.audio.pool import decode_stream
from artifactbench.audio.transforms import Codec
from artifactbench.benches.base import Bench, Track
from artifactbench.detectors.artifactnet_open.features import hpss_residual
from artifactbench.detectors.artifactnet_open.model import ArtifactNetConfig, ArtifactNetOpen
from artifactbench.experiments.artifactnet_open import TEACHERS
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.util import write_atomic

if TYPE_CHECKING:
    from artifactbench.audio.separation import Separator

WEIGHTS_FILE = "artifactnet_open.pt"
# Phase 3 sees every segment through these round trips (transforms.CODECS) beside the WAV.
CODEC_VERSIONS = ("mp3-128", "aac-128", "opus-128")
TEACHER_NOTES = {
    "demucs": "phase 1 distils the Demucs residual, mixture minus the sum of its stems",
    "hpss": "phase 1 distils the HPSS residual |X| (1 - harmonic mask), not the paper's Demucs",
}
DEMO_NOTE = (
    "A model trained on the synthetic demo bench has learned the demo's toy artifacts only: "
    "its scores mean nothing on real music."
)


@dataclass(frozen=True)
class Schedule:
    """How much of each phase to run; the small defaults fit the demo bench on 2 CPU cores.

    A `*_segments` cap keeps the first N segments of a seeded shuffle for that stage (None: all).
    """

    segments_per_track: int = 3
    batch: int = 8
    lr: float = 1e-3
    distill: int = 1
    classifier: int = 12
    steer: int = 1
    codec: int = 1
    distill_segments: int | None = 96
    steer_segments: int | None = 96
    codec_segments: int | None = 48

    def with_epochs(self, epochs: dict[str, int] | None) -> Schedule:
        """The schedule with some epoch counts replaced: keys distill, classifier, steer, codec."""
        if not epochs:
            return self
        unknown = set(epochs) - {"distill", "classifier", "steer", "codec"}
        if unknown:
            raise ValueError(f"unknown epoch keys {sorted(unknown)}")
        return dataclasses.replace(self, **{k: int(v) for k, v in epochs.items()})


def multi_resolution_loss(
    pred: Tensor, target: Tensor, scales: Sequence[int] = (1, 2, 4)
) -> Tensor:
    """Spectral convergence + log-magnitude L1 of magnitudes pooled at several T-F resolutions.

    Pooling the magnitude grid stands in for re-running the STFT at coarser sizes: cheap, and it
    still weighs both fine detail and broad spectral shape.
    """
    total = pred.new_zeros(())
    for s in scales:
        p = nn.functional.avg_pool2d(pred.unsqueeze(1), s) if s > 1 else pred.unsqueeze(1)
        t = nn.functional.avg_pool2d(target.unsqueeze(1), s) if s > 1 else target.unsqueeze(1)
        convergence = torch.linalg.vector_norm(t - p) / (torch.linalg.vector_norm(t) + 1e-8)
        log_mag = (torch.log(p + 1e-6) - torch.log(t + 1e-6)).abs().mean()
        total = total + convergence + log_mag
    return total / len(scales)


def distillation_loss(residual: Tensor, teacher: Tensor) -> Tensor:
    """Phase 1: L1 + multi-resolution magnitude loss against the teacher residual."""
    return (residual - teacher).abs().mean() + multi_resolution_loss(residual, teacher)


def demucs_teacher(separator: Separator, stft: nn.Module, audio: Tensor) -> Tensor:
    """The paper's teacher: |STFT| of what Demucs leaves out, mixture minus the sum of stems."""
    return stft(separator.residual(audio).to(audio.dtype))


def _teacher(choice: str, demucs_dir: Path | None) -> Separator | None:
    """The Demucs separator when chosen (or available under "auto"); None means HPSS."""
    from artifactbench.audio.separation import DemucsUnavailable, demucs_available, load_separator

    if choice not in TEACHERS:
        raise ValueError(f"unknown teacher {choice!r}; choose from: {', '.join(TEACHERS)}")
    if choice == "hpss" or (choice == "auto" and demucs_available(demucs_dir) is not None):
        return None
    try:
        return load_separator(demucs_dir)
    except DemucsUnavailable as exc:
        raise ValueError(f"teacher demucs: {exc}") from exc


def _teacher_name(separator: Separator | None) -> str:
    return "hpss" if separator is None else f"demucs:{separator.name}"


def train(
    bench: Bench,
    out_dir: Path,
    *,
    small: bool,
    seed: int,
    phases: Sequence[int] = (1, 2, 3),
    epochs: dict[str, int] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    schedule: Schedule | None = None,
    tracks: Sequence[Track] | None = None,
    bars: ProgressHook | None = None,
    bounded: bool = True,
    teacher: str = "auto",
    demucs_dir: Path | None = None,
) -> Path:
    """Train on the bench's train tracks (or `tracks`, which must all be train) and return the
    weights file; phases whose checkpoint exists in `out_dir` are loaded, not rerun.

    `progress` gets one line per phase; `bars` opens a progress bar per stage (decode, each
    phase's optimiser steps, codec encoding, evaluation). `teacher` "auto" distils Demucs when
    its weights are in `demucs_dir` (see `separation.demucs_dir`) and HPSS otherwise."""
    chosen = list(tracks) if tracks is not None else bench.select("train")
    leaked = [t.track_id for t in chosen if t.bench_origin != "train"]
    if leaked:
        raise ValueError(
            f"training takes train tracks only; {len(leaked)} are not (e.g. {leaked[0]!r})"
        )
    if not chosen:
        raise ValueError(f"bench {bench.name!r} has no train tracks")
    bad_phases = set(phases) - {1, 2, 3}
    if bad_phases:
        raise ValueError(f"phases must be among 1, 2, 3, got {sorted(bad_phases)}")
    phases = sorted(set(phases))
    separator = _teacher(teacher, demucs_dir) if 1 in phases else None
    teacher_name = _teacher_name(separator) if 1 in phases else None
    plan = (schedule or Schedule()).with_epochs(epochs)
    say = progress or (lambda _msg: None)
    bar = bars or no_progress
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 8)))

    config = ArtifactNetConfig.small() if small else ArtifactNetConfig()
    config = dataclasses.replace(config, bounded=bounded)
    if separator is not None and separator.samplerate != config.sample_rate:
        raise ValueError(
            f"teacher demucs runs at {separator.samplerate} Hz, the model at {config.sample_rate}"
        )
    ids = sorted(t.track_id for t in chosen)
    ids_sha = ids_sha256(ids)
    signature = json.dumps(
        [dataclasses.asdict(config), dataclasses.asdict(plan), ids_sha, seed, teacher_name],
        sort_keys=True,
    )

    say(f"decoding {len(chosen)} train tracks; phase 1 teacher: {teacher_name or 'none'}")
    audio, labels = _segments(chosen, config, plan.segments_per_track, workers, bar)
    log = _LossLog(out_dir / "loss_log.jsonl", bar)
    torch.manual_seed(seed)
    model = ArtifactNetOpen(config)
    done: list[int] = []
    resumed: list[int] = []
    for phase in phases:
        ckpt = out_dir / f"phase{phase}.pt"
        key = f"{signature}|{done + [phase]}"
        if ckpt.is_file():
            saved = torch.load(ckpt, weights_only=True)
            if saved["key"] != key:
                raise ValueError(f"{ckpt} was written by another run; remove it or use another dir")
            model.load_state_dict(saved["state_dict"])
            resumed.append(phase)
            say(f"phase {phase}: loaded {ckpt.name}")
        else:
            say(f"phase {phase}: training")
            torch.manual_seed(seed * 1000 + phase)
            gen = torch.Generator().manual_seed(seed * 1000 + phase)
            if phase == 1:
                _phase_distill(model, audio, plan, gen, log, separator)
            elif phase == 2:
                _phase_steer(model, audio, labels, plan, gen, log)
            else:
                _phase_codec(model, audio, labels, plan, gen, log, bar)
            _atomic_save({"key": key, "state_dict": model.state_dict()}, ckpt)
        done.append(phase)

    say("channel means and train metrics")
    model.eval()
    probs, channel_means = _evaluate(model, audio, plan.batch, bar)
    scores = binary_metrics(labels.numpy().astype(bool), probs, resamples=0)
    meta = {
        "bench": bench.name,
        "bench_fingerprint": bench.fingerprint,
        "train_track_ids_sha256": ids_sha,
        "train_track_ids": ids,
        "n_tracks": len(chosen),
        "n_segments": int(audio.shape[0]),
        "phases": done,
        "resumed_phases": resumed,
        "teacher": teacher_name,
        "teacher_note": TEACHER_NOTES[teacher_name.split(":")[0]] if teacher_name else None,
        "teacher_files": separator.files if separator is not None else None,
        "seed": seed,
        "small": small,
        "schedule": dataclasses.asdict(plan),
        "train_metrics": {"auc": scores["auc"], "accuracy": scores["accuracy"]},
    }
    weights = out_dir / WEIGHTS_FILE
    _atomic_save(
        {
            "config": _plain(dataclasses.asdict(config)),
            "state_dict": model.state_dict(),
            "channel_means": channel_means,
            "meta": meta,
        },
        weights,
    )
    card = {k: v for k, v in meta.items() if k != "resumed_phases"}
    card["weights"] = WEIGHTS_FILE
    card["note"] = DEMO_NOTE if bench.name == "demo" else "Trained on " + bench.name + "."
    card["demo_note"] = DEMO_NOTE
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return weights


def ids_sha256(sorted_ids: list[str]) -> str:
    """The fingerprint of a training set: sha256 of its sorted track ids, one per line."""
    return hashlib.sha256("\n".join(sorted_ids).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """Tuples as lists, so the file holds only what `weights_only` loading accepts everywhere."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


class _LossLog:
    """Appends one JSON line per optimiser step: {"phase", "stage", "epoch", "step", "loss"},
    and advances the progress bar of the stage it was opened for."""

    def __init__(self, path: Path, bar: ProgressHook) -> None:
        self.path = path
        self.bar = bar
        self.advance: Callable[[int], None] = lambda _n: None

    def stage(self, phase: int, stage: str, steps: int) -> None:
        """Open the bar of a stage that will take `steps` optimiser steps."""
        self.advance = self.bar(f"phase {phase} {stage}", steps)

    def write(self, phase: int, stage: str, epoch: int, step: int, loss: float) -> None:
        row = {"phase": phase, "stage": stage, "epoch": epoch, "step": step, "loss": loss}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.advance(1)


def _segments(
    tracks: list[Track], config: ArtifactNetConfig, per_track: int, workers: int, bar: ProgressHook
) -> tuple[Tensor, Tensor]:
    """All training segments [n, segment_samples] in bench order, and their labels (1 = AI)."""
    seconds = config.segment_samples / config.sample_rate
    spec = ViewSpec(rate=PROTOCOL_RATE, seconds=seconds, crop="chunks", n_chunks=per_track)
    views: dict[int, np.ndarray] = {}
    failed: list[str] = []
    advance = bar("decode train tracks", len(tracks))
    for item in decode_stream(list(enumerate(tracks)), [spec], workers):
        advance(1)
        if item.views is None:
            failed.append(f"{tracks[item.index].track_id} ({item.stage}: {item.error})")
        else:
            views[item.index] = item.views[0]
    if failed:
        raise ValueError(f"{len(failed)} train tracks failed to decode, e.g. {failed[0]}")
    order = sorted(views)
    audio = torch.from_numpy(np.concatenate([views[i] for i in order]).astype(np.float32))
    labels = torch.tensor([float(tracks[i].label == "ai") for i in order for _ in range(per_track)])
    return audio, labels


def _pick(n: int, cap: int | None, gen: torch.Generator) -> Tensor:
    """A seeded subset of segment indices, at most `cap` of them."""
    order = torch.randperm(n, generator=gen)
    return order if cap is None else order[:cap]


def _n_batches(n: int, size: int) -> int:
    return -(-n // size)


def _batches(index: Tensor, size: int, gen: torch.Generator) -> list[Tensor]:
    order = index[torch.randperm(len(index), generator=gen)]
    return list(order.split(size))


def _optimise(
    module: nn.Module,
    loss_of: Callable[[Tensor], Tensor],
    index: Tensor,
    n_epochs: int,
    plan: Schedule,
    gen: torch.Generator,
    log: _LossLog,
    phase: int,
    stage: str,
) -> None:
    """Adam on `module` for `n_epochs` seeded passes over `index` in batches, one logged step
    per batch: the loop every stage of every phase shares."""
    opt = torch.optim.Adam(module.parameters(), lr=plan.lr)
    log.stage(phase, stage, n_epochs * _n_batches(len(index), plan.batch))
    step = 0
    for epoch in range(n_epochs):
        for b in _batches(index, plan.batch, gen):
            loss = loss_of(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.write(phase, stage, epoch, step, loss.item())
            step += 1


def _phase_distill(
    model: ArtifactNetOpen,
    audio: Tensor,
    plan: Schedule,
    gen: torch.Generator,
    log: _LossLog,
    separator: Separator | None,
) -> None:
    chosen = _pick(len(audio), plan.distill_segments, gen)
    advance = log.bar("phase 1 teacher residuals", _n_batches(len(chosen), plan.batch))
    mags, teachers = [], []
    with torch.no_grad():
        for b in chosen.split(plan.batch):
            mags.append(model.stft(audio[b]))
            if separator is None:
                teachers.append(hpss_residual(mags[-1], model.config.hpss_kernel))
            else:
                teachers.append(demucs_teacher(separator, model.stft, audio[b]))
            advance(1)
    mags, teachers = torch.cat(mags), torch.cat(teachers)
    model.unet.train()

    def loss_of(b: Tensor) -> Tensor:
        return distillation_loss(model.unet(mags[b])[1], teachers[b])

    _optimise(model.unet, loss_of, torch.arange(len(chosen)), plan.distill, plan, gen, log,
              1, "distill")  # fmt: skip


def _phase_steer(
    model: ArtifactNetOpen,
    audio: Tensor,
    labels: Tensor,
    plan: Schedule,
    gen: torch.Generator,
    log: _LossLog,
) -> None:
    """CNN on frozen residuals first, then the U-Net through the frozen CNN: staged, as joint
    training collapses the U-Net into a pass-through."""
    model.unet.eval()
    advance = log.bar("phase 2 features of the train segments", _n_batches(len(audio), plan.batch))
    parts = []
    with torch.no_grad():
        for x in audio.split(plan.batch):
            parts.append(model.features(model.unet(model.stft(x))[1]))
            advance(1)
    feats = torch.cat(parts)
    model.classifier.train()
    bce = nn.BCEWithLogitsLoss()

    def loss_of(b: Tensor) -> Tensor:
        return bce(model.classifier(feats[b]), labels[b])

    _optimise(model.classifier, loss_of, torch.arange(len(audio)), plan.classifier, plan, gen,
              log, 2, "classifier")  # fmt: skip
    chosen = _pick(len(audio), plan.steer_segments, gen)
    _tune_unet(model, [audio], labels, chosen, plan.steer, plan, gen, log, 2, "steer")


def _phase_codec(
    model: ArtifactNetOpen,
    audio: Tensor,
    labels: Tensor,
    plan: Schedule,
    gen: torch.Generator,
    log: _LossLog,
    bar: ProgressHook,
) -> None:
    chosen = _pick(len(audio), plan.codec_segments, gen)
    advance = bar(f"phase 3 encode x{len(CODEC_VERSIONS)} codecs", len(chosen))
    codecs = [Codec(name) for name in CODEC_VERSIONS]
    versions = [audio] + [torch.zeros_like(audio) for _ in codecs]
    for i in chosen.tolist():
        for coded, codec in zip(versions[1:], codecs, strict=True):
            # Codecs draw no random numbers: seed and key do not matter.
            coded[i] = torch.from_numpy(codec.apply(audio[i].numpy(), PROTOCOL_RATE, 0, str(i)))
        advance(1)
    # One batch holds each of its segments in all four versions.
    per_batch = max(1, plan.batch // len(versions))
    tuned = dataclasses.replace(plan, batch=per_batch)
    _tune_unet(model, versions, labels, chosen, plan.codec, tuned, gen, log, 3, "codec")


def _tune_unet(
    model: ArtifactNetOpen,
    versions: list[Tensor],
    labels: Tensor,
    chosen: Tensor,
    n_epochs: int,
    plan: Schedule,
    gen: torch.Generator,
    log: _LossLog,
    phase: int,
    stage: str,
) -> None:
    """BCE through the differentiable features into the U-Net; the CNN stays frozen."""
    model.classifier.eval()
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    model.unet.train()
    bce = nn.BCEWithLogitsLoss()

    def loss_of(b: Tensor) -> Tensor:
        x = torch.cat([v[b] for v in versions])
        return bce(model.logits(x), labels[b].repeat(len(versions)))

    try:
        _optimise(model.unet, loss_of, chosen, n_epochs, plan, gen, log, phase, stage)
    finally:
        for p in model.classifier.parameters():
            p.requires_grad_(True)


@torch.no_grad()
def _evaluate(
    model: ArtifactNetOpen, audio: Tensor, batch: int, bar: ProgressHook
) -> tuple[np.ndarray, Tensor]:
    """P(AI) per segment and the seven channels' mean per mel bin over segments and frames."""
    probs = []
    total = torch.zeros(7, model.config.n_mels, dtype=torch.float64)
    frames = 0
    advance = bar("evaluate on train segments", _n_batches(len(audio), batch))
    for x in audio.split(batch):
        advance(1)
        _, residual = model.unet(model.stft(x))
        feats = model.features(residual)
        probs.append(torch.sigmoid(model.classifier(feats)))
        total += feats.double().sum(dim=(0, 3))
        frames += feats.shape[0] * feats.shape[3]
    return torch.cat(probs).numpy(), (total / frames).float()
