"""Channel ablations of the open ArtifactNet (the paper's Appendix B, channel rows).

A channel is ablated by replacing it with its training-set mean (per mel bin, the same value in
every frame) right before the classifier: the classifier then sees a typical value with no
information, where zeros would be an input it never saw. The residual extractor and the other
six channels are untouched, so the drop in F1 / AUC is what that one channel carries.

The `bounded-mask` row of Appendix B compares two models trained the same way, one with the
mask in [0, 0.5] and one in [0, 1] (`compare_mask_bound`): besides F1 / AUC / TPR / FPR it
reports how much of the input each mask keeps, the mean mask value and the residual energy as a
fraction of the input energy, which is what the bound is there to limit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from artifactbench.analysis.metrics import binary_metrics
from artifactbench.detectors.artifactnet_onnx import aggregate
from artifactbench.detectors.artifactnet_open.detector import read_weights
from artifactbench.detectors.artifactnet_open.features import CHANNELS
from artifactbench.detectors.artifactnet_open.model import ArtifactNetOpen
from artifactbench.detectors.base import Scored
from artifactbench.util import sha256_file

# Every forensic channel can be ablated, in the order the model stacks them.
ABLATIONS: tuple[str, ...] = CHANNELS
BASELINE = "baseline"
THRESHOLD = 0.5
METRICS = ("f1", "auc", "tpr", "fpr")
BOUND_METRICS = ("mask_mean", "residual_energy_fraction", *METRICS)
NOT_INCLUDED = "bounded-mask (a second model; run `artifactbench ablate bounded-mask`)"
BOUNDED = "bounded mask, m = 0.5 sigmoid(z)"
UNBOUNDED = "unbounded mask, m = sigmoid(z)"
# What must agree between the two models of the bounded-mask comparison, beside the config:
# recorded by every trainer, and (teacher, its files) compared as recorded.
SAME_TRAINING = (
    "bench_fingerprint",
    "train_track_ids_sha256",
    "seed",
    "small",
    "schedule",
    "phases",
)
SAME_TEACHER = ("teacher", "teacher_files")


def channel_index(name: str) -> int:
    """Index of a channel by name; a ValueError lists the valid names."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown channel {name!r}; choose from: all, {', '.join(ABLATIONS)}")
    return ABLATIONS.index(name)


class ChannelAblation(nn.Module):
    """The model with one channel (or none) set to its training mean before the classifier."""

    def __init__(self, model: ArtifactNetOpen, channel_means: Tensor, channel: str | None) -> None:
        super().__init__()
        self.model = model
        self.channel = None if channel is None else channel_index(channel)
        self.register_buffer("channel_means", channel_means.to(torch.float32))

    def features(self, audio: Tensor) -> Tensor:
        """The seven channels [batch, 7, n_mels, frames] as the trained model computes them."""
        _, residual = self.model.unet(self.model.stft(audio))
        return self.model.features(residual)

    def replace(self, features: Tensor) -> Tensor:
        """The features with the ablated channel set to its mean in every frame."""
        if self.channel is None:
            return features
        out = features.clone()
        out[:, self.channel] = self.channel_means[self.channel][None, :, None]
        return out

    def classify(self, features: Tensor) -> Tensor:
        """P(AI) per row from (unablated) features; lets ablations share one feature pass."""
        return torch.sigmoid(self.model.classifier(self.replace(features)))

    def forward(self, audio: Tensor) -> Tensor:
        return self.classify(self.features(audio))


# Chunks per pass through the U-Net: each holds about 90 MiB of intermediates on the torch graph,
# so a batch at once held gigabytes; pieces give the same values row for row.
ROWS_PER_PASS = 1


def _in_pieces(chunks: Tensor, run: Callable[[Tensor], Any]) -> list[Any]:
    """`run` over `chunks` ROWS_PER_PASS rows at a time, results in row order."""
    return [run(piece) for piece in chunks.split(ROWS_PER_PASS)]


