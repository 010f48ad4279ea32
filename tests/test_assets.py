"""Weights on disk: overrides, the fetch cache, sha256 pins, and fetching without a network."""

from __future__ import annotations

import hashlib
import json
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


RESOLVED = "c" * 40


class FakeHub(list):
    """The calls a stand-in hub received; `payload` overrides the bytes it serves per file."""

    payload: dict[str, bytes]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """A stand-in `huggingface_hub` that serves two files and records how it was called."""
    calls = FakeHub()
    calls.payload = {}

    class EntryNotFoundError(Exception):
        pass

    def hf_hub_download(repo, name, revision=None, local_dir=None, local_files_only=False):
        calls.append({"repo": repo, "name": name, "revision": revision,
                      "offline": local_files_only})  # fmt: skip
        if name.endswith(".data"):
            raise EntryNotFoundError(name)
        path = Path(local_dir) / name
        path.write_bytes(calls.payload.get(name, f"{repo}/{name}@{revision}".encode()))
        return str(path)

    def snapshot_download(repo, revision=None, local_dir=None, local_files_only=False):
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        calls.append({"repo": repo, "revision": revision, "snapshot": True})
        return local_dir

    class HfApi:
        def model_info(self, repo, revision=None):
            calls.append({"repo": repo, "revision": revision, "info": True})
            return types.SimpleNamespace(sha=revision if len(revision or "") == 40 else RESOLVED)

    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = hf_hub_download
    hub.snapshot_download = snapshot_download
    hub.HfApi = HfApi
    errors = types.ModuleType("huggingface_hub.errors")
    errors.EntryNotFoundError = EntryNotFoundError
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", errors)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return calls


