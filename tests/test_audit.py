"""The leakage audit: exact copies and Chromaprint matches between a small demo bench and a
folder built from it (lossless copies, MP3 re-encodes, trims, unrelated music, a broken file),
the cards' training data in the predictions metadata, and the marks in reports and boards."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from artifactbench.audio.decode import PROTOCOL_RATE, decode_audio
from artifactbench.audio.encode import encode_audio
from artifactbench.audit import audit_benches
from artifactbench.audit import fingerprint as fpr
from artifactbench.benches.base import Bench, Track
from artifactbench.benches.demo import DEMO_SUBSETS, load_demo_bench, model_rng, render_track
from artifactbench.benches.folder import load_folder_bench
from artifactbench.detectors.base import DetectorCard, Identity, TrainedOn, trained_on
from artifactbench.detectors.details import card_details
from artifactbench.detectors.registry import cards
from artifactbench.predictions import read_predictions, write_predictions
from artifactbench.reports import write_reports
from artifactbench.reports.leaderboard import build_leaderboard, leaderboard_markdown
from artifactbench.reports.leaderboard.html import leaderboard_html
from artifactbench.reports.leakage import AuditMismatch, read_audit
from artifactbench.runner import RunOptions, run
from tests.conftest import PLUGINS, python_cli

try:
    fpr.chromaprint()
except fpr.FingerprintUnavailable:
    if os.environ.get("CI"):  # CI installs it: missing there is a failure, not a skip
        raise
    pytest.skip("Chromaprint (pyacoustid + libchromaprint1) is not here", allow_module_level=True)

SECONDS = (12.0, 16.0)
LOSSLESS = {"real_studio": "WAV", "ai_rvq_deep": "FLAC"}  # stored FLAC / WAV: swapped, lossless
MP3 = ("real_live", "ai_griffinlim")
TRIMS = {"real_vintage": 3.0, "ai_upsampler_x4": 2.3}  # seconds cut off the start
UNRELATED = ("real_studio", "real_live")  # the same kind of music from another seed
FOLDER = "leak"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    root = tmp_path_factory.mktemp("demo") / "demo"
    return load_demo_bench(root=root, tracks_per_subset=2, seconds=SECONDS)


def first_of(bench: Bench, subset: str) -> Track:
    return next(t for t in bench.tracks if t.subset == subset)


def _unrelated(index: int, subset: str) -> bytes:
    model = DEMO_SUBSETS[subset].make_model(model_rng(7, subset))
    _, audio, _ = render_track(7, subset, index, SECONDS, model)
    return encode_audio(audio, PROTOCOL_RATE, "flac")


@pytest.fixture(scope="module")
def folder(demo: Bench, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training-data stand-in: copies of some demo tracks, unrelated music, a broken file."""
    root = tmp_path_factory.mktemp("folders") / FOLDER
    root.mkdir()
    rows = []

    def add(name: str, data: bytes, subset: str) -> None:
        (root / name).write_bytes(data)
        rows.append(f"{name},real,{subset},train,{name.rsplit('.', 1)[0]}")

    for subset, fmt in LOSSLESS.items():
        samples, rate = sf.read(io.BytesIO(first_of(demo, subset).read_bytes()), dtype="int16")
        buf = io.BytesIO()
        sf.write(buf, samples, rate, format=fmt, subtype="PCM_16")
        add(f"lossless_{subset}.{fmt.lower()}", buf.getvalue(), "copies")
    for subset in MP3:
        audio = decode_audio(first_of(demo, subset).read_bytes())
        add(f"mp3_{subset}.mp3", encode_audio(audio, PROTOCOL_RATE, "mp3", 128_000), "copies")
    for subset, cut in TRIMS.items():
        audio = decode_audio(first_of(demo, subset).read_bytes())[int(cut * PROTOCOL_RATE) :]
        add(f"trim_{subset}.flac", encode_audio(audio, PROTOCOL_RATE, "flac"), "copies")
    for i, subset in enumerate(UNRELATED):
        add(f"unrelated_{i}.flac", _unrelated(i, subset), "other")
    add("broken.mp3", b"ID3 this is not audio at all" * 50, "other")
    header = "path,label,subset,bench_origin,track_id"
    (root / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


@pytest.fixture(scope="module")
def audit_dir(demo: Bench, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audits") / "audit"
    return audit_benches(demo, load_folder_bench(folder), out, workers=0)


@pytest.fixture(scope="module")
def record(audit_dir: Path) -> dict:
    return json.loads((audit_dir / "audit.json").read_text())


def pairs(record: dict) -> dict[str, dict]:
    """The demo track each folder copy matched: folder track id -> its match."""
    return {m["against_track_id"]: m for m in record["matches"]}


def test_lossless_copies_are_exact_and_lossy_ones_fingerprint_matches(
    demo: Bench, record: dict
) -> None:
    found = pairs(record)
    for subset in LOSSLESS:
        m = found[f"lossless_{subset}"]
        assert (m["kind"], m["track_id"], m["ber"]) == ("exact", first_of(demo, subset).track_id, 0)
    for name in [f"mp3_{s}" for s in MP3] + [f"trim_{s}" for s in TRIMS]:
        m = found[name]
        assert m["kind"] == "fingerprint" and m["ber"] <= fpr.MAX_BER
        assert m["track_id"] == first_of(demo, name.split("_", 1)[1]).track_id
    for subset, cut in TRIMS.items():  # the copy starts `cut` seconds into the original
        assert found[f"trim_{subset}"]["offset_seconds"] == pytest.approx(-cut, abs=0.2)
    assert len(record["matches"]) == len(LOSSLESS) + len(MP3) + len(TRIMS)  # nothing else


def test_counts_per_subset_and_the_markdown(record: dict, audit_dir: Path) -> None:
    subsets = record["subsets"]
    assert set(subsets) == set(DEMO_SUBSETS) and all(s["n_tracks"] == 2 for s in subsets.values())
    exact = {name for name, s in subsets.items() if s["n_exact"]}
    printed = {name for name, s in subsets.items() if s["n_fingerprint"]}
    assert exact == set(LOSSLESS) and printed == {*MP3, *TRIMS}
    assert all(s["n_exact"] + s["n_fingerprint"] <= 1 for s in subsets.values())
    assert record["totals"] == {"n_tracks": 24, "n_exact": 2, "n_fingerprint": 4, "n_failed": 0}
    assert (record["against"]["name"], record["against"]["split"]) == (f"folder:{FOLDER}", "all")
    text = (audit_dir / "audit.md").read_text()
    assert "| real_studio | real | 2 | 1 | 0 | 0 |" in text and "broken" in text


def test_a_broken_file_is_a_failure_with_its_stage(record: dict) -> None:
    assert [(f["side"], f["track_id"], f["stage"]) for f in record["failures"]] == [
        ("against", "broken", "decode")
    ]


def test_unrelated_music_stays_far_from_the_threshold(demo: Bench, folder: Path) -> None:
    """Every alignment of every pair of different recordings (the demo's 24 tracks and the
    unrelated renders) has a BER well above MAX_BER, while the copies sit well below it."""
    prints = {t.track_id: fpr.raw_fingerprint(decode_audio(t.read_bytes())) for t in demo}
    for path in sorted(folder.glob("unrelated_*.flac")):
        prints[path.stem] = fpr.raw_fingerprint(decode_audio(path.read_bytes()))
    names = sorted(prints)
    lowest = 1.0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x, y = prints[a], prints[b]
            hit = fpr.align(x, y, list(range(-len(x) + 1, len(y))))
            lowest = min(lowest, hit.ber if hit else 1.0)
    assert lowest > fpr.MAX_BER + 0.1


def test_an_existing_out_or_an_empty_split_is_refused_before_decoding(
    demo: Bench, folder: Path, audit_dir: Path
) -> None:
    with pytest.raises(ValueError, match="already exists"):
        audit_benches(demo, load_folder_bench(folder), audit_dir)
    with pytest.raises(ValueError, match="no tracks in split 'test'"):
        audit_benches(demo, load_folder_bench(folder), audit_dir.parent / "x", against_split="test")


def test_cards_declare_their_training_data_and_runs_record_it() -> None:
    known = cards()
    assert known["spectttra-alpha-120s"].trained_on == (TrainedOn("sonics", "train"),)
    assert [t.bench for t in known["clam"].trained_on] == ["mom"]
    assert known["clam"].trained_on[0].split is None  # not published
    assert known["artifactnet-open-demo"].trained_on == (TrainedOn("demo", "train"),)
    assert "trained on: sonics (split train)" in card_details(known["spectttra-alpha-5s"])
    demo = Identity(known["artifactnet-open-demo"], "w", {})
    assert trained_on(demo) == [{"bench": "demo", "split": "train"}]
    fitted = Identity(known["fakeprint"], "w", {"bench": "folder:x", "split": "train"})
    assert trained_on(fitted) == [{"bench": "folder:x", "split": "train"}]
    plain = DetectorCard("p", "fakeprint", known["fakeprint"].view)
    assert trained_on(Identity(plain, "w", {"bench": "demo"})) == []


LEAKY_CARD = f"""
id: leaky
family: counting
module: counting_detector
view: {{rate: 16000, seconds: 2, crop: center}}
trained_on:
  - bench: folder:{FOLDER}
    split: train
"""


def test_a_run_records_what_its_models_were_trained_on(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "leaky.yaml").write_text(LEAKY_CARD)
    monkeypatch.setenv(
        "ARTIFACTBENCH_CARDS", f"{PLUGINS / 'cards'}{os.pathsep}{tmp_path / 'cards'}"
    )
    options = RunOptions(split="all", out=tmp_path / "runs", workers=0)
    done = run(load_folder_bench(folder), [cards()["leaky"]], options)
    _, meta = read_predictions(done.run_dir / "predictions.parquet")
    assert meta["models"]["leaky"]["trained_on"] == [
        {"bench": f"folder:{FOLDER}", "split": "train"}
    ]


TRAINED = {
    "seen": [{"bench": f"folder:{FOLDER}", "split": "train"}],
    "other-split": [{"bench": f"folder:{FOLDER}", "split": "test"}],
    "unpublished-split": [{"bench": FOLDER, "split": None}],
    "untrained": [],
}


def write_run(demo: Bench, root: Path) -> Path:
    """A run directory of four models on the whole demo bench, differing only in trained_on."""
    rows = [
        {"model": model, "track_id": t.track_id, "bench": t.bench, "subset": t.subset,
         "label": t.label, "generator": t.generator, "bench_origin": t.bench_origin,
         "prob": 0.9 if t.label == "ai" else 0.1, "status": "scored", "stage": None,
         "error": None, "seconds": 0.1, "note": None, "variant": "original"}
        for model in TRAINED for t in demo
    ]  # fmt: skip
    models = {
        m: {"params": "1", "paper_name": m, "weights_sha256": "w", "protocol_hash": "h",
            "trained_on": trained}
        for m, trained in TRAINED.items()
    }  # fmt: skip
    meta = {
        "bench": demo.name, "bench_fingerprint": demo.fingerprint, "split": "all",
        "threshold": 0.5, "seed": 0, "decode_protocol": "p", "variants": ["original"],
        "variant_protocols": {"original": "p"},
        "subsets": {s: info.rule for s, info in demo.subsets.items()}, "models": models,
        "written_utc": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    root.mkdir(parents=True)
    write_predictions(rows, meta, root / "predictions.parquet")
    return root


@pytest.mark.slow
def test_reports_and_the_leaderboard_mark_results_seen_in_training(
    demo: Bench, audit_dir: Path, tmp_path: Path
) -> None:
    run_dir = write_run(demo, tmp_path / "run")
    write_reports(run_dir / "predictions.parquet", run_dir, audits=[read_audit(audit_dir)])
    sanity = json.loads((run_dir / "sanity.json").read_text())
    marked = {m: sorted(s) for m, s in sanity["seen_in_training"].items()}
    subsets = sorted([*LOSSLESS, *MP3, *TRIMS])
    assert marked == {"seen": subsets, "unpublished-split": subsets}
    assert sanity["seen_in_training"]["seen"]["real_studio"] == {"k": 1, "n": 2}
    for name in ("sanity.md", "report.md"):
        text = (run_dir / name).read_text()
        row = next(line for line in text.splitlines() if line.startswith("| real_studio "))
        assert row.count("(seen in training: 1/2)") == 2  # seen and unpublished-split only
        assert "Leakage audit(s):" in text
    clean = next(ln for ln in text.splitlines() if ln.startswith("| ai_rvq_shallow "))
    assert "seen in training" not in clean

    board = build_leaderboard([run_dir], resamples=50, audits=[read_audit(audit_dir)])
    assert board["heat"]["seen"]["ai_rvq_deep"]["seen_in_training"] == {"k": 1, "n": 2}
    assert "seen_in_training" not in board["heat"]["untrained"]["ai_rvq_deep"]
    assert leaderboard_markdown(board).count("(seen in training: 1/2)") == 2 * len(subsets)
    assert leaderboard_html(board).count('<span class="seen">') == 2 * len(subsets)


def test_an_audit_of_another_bench_or_split_is_refused(
    demo: Bench, audit_dir: Path, record: dict, tmp_path: Path
) -> None:
    run_dir = write_run(demo, tmp_path / "run")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**record, "bench": {**record["bench"], "fingerprint": "x"}}))
    with pytest.raises(AuditMismatch, match="is of bench demo"):
        write_reports(run_dir / "predictions.parquet", run_dir, audits=[read_audit(other)])
    other.write_text(json.dumps({**record, "bench": {**record["bench"], "split": "train"}}))
    with pytest.raises(AuditMismatch, match="covers split train"):
        write_reports(run_dir / "predictions.parquet", run_dir, audits=[read_audit(other)])
    with pytest.raises(AuditMismatch, match="not a readable audit"):
        read_audit(tmp_path)