def _selected(channel_or_all: str) -> list[str]:
    if channel_or_all == "all":
        return list(ABLATIONS)
    channel_index(channel_or_all)
    return [channel_or_all]


def _batches(
    views_and_labels: Iterable[tuple[np.ndarray, str]], size: int
) -> Iterator[list[tuple[np.ndarray, str]]]:
    batch: list[tuple[np.ndarray, str]] = []
    for item in views_and_labels:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chunk_batches(
    views_and_labels: Iterable[tuple[np.ndarray, str]], size: int, width: int
) -> Iterator[tuple[list[tuple[np.ndarray, str]], Tensor, np.ndarray]]:
    """(tracks, all their chunks as one tensor, split points between tracks) per batch."""
    for batch in _batches(views_and_labels, size):
        for view, _ in batch:
            if view.ndim != 2 or view.shape[1] != width or view.shape[0] == 0:
                raise ValueError(f"expected chunks [n, {width}], got {list(view.shape)}")
        chunks = np.concatenate([view for view, _ in batch]).astype(np.float32)
        yield batch, torch.from_numpy(chunks), np.cumsum([len(view) for view, _ in batch])[:-1]


def _song_prob(chunk_probs: np.ndarray) -> float:
    """The published adapter's verdict (median over finite chunk P(AI)) as a bare number; NaN
    when it fails the track."""
    verdict = aggregate(chunk_probs)
    return verdict.prob if isinstance(verdict, Scored) else verdict


def _metrics(labels: list[str], probs: np.ndarray) -> dict[str, float | None]:
    """The four Appendix B numbers; one that is undefined on these tracks is None."""
    m = binary_metrics(labels, probs, THRESHOLD, resamples=0)
    got = {"f1": m["f1"], "auc": m["auc"], "tpr": m["recall"], "fpr": m["fpr"]}
    return {k: float(v) if v is not None and np.isfinite(v) else None for k, v in got.items()}


