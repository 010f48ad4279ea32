"""`fetch` with the real `huggingface_hub` client against a Hub served on 127.0.0.1
(`tests/hub_server.py`): each family's card layout, commits recorded, pins enforced, a cut
download resumed, a killed one redone, a second fetch offline, an unreachable hub."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from artifactbench.assets import resolve_encoder
from artifactbench.audio.encode import encode_audio
from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.registry import cards
from tests.conftest import RATE, music, python_cli, upstream_fixtures
from tests.hub_server import LocalHub
from tests.test_artifactnet_onnx import BIAS, SCALE, W, save_graph

ARTIFACTNET_REPO = "intrect/artifactnet"
ARTIFACTNET_COMMIT = "e915f0dc5962a57536bbe1f78b66adcb48dfae4c"  # the card's pin
ONNX = "artifactnet_v94_full.onnx"
MIB = 1 << 20


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*python_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=180,
        env={**os.environ, **env},
    )  # fmt: skip


def cache() -> Path:
    return Path(os.environ["ARTIFACTBENCH_CACHE"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def padded_graph(folder: Path) -> dict[str, bytes]:
    """The ArtifactNet ONNX contract (P = sigmoid(SCALE * mean(x^2) + BIAS) per chunk) with
    its weights in `.onnx.data`, padded past the client's 10 MiB download chunk by a tensor
    that enters the output multiplied by zero."""
    folder.mkdir(parents=True, exist_ok=True)
    padding = np.random.default_rng(0).standard_normal(3 * MIB // 4 * 4).astype(np.float32)
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("Mul", ["sq", "scale"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("ReduceSum", ["padding"], ["pad_sum"], keepdims=0),
        helper.make_node("Mul", ["pad_sum", "zero"], ["nothing"]),
        helper.make_node("Add", ["ms", "bias"], ["z0"]),
        helper.make_node("Add", ["z0", "nothing"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ]
    inits = (("scale", np.full(W, SCALE)), ("bias", np.array(BIAS)), ("zero", np.array(0.0)),
             ("padding", padding))  # fmt: skip
    save_graph(folder / ONNX, nodes, inits, external=True)
    return {name: (folder / name).read_bytes() for name in (ONNX, f"{ONNX}.data")}


def song(folder: Path) -> Path:
    path = folder / "song.wav"
    path.write_bytes(encode_audio(music(3, seconds=6.0), RATE, "wav"))
    return path


def record_of(card_id: str, revision: str) -> dict:
    return json.loads((cache() / "models" / card_id / revision / "fetch.json").read_text())


def test_artifactnet_fetched_through_the_hub_resumes_a_cut_download_and_scores(
    hub: LocalHub, tmp_path: Path
) -> None:
    files = padded_graph(tmp_path / "published")
    assert len(files[f"{ONNX}.data"]) > 11 * MIB
    hub.commit("model", ARTIFACTNET_REPO, files, sha=ARTIFACTNET_COMMIT)
    hub.cut(f"{ONNX}.data", after=10 * MIB + 12345)

    details = cli("models", "--details", cwd=tmp_path)
    assert "not pinned yet: the first fetch records it" in details.stdout

    fetched = cli("fetch", "model", "artifactnet", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert f"at commit {ARTIFACTNET_COMMIT}" in fetched.stdout
    # The connection dropped after 10 MiB + 12345 bytes; the client kept the first 10 MiB it
    # had written and asked for the rest only.
    assert hub.ranges(f"{ONNX}.data") == [None, f"bytes={10 * MIB}-"]
    folder = cache() / "models" / "artifactnet" / ARTIFACTNET_COMMIT
    for name, data in files.items():
        assert sha256((folder / name).read_bytes()) == sha256(data)
    record = record_of("artifactnet", ARTIFACTNET_COMMIT)
    assert record["resolved"] == ARTIFACTNET_COMMIT and record["source"] == "hub"
    assert record["files"] == {name: sha256(data) for name, data in files.items()}
    assert record["pins"] == {name: "recorded" for name in files}

    details = cli("models", "--details", cwd=tmp_path)
    assert f"{ONNX} sha256 {sha256(files[ONNX])[:12]} (recorded at first fetch)" in details.stdout

    wav = song(tmp_path)
    local = cli("score", str(wav), "--model", "artifactnet",
                "--weights", str(tmp_path / "published" / ONNX), cwd=tmp_path)  # fmt: skip
    from_hub = cli("score", str(wav), "--model", "artifactnet", cwd=tmp_path, HF_HUB_OFFLINE="1")
    assert local.returncode == 0 and from_hub.returncode == 0, local.stderr + from_hub.stderr
    assert from_hub.stdout.split("\t")[1:] == local.stdout.split("\t")[1:]

    # A second fetch needs no hub at all: every request is answered from the cache.
    before = len(hub.log)
    offline = cli("fetch", "model", "artifactnet", cwd=tmp_path, HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert len(hub.log) == before
    assert record_of("artifactnet", ARTIFACTNET_COMMIT)["files"] == record["files"]


def test_a_fetch_killed_midway_keeps_nothing_and_the_rerun_completes(
    hub: LocalHub, tmp_path: Path
) -> None:
    files = padded_graph(tmp_path / "published")
    hub.commit("model", ARTIFACTNET_REPO, files, sha=ARTIFACTNET_COMMIT)
    fault = hub.stall(f"{ONNX}.data", after=11 * MIB)
    process = subprocess.Popen(
        [*python_cli(), "fetch", "model", "artifactnet"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert fault.reached.wait(timeout=120)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    fault.stall.set()  # type: ignore[union-attr]
    folder = cache() / "models" / "artifactnet" / ARTIFACTNET_COMMIT
    assert not (folder / f"{ONNX}.data").exists()
    assert not (folder / "fetch.json").exists()

    again = cli("fetch", "model", "artifactnet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sha256((folder / f"{ONNX}.data").read_bytes()) == sha256(files[f"{ONNX}.data"])
    assert record_of("artifactnet", ARTIFACTNET_COMMIT)["files"][f"{ONNX}.data"] == sha256(
        files[f"{ONNX}.data"]
    )


def spectttra_card(tmp_path: Path) -> dict[str, str]:
    """A card in SpecTTTra's published layout (config.json + pytorch_model.bin at a branch),
    served with the tiny upstream fixture's files."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tiny.yaml").write_text(
        "id: spectttra-tiny\nfamily: spectttra\nrepo: someone/sonics-spectttra-tiny\n"
        "revision: main\nfiles:\n  - name: config.json\n    sha256: null\n"
        "  - name: pytorch_model.bin\n    sha256: null\n"
        "view: {rate: 16000, seconds: 5, crop: center, pad: true}\n"
    )
    return {"ARTIFACTBENCH_CARDS": os.pathsep.join([os.environ["ARTIFACTBENCH_CARDS"], str(cards)])}


