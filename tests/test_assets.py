"""Weights on disk: overrides, the fetch cache, sha256 pins, and fetching without a network."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import pytest

from artifactbench import assets
from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.registry import card_from_dict


def _card(**changes: object):
    base = {
        "id": "tiny",
        "family": "fakeprint",
        "repo": "someone/tiny",
        "revision": "abc123",
        "files": [{"name": "model.onnx"}, {"name": "model.onnx.data", "optional": True}],
        "view": {"rate": 44100},
    }
    return card_from_dict({**base, **changes})


def test_weights_file_or_directory_override_the_cache(tmp_path: Path) -> None:
    card = _card()
    single = tmp_path / "mine.onnx"
    single.write_bytes(b"onnx")
    assert assets.resolve_files(card, single) == {"model.onnx": single}
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx")
    assert assets.resolve_files(card, folder) == {"model.onnx": folder / "model.onnx"}
    (folder / "model.onnx.data").write_bytes(b"data")
    assert set(assets.resolve_files(card, folder)) == {"model.onnx", "model.onnx.data"}


def test_missing_weights_name_the_fetch_command() -> None:
    with pytest.raises(Unavailable, match="is not fetched") as exc:
        assets.resolve_files(_card(), None)
    assert exc.value.hint == "artifactbench fetch model tiny"
    url_card = _card(files=[{"name": "head.pth", "url": "https://example.org/head.pth"}])
    with pytest.raises(Unavailable) as exc:
        assets.resolve_files(url_card, None)
    assert exc.value.hint == "artifactbench fetch model tiny --from PATH_OR_URL"


def test_a_sha256_pin_refuses_other_weights() -> None:
    good = hashlib.sha256(b"published").hexdigest()
    card = _card(files=[{"name": "model.onnx", "sha256": good}])
    folder = assets.model_dir(card)
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"published")
    assert assets.resolve_files(card, None) == {"model.onnx": folder / "model.onnx"}
    (folder / "model.onnx").write_bytes(b"tampered!")
    with pytest.raises(Unavailable, match="refusing weights that are not the published ones"):
        assets.resolve_files(card, None)


def test_cached_sha256_rehashes_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"one")
    assert assets.cached_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two, longer")
    assert assets.cached_sha256(path) == hashlib.sha256(b"two, longer").hexdigest()
    digest = assets.files_sha256({"b": path, "a": path})
    assert digest == assets.files_sha256({"a": path, "b": path})


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """A stand-in `huggingface_hub` that serves two files and records how it was called."""
    calls: list[dict] = []

    class EntryNotFoundError(Exception):
        pass

    def hf_hub_download(repo, name, revision=None, local_dir=None, local_files_only=False):
        calls.append({"repo": repo, "name": name, "revision": revision,
                      "offline": local_files_only})  # fmt: skip
        if name.endswith(".data"):
            raise EntryNotFoundError(name)
        path = Path(local_dir) / name
        path.write_bytes(f"{repo}/{name}@{revision}".encode())
        return str(path)

    def snapshot_download(repo, revision=None, local_dir=None, local_files_only=False):
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        calls.append({"repo": repo, "revision": revision, "snapshot": True})
        return local_dir

    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = hf_hub_download
    hub.snapshot_download = snapshot_download
    errors = types.ModuleType("huggingface_hub.errors")
    errors.EntryNotFoundError = EntryNotFoundError
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", errors)
    return calls


def test_fetch_model_pins_the_revision_and_skips_absent_optional_files(
    fake_hub: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = _card(encoders=[{"name": "enc", "repo": "lab/enc", "revision": "fff"}])
    record = assets.fetch_model(card)
    assert [c["revision"] for c in fake_hub] == ["abc123", "abc123", "fff"]
    assert all(c.get("offline", True) for c in fake_hub)
    assert list(record["files"]) == ["model.onnx"]
    assert (
        assets.resolve_files(card, None)["model.onnx"].read_bytes()
        == b"someone/tiny/model.onnx@abc123"
    )
    assert assets.resolve_encoder(card, "enc") == assets.encoder_dir(card.encoders[0])
    assert (assets.model_dir(card) / "fetch.json").is_file()


def test_fetch_refuses_a_file_that_breaks_its_pin(fake_hub: list[dict]) -> None:
    card = _card(files=[{"name": "model.onnx", "sha256": "0" * 64}])
    with pytest.raises(assets.FetchError, match="does not match"):
        assets.fetch_model(card)
    assert not (assets.model_dir(card) / "model.onnx").exists()


def test_a_url_only_file_comes_from_the_users_path(tmp_path: Path) -> None:
    head = tmp_path / "head.pth"
    head.write_bytes(b"weights")
    card = _card(repo=None, files=[{"name": "best.pth", "url": "https://example.org/best.pth"}])
    with pytest.raises(assets.FetchError, match="neither a file nor a URL"):
        assets.fetch_model(card, "/no/such/file")
    assets.fetch_model(card, str(head))
    assert assets.resolve_files(card, None)["best.pth"].read_bytes() == b"weights"