def _difference(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def ablate(
    weights: Path,
    channel_or_all: str,
    views_and_labels: Iterable[tuple[np.ndarray, str]],
    batch_size: int = 8,
) -> dict[str, Any]:
    """Baseline and ablated F1 / AUC / TPR / FPR at threshold 0.5, with differences to baseline.

    `views_and_labels` yields ([n_chunks, 176400] chunk views, "ai" | "real") per track, as the
    runner decodes them for the ArtifactNet card; the song verdict is the median over its
    chunks. Each batch's features are computed once and shared by every ablation.
    """
    names = _selected(channel_or_all)
    model, means, meta = read_weights(Path(weights))
    variants = {BASELINE: ChannelAblation(model, means, None)}
    variants.update({name: ChannelAblation(model, means, name) for name in names})
    width = model.config.segment_samples
    probs: dict[str, list[float]] = {name: [] for name in variants}
    labels: list[str] = []
    failed = 0
    with torch.inference_mode():
        for batch, chunks, bounds in _chunk_batches(views_and_labels, batch_size, width):
            feats = torch.cat(_in_pieces(chunks, variants[BASELINE].features))
            per_variant = {
                name: np.split(v.classify(feats).numpy().astype(np.float64), bounds)
                for name, v in variants.items()
            }
            for i, (_, label) in enumerate(batch):
                song = {name: _song_prob(parts[i]) for name, parts in per_variant.items()}
                if not all(np.isfinite(p) for p in song.values()):
                    failed += 1
                    continue
                labels.append(label)
                for name, p in song.items():
                    probs[name].append(p)
    if not labels:
        raise ValueError("no track could be scored; nothing to ablate")
    table = {name: _metrics(labels, np.asarray(probs[name])) for name in variants}
    base = table[BASELINE]
    rows = [
        {"ablation": name, **got, **{f"delta_{k}": _difference(got[k], base[k]) for k in METRICS}}
        for name, got in table.items()
    ]
    return {
        "kind": "channels",
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "meta": meta,
        "ablations": names,
        "replacement": "training-set mean per mel bin, broadcast over frames",
        "threshold": THRESHOLD,
        "aggregation": "median of finite chunk P(AI)",
        "n_tracks": len(labels),
        "n_ai": sum(label == "ai" for label in labels),
        "n_real": sum(label != "ai" for label in labels),
        "n_failed": failed,
        "rows": rows,
        "not_included": [NOT_INCLUDED],
    }


def training_differences(bounded_meta: dict[str, Any], unbounded_meta: dict[str, Any]) -> list[str]:
    """The recorded training facts in which two weights files differ (empty: trained the same
    way). A fact missing from either file counts as a difference."""
    missing = [k for k in SAME_TRAINING if k not in bounded_meta or k not in unbounded_meta]
    return missing + [
        key
        for key in (*SAME_TRAINING, *SAME_TEACHER)
        if key not in missing and bounded_meta.get(key) != unbounded_meta.get(key)
    ]


def _check_pair(
    bounded: ArtifactNetOpen,
    unbounded: ArtifactNetOpen,
    bounded_meta: dict[str, Any],
    unbounded_meta: dict[str, Any],
) -> None:
    if not bounded.config.bounded or unbounded.config.bounded:
        raise ValueError(
            "the first weights must have a bounded mask and the second an unbounded one "
            f"(got bounded={bounded.config.bounded}, {unbounded.config.bounded})"
        )
    other = dataclasses.replace(unbounded.config, bounded=True)
    if other != bounded.config:
        raise ValueError("the two models differ in more than the mask bound (config)")
    differ = training_differences(bounded_meta, unbounded_meta)
    if differ:
        raise ValueError(f"the two models were not trained the same way: {', '.join(differ)}")


def _mask_statistics(model: ArtifactNetOpen, chunks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per chunk: mean mask value, residual energy / input energy, and P(AI)."""
    mag = model.stft(chunks)
    mask, residual = model.unet(mag)
    energy = (mag * mag).sum(dim=(1, 2))
    fraction = (residual * residual).sum(dim=(1, 2)) / torch.clamp(energy, min=1e-12)
    probs = torch.sigmoid(model.classifier(model.features(residual)))
    return mask.mean(dim=(1, 2)), fraction, probs


def compare_mask_bound(
    bounded_weights: Path,
    unbounded_weights: Path,
    views_and_labels: Iterable[tuple[np.ndarray, str]],
    batch_size: int = 8,
) -> dict[str, Any]:
    """Appendix B's bounded-mask row: the bounded model against its unbounded twin.

    Refuses a pair that was not trained the same way (same bench, train tracks, seed, schedule,
    phases, teacher and config but for the bound). Mask mean and energy fraction are averaged
    over every chunk scored; F1 / AUC / TPR / FPR use the median-of-chunks song verdict.
    """
    models = {}
    metas = {}
    for name, path in ((BOUNDED, bounded_weights), (UNBOUNDED, unbounded_weights)):
        models[name], _, metas[name] = read_weights(Path(path))
    _check_pair(models[BOUNDED], models[UNBOUNDED], metas[BOUNDED], metas[UNBOUNDED])
    width = models[BOUNDED].config.segment_samples
    stats: dict[str, dict[str, list[float]]] = {
        name: {"mask": [], "fraction": [], "probs": []} for name in models
    }
    labels: list[str] = []
    failed = 0
    with torch.inference_mode():
        for batch, chunks, bounds in _chunk_batches(views_and_labels, batch_size, width):
            per_model = {}
            for name, model in models.items():
                parts = _in_pieces(chunks, lambda piece, m=model: _mask_statistics(m, piece))
                mask, fraction, probs = (torch.cat(column) for column in zip(*parts, strict=True))
                stats[name]["mask"] += mask.tolist()
                stats[name]["fraction"] += fraction.tolist()
                per_model[name] = np.split(probs.numpy().astype(np.float64), bounds)
            for i, (_, label) in enumerate(batch):
                song = {name: _song_prob(parts[i]) for name, parts in per_model.items()}
                if not all(np.isfinite(p) for p in song.values()):
                    failed += 1
                    continue
                labels.append(label)
                for name, p in song.items():
                    stats[name]["probs"].append(p)
    if not labels:
        raise ValueError("no track could be scored; nothing to compare")
    rows = []
    for name in models:
        got = {
            "mask_mean": float(np.mean(stats[name]["mask"])),
            "residual_energy_fraction": float(np.mean(stats[name]["fraction"])),
            **_metrics(labels, np.asarray(stats[name]["probs"])),
        }
        rows.append({"ablation": name, **got})
    base = rows[0]
    for row in rows:
        for key in BOUND_METRICS:
            row[f"delta_{key}"] = _difference(row[key], base[key])
    return {
        "kind": "bounded-mask",
        "weights": {BOUNDED: str(bounded_weights), UNBOUNDED: str(unbounded_weights)},
        "weights_sha256": {
            BOUNDED: sha256_file(bounded_weights),
            UNBOUNDED: sha256_file(unbounded_weights),
        },
        "meta": metas,
        "ablations": ["bounded-mask"],
        "threshold": THRESHOLD,
        "aggregation": "median of finite chunk P(AI)",
        "mask_statistics": "mean over scored chunks of each chunk's mean mask value and of its "
        "residual energy sum(r^2) / input energy sum(|X|^2)",
        "n_tracks": len(labels),
        "n_ai": sum(label == "ai" for label in labels),
        "n_real": sum(label != "ai" for label in labels),
        "n_failed": failed,
        "rows": rows,
    }


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def render_markdown(result: dict[str, Any]) -> str:
    """The ablation table (Appendix B's channel rows when every channel was ablated)."""
    if result["kind"] == "bounded-mask":
        return _render_bound(result)
    title = (
        "Appendix B: channel ablations"
        if result["ablations"] == list(ABLATIONS)
        else f"Channel ablation: {', '.join(result['ablations'])}"
    )
    lines = [
        f"## {title}",
        "",
        f"{result['n_tracks']} tracks ({result['n_ai']} AI, {result['n_real']} real, "
        f"{result['n_failed']} failed), threshold {result['threshold']}, song verdict "
        f"{result['aggregation']}; an ablated channel is replaced by {result['replacement']}.",
        "",
        "| ablation | F1 | ΔF1 | AUC | ΔAUC | TPR | ΔTPR | FPR | ΔFPR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [row["ablation"]]
        for key in METRICS:
            cells += [_fmt(row[key]), _fmt(row[f"delta_{key}"], signed=True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Not included: " + "; ".join(result["not_included"]) + "."]
    return "\n".join(lines) + "\n"


def _render_bound(result: dict[str, Any]) -> str:
    lines = [
        "## Appendix B: bounded mask",
        "",
        f"{result['n_tracks']} tracks ({result['n_ai']} AI, {result['n_real']} real, "
        f"{result['n_failed']} failed), threshold {result['threshold']}, song verdict "
        f"{result['aggregation']}; two models trained the same way but for the mask bound. "
        f"Mask statistics: {result['mask_statistics']}.",
        "",
        "| model | mean mask | residual energy / input | F1 | ΔF1 | AUC | ΔAUC | TPR | FPR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [
            row["ablation"], _fmt(row["mask_mean"]), _fmt(row["residual_energy_fraction"]),
            _fmt(row["f1"]), _fmt(row["delta_f1"], signed=True),
            _fmt(row["auc"]), _fmt(row["delta_auc"], signed=True),
            _fmt(row["tpr"]), _fmt(row["fpr"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    """Non-finite floats (e.g. an undefined AUC in the weights' meta) as null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def render_json(result: dict[str, Any]) -> str:
    """The full result, NaN-free (missing values are null) so any JSON reader accepts it."""
    return json.dumps(_json_safe(result), indent=2, sort_keys=True, allow_nan=False) + "\n"