def test_a_branch_resolves_to_a_commit_that_later_fetches_keep(
    hub: LocalHub, tmp_path: Path
) -> None:
    tiny = upstream_fixtures() / "spectttra-tiny-5s"
    files = {n: (tiny / n).read_bytes() for n in ("config.json", "pytorch_model.bin")}
    first = hub.commit("model", "someone/sonics-spectttra-tiny", files)
    env = spectttra_card(tmp_path)
    fetched = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, **env)
    assert fetched.returncode == 0, fetched.stderr
    record = record_of("spectttra-tiny", "main")
    assert record["revision"] == "main" and record["resolved"] == first
    assert record["files"] == {name: sha256(data) for name, data in files.items()}
    details = cli("models", "--details", cwd=tmp_path, **env)
    assert f"someone/sonics-spectttra-tiny@main (resolved to {first} at first fetch)" in (
        details.stdout
    )
    scored = cli("score", str(song(tmp_path)), "--model", "spectttra-tiny", cwd=tmp_path, **env)
    assert scored.returncode == 0, scored.stderr
    assert 0.0 <= float(scored.stdout.split("\t")[1]) <= 1.0

    # `main` moves on upstream; the cache keeps the commit it was first fetched at.
    moved = dict(files, **{"pytorch_model.bin": files["pytorch_model.bin"] + b"\0"})
    hub.commit("model", "someone/sonics-spectttra-tiny", moved)
    (cache() / "models" / "spectttra-tiny" / "main" / "config.json").unlink()
    start = len(hub.log)
    again = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr
    asked = [r.path for r in hub.log[start:] if "sonics-spectttra-tiny" in r.path]
    assert asked and all(first in path for path in asked), asked
    assert record_of("spectttra-tiny", "main")["resolved"] == first


def test_bytes_other_than_the_recorded_sha256_are_refused(hub: LocalHub, tmp_path: Path) -> None:
    tiny = upstream_fixtures() / "spectttra-tiny-5s"
    files = {n: (tiny / n).read_bytes() for n in ("config.json", "pytorch_model.bin")}
    hub.commit("model", "someone/sonics-spectttra-tiny", files)
    env = spectttra_card(tmp_path)
    assert cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, **env).returncode == 0
    tampered = files["pytorch_model.bin"][:-1] + b"\x01"
    hub.tamper("model", "someone/sonics-spectttra-tiny", "pytorch_model.bin", tampered)
    weights = cache() / "models" / "spectttra-tiny" / "main" / "pytorch_model.bin"
    weights.unlink()
    refused = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, **env)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert "pytorch_model.bin" in line and sha256(tampered) in line
    assert f"the first fetch recorded {sha256(files['pytorch_model.bin'])}" in line
    assert not weights.exists()