def test_the_command_line(folder: Path, tmp_path: Path) -> None:
    """A wrong bench spec is one line and exit 2; a folder against itself (its train split)
    matches every readable track exactly and writes the audit directory."""
    wrong = subprocess.run(
        [*python_cli(), "audit", "nope:x", "--against", f"folder:{folder}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("error: unknown bench 'nope:x'")
    assert wrong.stderr.count("\n") == 1
    out = tmp_path / "self"
    done = subprocess.run(
        [*python_cli(), "audit", f"folder:{folder}", "--against", f"folder:{folder}:train",
         "--out", str(out), "--workers", "0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    self_audit = json.loads((out / "audit.json").read_text())
    assert self_audit["against"]["split"] == "train"
    assert self_audit["totals"]["n_exact"] == self_audit["totals"]["n_tracks"] - 1  # broken
    assert f"audit: {out}" in done.stdout
    assert not (tmp_path / "self.partial").exists()


def test_alignment_finds_the_offset_and_ignores_silence() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 2**32, size=200, dtype=np.uint64).astype(np.uint32)
    hit = fpr.align(items[30:], items, [30, 29, -30])
    assert hit is not None and (hit.offset, hit.ber, hit.overlap) == (30, 0.0, 170)
    flat = np.full(200, 12345, dtype=np.uint32)
    assert fpr.align(flat, flat, [0]) is None  # identical silence is no evidence
    assert [fpr.min_overlap(n, 500) for n in (30, 60, 200)] == [40, 48, 81]  # 5 s, 80%, 10 s
