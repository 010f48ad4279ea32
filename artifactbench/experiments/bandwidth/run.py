"""Measure Table XI / Fig. 5 on a bench: the effective bandwidth of each track's residual.

`measure_bandwidth` decodes every selected track once to the protocol buffer (44.1 kHz mono
float32), runs the chosen residual model on it in this process, and takes f* (the 95% energy
point, see `bandwidth.py`). By default only the central `max_seconds` (60 s) of each track are
measured: the residual models cost time linear in the length (Demucs most of all), and the
centre skips intros and fade-outs whose near-silent frames would weigh as much as the body in the
per-frame mean. `max_seconds=None` measures the whole decoded buffer. Shorter tracks are taken
whole, never padded.

Every selected track gets one row. A track that cannot be read (stage `resolve`), decoded
(`decode`) or run through the residual model (`residual`) is a `failed` row with its reason; a
track whose residual is silent in every frame is a `silent` row with no bandwidth (counted as
skipped in the table). Only `measured` rows enter the means.

The run directory (`<out>/bandwidth-<bench>-<split>-<stamp>`) holds:

* `bandwidth.parquet`: one row per track (see `COLUMNS`);
* `bandwidth.json`: the `bandwidth_table` dict, the residual model's grid and provenance, the
  settings and the counts;
* `bandwidth.md`: Table XI as markdown with the confounders note;
* `bandwidth.png`: Fig. 5 (`plot_bandwidth`).
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from artifactbench import __version__
from artifactbench.audio.decode import DECODE_PROTOCOL, PROTOCOL_RATE, ViewSpec
from artifactbench.audio.pool import Decoded, decode_stream
from artifactbench.benches.base import Bench, Track
from artifactbench.experiments.bandwidth.measure import (
    FRACTION,
    RESIDUAL_MODELS,
    Energy,
    ResidualModel,
    bandwidth_table,
    plot_bandwidth,
    residual_model,
)
from artifactbench.progress import ProgressHook, no_progress
from artifactbench.runner import harness_versions, new_run_dir, select_tracks
from artifactbench.util import write_atomic

COLUMNS = (
    "track_id", "subset", "label", "generator", "bench_origin", "audio_sha256",
    "bandwidth_hz", "status", "stage", "error", "audio_seconds", "seconds",
)  # fmt: skip
_FLOATS = {"bandwidth_hz", "audio_seconds", "seconds"}
DEFAULT_MAX_SECONDS = 60.0

CONFOUNDERS = (
    "**Confounders.** The effective bandwidth measures where the residual's energy stops, "
    "not what made the track. A low-pass anywhere in the source chain lowers it whatever the "
    "origin: lossy encoding (MP3 and AAC encoders cut around 16 kHz at common bitrates), "
    "resampling to 32, 24 or 16 kHz by a generator's decoder or by any step of distribution, "
    "or an analogue transfer. Mastering (limiting, compression, EQ, exciters) reshapes the "
    "high band independently of whether the track is AI. The differences above are therefore "
    "descriptive of this bench's sources, not causal evidence of AI generation, and a detector "
    "that keyed on them would be detecting the chain, not the generator."
)


def view_spec(max_seconds: float | None) -> ViewSpec:
    """The protocol buffer whole, or its central `max_seconds` (short tracks whole, unpadded)."""
    if max_seconds is None:
        return ViewSpec(rate=PROTOCOL_RATE, seconds=None)
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds}")
    return ViewSpec(rate=PROTOCOL_RATE, seconds=float(max_seconds), crop="center", pad=False)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.splitlines()[0][:300]


def _row(track: Track, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "track_id": track.track_id,
        "subset": track.subset,
        "label": track.label,
        "generator": track.generator,
        "bench_origin": track.bench_origin,
    }
    return {name: fields.get(name, base.get(name)) for name in COLUMNS}


def _measure(
    track: Track, decoded: Decoded, model: ResidualModel, fraction: float, energy: Energy
) -> dict[str, Any]:
    """One track's row from its decode result: measured, silent, or failed with its stage."""
    sha = decoded.audio_sha256
    if decoded.views is None:
        return _row(
            track,
            audio_sha256=sha,
            status="failed",
            stage=decoded.stage,
            error=decoded.error,
            seconds=decoded.seconds,
        )
    audio = decoded.views[0]
    audio_seconds = audio.shape[-1] / PROTOCOL_RATE
    start = time.perf_counter()
    try:
        hz = model.bandwidth(audio, fraction, energy)
    except Exception as exc:  # noqa: BLE001 - a residual error costs that track only
        return _row(
            track,
            audio_sha256=sha,
            status="failed",
            stage="residual",
            error=_one_line(exc),
            audio_seconds=audio_seconds,
            seconds=decoded.seconds + time.perf_counter() - start,
        )
    seconds = decoded.seconds + time.perf_counter() - start
    if not math.isfinite(hz):
        return _row(
            track,
            audio_sha256=sha,
            status="silent",
            error="the residual is silent in every frame: no bandwidth",
            audio_seconds=audio_seconds,
            seconds=seconds,
        )
    return _row(
        track,
        audio_sha256=sha,
        bandwidth_hz=float(hz),
        status="measured",
        audio_seconds=audio_seconds,
        seconds=seconds,
    )