def test_clam_encoders_come_at_their_pinned_commits(hub: LocalHub, tmp_path: Path) -> None:
    card = cards()["clam"]
    encoders = {encoder.repo: encoder.revision for encoder in card.encoders}
    assert "m-a-p/MERT-v1-95M" in encoders
    for repo, commit in encoders.items():
        layout = {"config.json": b'{"model_type": "hubert"}', "pytorch_model.bin": os.urandom(4096),
                  "preprocessor_config.json": b'{"sampling_rate": 24000}'}  # fmt: skip
        hub.commit("model", repo, layout, sha=commit)
        hub.commit("model", repo, {"config.json": b"{}"})  # main has moved on since the pin
    head = tmp_path / "head.pth"
    head.write_bytes(b"a head checkpoint")
    fetched = cli("fetch", "model", "clam", "--from", str(head), cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    for repo, commit in encoders.items():
        folder = cache() / "models" / "encoders" / repo.replace("/", "--") / commit
        assert (folder / "pytorch_model.bin").is_file()
        assert (folder / "preprocessor_config.json").is_file()
        assert json.loads((folder / "config.json").read_text()) == {"model_type": "hubert"}
    record = record_of("clam", card.revision or "")
    assert set(record["encoders"]) == {"mert", "wav2vec2"}
    mert = record["encoders"]["mert"]
    assert mert["commit"] == encoders["m-a-p/MERT-v1-95M"]
    served = hub.repos[("model", "m-a-p/MERT-v1-95M")].commits[mert["commit"]]
    assert mert["files"] == {name: sha256(data) for name, data in served.items()}

    details = cli("models", "--details", cwd=tmp_path)
    line = f"encoder mert: m-a-p/MERT-v1-95M@{mert['commit']} (commit pinned by the card)"
    assert f"{line}; 3 files, sha256 recorded at first fetch; runs no code" in details.stdout

    # A changed encoder file is refused at load against the first fetch's record.
    weights = Path(mert["path"]) / "pytorch_model.bin"
    weights.write_bytes(b"other weights")
    with pytest.raises(Unavailable) as refused:
        resolve_encoder(card, "mert")
    assert sha256(b"other weights") in str(refused.value)
    assert mert["files"]["pytorch_model.bin"] in str(refused.value)

    hub.repos[("model", "m-a-p/MERT-v1-95M")].commits.pop(encoders["m-a-p/MERT-v1-95M"])
    for folder in (cache() / "models" / "encoders").iterdir():
        for child in sorted(folder.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
    missing = cli("fetch", "model", "clam", "--from", str(head), cwd=tmp_path)
    assert missing.returncode == 1
    (line,) = missing.stderr.strip().splitlines()
    assert f"m-a-p/MERT-v1-95M@{encoders['m-a-p/MERT-v1-95M']}" in line


def test_an_unreachable_hub_after_a_fetch_is_one_line_and_offline_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    tiny = upstream_fixtures() / "spectttra-tiny-5s"
    files = {n: (tiny / n).read_bytes() for n in ("config.json", "pytorch_model.bin")}
    env = spectttra_card(tmp_path)
    with LocalHub() as hub:
        hub.commit("model", "someone/sonics-spectttra-tiny", files)
        endpoint = hub.endpoint
        fetched = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, HF_ENDPOINT=endpoint, **env)
        assert fetched.returncode == 0, fetched.stderr
    gone = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, HF_ENDPOINT=endpoint, **env)
    assert gone.returncode == 1
    (line,) = gone.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the Hugging Face hub ({endpoint})")
    assert "HF_HUB_OFFLINE=1" in line
    offline = cli("fetch", "model", "spectttra-tiny", cwd=tmp_path, HF_ENDPOINT=endpoint,
                  HF_HUB_OFFLINE="1", **env)  # fmt: skip
    assert offline.returncode == 0, offline.stderr


def test_fetch_bench_artifactbench_at_a_tag_records_its_commit_and_reloads_offline(
    hub: LocalHub, tmp_path: Path
) -> None:
    from tests.test_streaming import shards

    files = shards(tmp_path / "copy")
    commit = hub.commit("dataset", "intrect/artifactbench", files, branch="v1")
    hub.commit("dataset", "intrect/artifactbench", {"README.md": b"moved on"})
    fetched = cli("fetch", "bench", "artifactbench", "--revision", "v1", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    record = json.loads((cache() / "artifactbench" / "hub.json").read_text())
    assert record["revisions"]["v1"]["resolved"] == commit
    listed = cli("benches", cwd=tmp_path)
    row = next(r for r in listed.stdout.splitlines() if r.startswith("artifactbench\t"))
    assert f"v1 (--revision v1) at commit {commit[:12]}" in row

    before = len(hub.log)
    offline = cli("fetch", "bench", "artifactbench", "--revision", "v1", cwd=tmp_path,
                  HF_HUB_OFFLINE="1")  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert len(hub.log) == before
    from artifactbench.benches import BenchOptions, open_bench

    bench = open_bench("artifactbench", BenchOptions(revision="v1"))
    assert bench.fingerprint == f"hf:intrect/artifactbench@{commit}"
    assert [t.track_id for t in bench.tracks] == [f"t{i}" for i in range(7)]
