"""`fetch`, `benches`, `models` and `score` as a user meets them: an unreachable hub, pins
recorded by the first fetch and enforced at load, and choice lists that match what each command
accepts."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from artifactbench.benches import BENCH_CHOICES
from artifactbench.benches import artifactbench as ab
from artifactbench.detectors.registry import cards, fetchable_cards
from tests.conftest import python_cli


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*python_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_model_with_the_hub_unreachable_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real client against a refused connection: no retries, no retry log, no 'no file'."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = cli(
        "fetch", "model", "artifactnet", cwd=tmp_path,
        env={"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith(f"error: cannot reach the Hugging Face hub ({endpoint})")
    assert "HF_HUB_OFFLINE=1" in line
    assert "artifactbench fetch model artifactnet --from PATH" in line
    assert "no file" not in line and "Retrying" not in done.stderr


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["score", "x.wav", "--model", "nosuch"], {"all"}),
        (["fetch", "model", "nosuch"], {"all", "fakeprint", "artifactnet-open-demo", "counting"}),
        (["fetch", "model", "fakeprint"], {"all", "fakeprint", "artifactnet-open-demo"}),
    ],
)
def test_model_choices_list_only_what_the_command_accepts(
    tmp_path: Path, args: list[str], refused: set[str]
) -> None:
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    listed = line.split("choose from: ")[1].split(", ")
    assert not refused & set(listed)
    expected = fetchable_cards() if args[0] == "fetch" else cards()
    assert listed == list(expected)


def test_weights_changed_after_the_first_fetch_are_refused_at_load(tmp_path: Path) -> None:
    """A card that pins nothing: `fetch --from` (no hub needed) records the sha256, and a
    changed byte is refused."""
    card_dir = tmp_path / "cards"
    card_dir.mkdir()
    (card_dir / "tiny.yaml").write_text(
        "id: tiny-onnx\nfamily: artifactnet_onnx\nrepo: someone/tiny\nrevision: main\n"
        "files:\n  - name: model.onnx\n    sha256: null\n"
        "view: {rate: 44100, seconds: 4, crop: chunks, n_chunks: 7, pad: true}\n"
    )
    cards_path = os.pathsep.join([os.environ["ARTIFACTBENCH_CARDS"], str(card_dir)])
    env = {"ARTIFACTBENCH_CARDS": cards_path, "HF_HUB_OFFLINE": "1"}
    given = tmp_path / "given.onnx"
    given.write_bytes(b"a graph")
    fetched = cli("fetch", "model", "tiny-onnx", "--from", str(given), cwd=tmp_path, env=env)
    assert fetched.returncode == 0, fetched.stderr
    recorded = hashlib.sha256(b"a graph").hexdigest()
    assert recorded[:12] in fetched.stdout

    cached = Path(os.environ["ARTIFACTBENCH_CACHE"]) / "models" / "tiny-onnx" / "main"
    (cached / "model.onnx").write_bytes(b"a grapH")
    actual = hashlib.sha256(b"a grapH").hexdigest()
    scored = cli("score", "song.wav", "--model", "tiny-onnx", cwd=tmp_path, env=env)
    assert scored.returncode == 2, scored.stderr
    (line,) = scored.stderr.strip().splitlines()
    assert "model.onnx" in line and recorded in line and actual in line
    listed = cli("models", cwd=tmp_path, env=env)
    row = next(r for r in listed.stdout.splitlines() if r.startswith("tiny-onnx\t"))
    assert "not available" in row and recorded in row and actual in row


def test_benches_lists_every_source_and_whether_artifactbench_is_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cli("benches", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in before.stdout.splitlines()}
    assert list(rows) == list(BENCH_CHOICES)
    assert {"artifactbench", "artifactbench:PATH", "sonics:PATH"} <= set(rows)
    assert all(len(cols) == 2 and all(cols) for cols in rows.values())
    assert rows["artifactbench"][0].startswith("not fetched")
    assert "artifactbench fetch bench artifactbench" in rows["artifactbench"][0]

    commit = "d" * 40

    def snapshot_download(repo_id: str, **kwargs: object) -> str:
        snapshot = Path(str(kwargs["cache_dir"])) / "snapshots" / commit
        (snapshot / "data").mkdir(parents=True)
        (snapshot / "data" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
        return str(snapshot)

    hub = types.ModuleType("huggingface_hub")
    hub.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    ab.fetch_artifactbench(None, ab.default_cache())
    after = cli("benches", cwd=tmp_path)
    row = next(r for r in after.stdout.splitlines() if r.startswith("artifactbench\t"))
    assert row.split("\t")[1].startswith("ready") and commit[:12] in row