def _write_parquet(rows: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    fields = [(c, pa.float64() if c in _FLOATS else pa.string()) for c in COLUMNS]
    schema = pa.schema(fields, metadata={"artifactbench": json.dumps(meta, sort_keys=True)})
    table = pa.Table.from_pylist(rows, schema=schema)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _generators(tracks: list[Track]) -> dict[str, str]:
    """Subset -> its generator description(s), in bench order; several are joined by '; '."""
    seen: dict[str, list[str]] = {}
    for t in tracks:
        names = seen.setdefault(t.subset, [])
        if t.generator not in names:
            names.append(t.generator)
    return {s: "; ".join(g) for s, g in seen.items()}


def measure_bandwidth(
    bench: Bench,
    split: str,
    residual: str,
    weights: Path | None,
    *,
    workers: int,
    n_per_source: int | None,
    limit: int | None,
    seed: int,
    out: Path,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    progress: ProgressHook | None = None,
    device: str = "cpu",
    fraction: float = FRACTION,
    energy: Energy = "power",
) -> Path:
    """Measure every selected track's residual bandwidth and write a bandwidth run directory.

    Selection is the runner's: `bench.select(split)`, then `cohort(n_per_source, seed)`, then
    `limit_tracks(limit, seed)`. `workers` decode processes (0: decode here); the residual
    model runs in this process on `device`. `max_seconds` bounds the audio measured per track
    (its centre); None measures it whole. `fraction` and `energy` are f*'s definition (the
    paper's 95% of the power by default; see `bandwidth.effective_bandwidth`). Returns the new
    run directory.

    Raises ValueError for an unknown residual (listing RESIDUAL_MODELS), bad settings or an
    empty selection, and the residual model's own errors (`detectors.base.Unavailable`,
    `separation.DemucsUnavailable`) when it cannot load: all before any track is decoded and
    before the run directory exists.
    """
    if residual not in RESIDUAL_MODELS:
        raise ValueError(
            f"unknown residual model {residual!r}; choose from: {', '.join(RESIDUAL_MODELS)}"
        )
    spec = view_spec(max_seconds)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if energy not in ("power", "magnitude"):
        raise ValueError(f"energy must be 'power' or 'magnitude', got {energy!r}")
    selected, tracks = select_tracks(bench, split, n_per_source, limit, seed)
    if not tracks:
        raise ValueError(f"bench {bench.name!r} has no tracks in split {split!r}")
    model = residual_model(residual, weights, device=device)
    started = time.perf_counter()
    progress = progress or no_progress

    advance = progress(f"bandwidth ({residual})", len(tracks))
    by_index: dict[int, dict[str, Any]] = {}
    for decoded in decode_stream(list(enumerate(tracks)), [spec], workers):
        by_index[decoded.index] = _measure(tracks[decoded.index], decoded, model, fraction, energy)
        advance(1)
    rows = [by_index[i] for i in range(len(tracks))]

    table = bandwidth_table(
        (r["subset"], r["label"], r["bandwidth_hz"] if r["status"] == "measured" else math.nan)
        for r in rows
        if r["status"] != "failed"
    )
    counts = {
        status: sum(r["status"] == status for r in rows)
        for status in ("measured", "silent", "failed")
    }
    failures: dict[str, int] = {}
    for r in rows:
        if r["status"] == "failed":
            failures[r["stage"]] = failures.get(r["stage"], 0) + 1
    settings = {
        "bench": bench.name,
        "split": split,
        "residual": residual,
        "seed": seed,
        "n_per_source": n_per_source,
        "limit": {"requested": limit, "original": len(selected), "effective": len(tracks)},
        "max_seconds": max_seconds,
        "crop": "whole" if max_seconds is None else "center",
        "fraction": fraction,
        "energy": energy,
        "average": "frames",
        "rate": model.rate,
        "n_fft": model.n_fft,
        "hop": model.hop,
        "workers": workers,
        "device": device,
        "counts": counts,
        "failures_by_stage": failures,
        "generators": _generators(tracks),
    }

    with new_run_dir(Path(out), f"bandwidth-{bench.name}", split) as target:
        run_dir = target.work
        meta = {"bench": bench.name, "split": split, "residual": residual, "seed": seed}
        _write_parquet(rows, run_dir / "bandwidth.parquet", meta)
        record = {
            "table": table,
            "residual": {
                "name": model.name,
                "rate": model.rate,
                "n_fft": model.n_fft,
                "hop": model.hop,
                "weights": None if weights is None else str(weights),
                "provenance": model.provenance,
            },
            "settings": settings,
            "bench": {"name": bench.name, "fingerprint": bench.fingerprint, "source": bench.source},
            "harness": {"version": __version__, **harness_versions()},
            "decode_protocol": DECODE_PROTOCOL,
            "seconds": round(time.perf_counter() - started, 3),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (run_dir / "bandwidth.json").write_text(
            json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        )
        (run_dir / "bandwidth.md").write_text(render_bandwidth_markdown(table, settings))
        plot_bandwidth(
            table, run_dir / "bandwidth.png", title=_plot_title(residual, fraction, energy)
        )
    return target.final


def _plot_title(residual: str, fraction: float, energy: str) -> str:
    what = "magnitude" if energy == "magnitude" else "energy"
    return f"Effective bandwidth of the {residual} residual ({fraction * 100:g}% {what})"


def _khz(hz: float | None, digits: int = 2) -> str:
    return "-" if hz is None else f"{hz / 1000:.{digits}f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_bandwidth_markdown(table: dict[str, Any], settings: dict[str, Any]) -> str:
    """Table XI as markdown: per subset (with its generator) n and mean/std f* in kHz, widest
    first; then the real and AI means (pooled over tracks), their ratio, and the confounders.

    `settings` is the dict `measure_bandwidth` records; every key is optional. Used keys:
    bench, split, residual, max_seconds, fraction, n_fft, rate, generators (subset -> text),
    counts and failures_by_stage.
    """
    generators: dict[str, str] = settings.get("generators") or {}
    residual = settings.get("residual", "?")
    bench, split = settings.get("bench", "?"), settings.get("split", "?")
    fraction = settings.get("fraction", FRACTION)
    energy = "|X|" if settings.get("energy") == "magnitude" else "|X|^2"
    max_seconds = settings.get("max_seconds")
    excerpt = "whole track" if max_seconds is None else f"central {max_seconds:g} s of each track"
    grid = ""
    if "n_fft" in settings and "rate" in settings:
        grid = f"; STFT {settings['n_fft']} points at {settings['rate']} Hz"
    lines = [
        f"# Effective bandwidth of the residual: {bench} / {split}, residual `{residual}`",
        "",
        f"f* is the lowest frequency below which {fraction * 100:g}% of the residual's energy "
        f"({energy} per bin) lies, per frame, averaged over the non-silent frames ({excerpt}"
        f"{grid}). Mean and std are over tracks, in kHz; widest subset first.",
        "",
        "| subset | generator | label | n | mean f* (kHz) | std (kHz) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for subset, v in table["subsets"].items():
        lines.append(
            f"| {_cell(subset)} | {_cell(generators.get(subset, ''))} | {v['label']} "
            f"| {v['n']} | {_khz(v['mean_hz'])} | {_khz(v['std_hz'])} |"
        )
    ratio = table.get("ratio_ai_real")
    lines += [
        "",
        "| class | n | mean f* (kHz) |",
        "|---|---:|---:|",
        f"| real | {table['real']['n']} | {_khz(table['real']['mean_hz'])} |",
        f"| AI | {table['ai']['n']} | {_khz(table['ai']['mean_hz'])} |",
        "",
        "AI / real ratio of the means: " + ("-" if ratio is None else f"{ratio:.3f}") + ".",
        "",
    ]
    measured = table["n_tracks"] - table.get("n_skipped", 0)
    notes = [f"{measured} tracks measured"]
    if table.get("n_skipped"):
        notes.append(f"{table['n_skipped']} with a silent residual left out of the means")
    failures = settings.get("failures_by_stage") or {}
    if failures:
        by_stage = ", ".join(f"{n} at {stage}" for stage, n in sorted(failures.items()))
        notes.append(f"{sum(failures.values())} failed ({by_stage}), listed in bandwidth.parquet")
    lines += ["; ".join(notes) + ".", "", CONFOUNDERS, ""]
    return "\n".join(lines)