def test_fetch_model_pins_the_revision_and_skips_absent_optional_files(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
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


def test_fetch_refuses_a_file_that_breaks_its_pin(fake_hub: FakeHub) -> None:
    card = _card(files=[{"name": "model.onnx", "sha256": "0" * 64}])
    with pytest.raises(assets.FetchError, match="the card pins " + "0" * 64):
        assets.fetch_model(card)
    assert not (assets.model_dir(card) / "model.onnx").exists()


def test_a_url_only_file_comes_from_the_users_path(tmp_path: Path) -> None:
    head = tmp_path / "head.pth"
    head.write_bytes(b"weights")
    card = _card(repo=None, files=[{"name": "best.pth", "url": "https://example.org/best.pth"}])
    with pytest.raises(assets.FetchError, match="is neither a file"):
        assets.fetch_model(card, "/no/such/file")
    assets.fetch_model(card, str(head))
    assert assets.resolve_files(card, None)["best.pth"].read_bytes() == b"weights"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_first_fetch_records_commit_and_sha256_and_loading_refuses_changed_bytes(
    fake_hub: FakeHub,
) -> None:
    """`revision: main` and `sha256: null` are closed by the first fetch, then enforced."""
    card = _card(revision="main")
    assets.fetch_model(card)
    folder = assets.model_dir(card)
    record = json.loads((folder / "fetch.json").read_text())
    served = f"someone/tiny/model.onnx@{RESOLVED}".encode()
    assert record["resolved"] == RESOLVED
    assert record["files"] == {"model.onnx": _sha(served)}
    assert record["pins"] == {"model.onnx": "recorded"}
    assert [c["revision"] for c in fake_hub if "name" in c] == [RESOLVED, RESOLVED]
    assert assets.file_pins(card)["model.onnx"] == (_sha(served), "recorded")
    from artifactbench.detectors.details import card_details

    (weights,) = [line for line in card_details(card) if line.startswith("weights:")]
    assert f"someone/tiny@main (resolved to {RESOLVED} at first fetch)" in weights

    (folder / "model.onnx").write_bytes(b"tampered weights")
    with pytest.raises(Unavailable) as exc:
        assets.resolve_files(card, None)
    message = str(exc.value)
    assert "model.onnx" in message and _sha(served) in message
    assert _sha(b"tampered weights") in message
    assert exc.value.hint == "artifactbench fetch model tiny"

    fake_hub.clear()
    assets.fetch_model(card)
    assert [c["revision"] for c in fake_hub if "info" in c] == [RESOLVED]
    assert assets.resolve_files(card, None)["model.onnx"].read_bytes() == served


def test_a_later_fetch_refuses_bytes_that_differ_from_the_record(fake_hub: FakeHub) -> None:
    card = _card(revision="main")
    assets.fetch_model(card)
    served = f"someone/tiny/model.onnx@{RESOLVED}".encode()
    fake_hub.payload["model.onnx"] = b"the upstream file changed"
    with pytest.raises(assets.FetchError) as exc:
        assets.fetch_model(card)
    message = str(exc.value)
    assert "model.onnx" in message and _sha(served) in message
    assert _sha(b"the upstream file changed") in message
    assert json.loads((assets.model_dir(card) / "fetch.json").read_text())["files"] == {
        "model.onnx": _sha(served)
    }


def test_from_a_directory_fetches_a_hub_card_without_the_hub(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    card = _card(revision="main", files=[{"name": "config.json"}, {"name": "model.bin"}])
    source = tmp_path / "copy"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "model.bin").write_bytes(b"weights v1")
    record = assets.fetch_model(card, str(source))
    assert fake_hub == []
    assert record["source"] == str(source.resolve())
    assert record["files"] == {"config.json": _sha(b"{}"), "model.bin": _sha(b"weights v1")}

    (source / "model.bin").write_bytes(b"weights v2")
    with pytest.raises(assets.FetchError, match="model.bin has sha256") as exc:
        assets.fetch_model(card, str(source))
    assert _sha(b"weights v1") in str(exc.value) and _sha(b"weights v2") in str(exc.value)
    kept = assets.resolve_files(card, None)["model.bin"]
    assert kept.read_bytes() == b"weights v1"
    with pytest.raises(assets.FetchError, match="give --from a directory holding"):
        assets.fetch_model(card, str(source / "model.bin"))


def test_a_url_card_fetched_from_a_file_is_pinned_by_that_first_fetch(tmp_path: Path) -> None:
    card = _card(repo=None, files=[{"name": "head.pth"}])
    given = tmp_path / "head.pth"
    given.write_bytes(b"checkpoint")
    assets.fetch_model(card, str(given))
    cached = assets.resolve_files(card, None)["head.pth"]
    cached.write_bytes(b"checkpoinT")
    with pytest.raises(Unavailable, match="the first fetch recorded"):
        assets.resolve_files(card, None)
    assets.fetch_model(card, str(given))
    assert assets.resolve_files(card, None)["head.pth"].read_bytes() == b"checkpoint"


def test_offline_fetch_of_an_unfetched_model_says_it_is_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real client with HF_HUB_OFFLINE: the file is missing from the cache, not the repo."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = _card(revision="e" * 40)
    with pytest.raises(assets.FetchError) as exc:
        assets.fetch_model(card)
    message = str(exc.value)
    assert "is not in the cache" in message and "HF_HUB_OFFLINE is set" in message
    assert "artifactbench fetch model tiny --from PATH" in message
    assert "no file" not in message


def test_models_details_says_where_each_pin_comes_from_and_lists_cached_fits(
    tmp_path: Path, file_bench
) -> None:
    from artifactbench.detectors.details import card_details
    from artifactbench.detectors.fakeprint import FakeprintFit
    from artifactbench.detectors.registry import cards
    from artifactbench.runner import fit_plan

    card = _card(repo=None, files=[{"name": "head.pth"}, {"name": "extra.bin"}])
    assert "not pinned yet" in " ".join(card_details(card))
    source = tmp_path / "src"
    source.mkdir()
    (source / "head.pth").write_bytes(b"head")
    (source / "extra.bin").write_bytes(b"extra")
    assets.fetch_model(card, str(source))
    (weights,) = [line for line in card_details(card) if line.startswith("weights:")]
    assert f"head.pth sha256 {_sha(b'head')[:12]} (recorded at first fetch)" in weights
    assert f"extra.bin sha256 {_sha(b'extra')[:12]} (recorded at first fetch)" in weights
    shipped = cards()["artifactnet-open-demo"]
    assert "(pinned by the card)" in " ".join(card_details(shipped))

    fakeprint = cards()["fakeprint"]
    assert any("none yet" in line for line in card_details(fakeprint))
    plan = fit_plan(fakeprint, file_bench, workers=0)
    assert plan is not None
    fit = FakeprintFit((0.1, -0.2), 0.3, 44100, plan.record)
    plan.cache_path.parent.mkdir(parents=True, exist_ok=True)
    plan.cache_path.write_text(fit.to_json())
    (listed,) = [line for line in card_details(fakeprint) if line.startswith("cached fit:")]
    assert str(plan.cache_path) in listed and f"bench {file_bench.name}" in listed
    assert f"{plan.record['n_train_tracks']} tracks" in listed
    assert FakeprintFit.from_file(plan.cache_path).coef == (0.1, -0.2)


def test_offline_refetch_accepts_cached_files_and_skips_an_absent_optional_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real client with HF_HUB_OFFLINE: what is cached is checked against the record."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = _card(revision="e" * 40)
    folder = assets.model_dir(card)
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"graph")
    record = assets.fetch_model(card)
    assert record["files"] == {"model.onnx": _sha(b"graph")}
    assert record["resolved"] == "e" * 40
    (folder / "model.onnx").write_bytes(b"graph, changed")
    with pytest.raises(assets.FetchError) as exc:
        assets.fetch_model(card)
    assert _sha(b"graph") in str(exc.value) and _sha(b"graph, changed") in str(exc.value)
