"""The Demucs backend on tiny random models written to tmp_path in both on-disk formats."""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("demucs")

import torch  # noqa: E402
from demucs.apply import BagOfModels, apply_model  # noqa: E402
from demucs.htdemucs import HTDemucs  # noqa: E402
from demucs.repo import ModelLoadingError  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from artifactbench.audio.separation import (  # noqa: E402
    DEFAULT_DEMUCS,
    DemucsUnavailable,
    demucs_available,
    demucs_dir,
    load_separator,
)
from artifactbench.paths import cache_dir  # noqa: E402

SOURCES = ["drums", "bass", "other", "vocals"]
RATE = 44100


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model runs thousands of small ops; with a busy CPU every intra-op fork-join waits
    for a descheduled thread (4 s single-threaded, over a minute with two threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int) -> HTDemucs:
    """A real HTDemucs, small enough to run in milliseconds. The Fraction segment (shorter than
    the test audio, so apply_model splits) goes through safetensors' fraction encoding."""
    torch.manual_seed(seed)
    model = HTDemucs(
        sources=SOURCES,
        channels=4,
        depth=4,
        dconv_comp=2,
        t_layers=1,
        t_heads=1,
        segment=Fraction(39, 40),
    )
    return model.eval()


def _encode(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    raise TypeError(type(value))


def save_safetensors(model: HTDemucs, path: Path) -> None:
    """The layout demucs.hf.load_safetensors_model reads (as in the HuggingFace exports)."""
    args, kwargs = model._init_args_kwargs
    klass = f"{type(model).__module__}.{type(model).__name__}"
    metadata = {
        "klass": klass,
        "args": json.dumps(list(args), default=_encode),
        "kwargs": json.dumps(kwargs, default=_encode),
    }
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def save_th(model: HTDemucs, path: Path) -> None:
    """demucs's legacy pickled package."""
    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": model.state_dict()}
    torch.save(package, path)


def write_yaml(directory: Path, sigs: list[str], name: str = DEFAULT_DEMUCS, **extra) -> Path:
    path = directory / f"{name}.yaml"
    lines = [f"models: {json.dumps(sigs)}"] + [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def audio(n: int = 2, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.array([[0.3], [0.05]])[:n]
    return (rng.standard_normal((n, int(seconds * RATE))) * scale).astype(np.float32)


def reference_stems(bag: torch.nn.Module, mono: np.ndarray) -> torch.Tensor:
    """What demucs itself gives for the same normalised stereo input."""
    x = torch.from_numpy(mono)
    std = x.std(dim=1, keepdim=True)
    mix = (x / std).unsqueeze(1).repeat(1, 2, 1)
    with torch.inference_mode():
        out = apply_model(bag, mix, shifts=0, split=True, overlap=0.25, progress=False)
    return out.mean(dim=2) * std.unsqueeze(1)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def safetensors_dir(tmp_path: Path) -> Path:
    save_safetensors(tiny_model(0), tmp_path / "aaaa0000.safetensors")
    write_yaml(tmp_path, ["aaaa0000"])
    return tmp_path


def test_safetensors_bag_matches_demucs(safetensors_dir: Path):
    sep = load_separator(safetensors_dir)
    x = audio()
    stems = sep.stems(x)
    assert stems.shape == (2, 4, RATE) and stems.dtype == torch.float32
    assert sep.sources == tuple(SOURCES) and sep.samplerate == RATE
    expected = reference_stems(tiny_model(0), x)
    torch.testing.assert_close(stems, expected, atol=1e-5, rtol=1e-5)
    assert stems.abs().max() > 0

    residual, remix = sep.residual(x), sep.remix(x)
    assert residual.shape == remix.shape == (2, RATE)
    mix = torch.from_numpy(x)
    torch.testing.assert_close(residual + remix, mix, atol=1e-5, rtol=0)
    torch.testing.assert_close(residual, mix - stems.sum(1), atol=1e-5, rtol=0)
    # A torch input gives the same, and the outputs are ordinary (writable) tensors.
    torch.testing.assert_close(sep.stems(mix), stems, atol=0, rtol=0)
    stems.mul_(2.0)

    files = {"htdemucs.yaml", "aaaa0000.safetensors"}
    assert sep.files == {name: sha(safetensors_dir / name) for name in files}
    prov = sep.provenance()
    assert prov["files"] == sep.files and prov["dir"] == str(safetensors_dir)
    assert prov["name"] == "htdemucs" and prov["sources"] == SOURCES
    assert prov["samplerate"] == RATE and prov["demucs_version"] == "4.1.0"


def test_th_bag_with_weights(tmp_path: Path):
    """Legacy pickles, with and without a checksum suffix, mixed with safetensors and weights."""
    save_safetensors(tiny_model(0), tmp_path / "aaaa0000.safetensors")
    save_th(tiny_model(1), tmp_path / "bbbb1111.th")
    save_th(tiny_model(2), tmp_path / "scratch.th")
    checked = tmp_path / f"cccc2222-{sha(tmp_path / 'scratch.th')[:8]}.th"
    (tmp_path / "scratch.th").rename(checked)
    weights = [[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.5], [1.0, 1.0, 0.0, 0.5]]
    write_yaml(tmp_path, ["aaaa0000", "bbbb1111", "cccc2222"], name="bag", weights=weights)

    sep = load_separator(tmp_path, name="bag")
    x = audio(n=1, seconds=1.5)
    expected = reference_stems(BagOfModels([tiny_model(s) for s in range(3)], weights), x)
    torch.testing.assert_close(sep.stems(x), expected, atol=1e-5, rtol=1e-5)
    assert set(sep.files) == {"bag.yaml", "aaaa0000.safetensors", "bbbb1111.th", checked.name}
    assert sep.files[checked.name] == sha(checked)


def test_th_checksum_mismatch_is_refused(tmp_path: Path):
    save_th(tiny_model(0), tmp_path / "aaaa0000-deadbeef.th")
    write_yaml(tmp_path, ["aaaa0000"])
    assert demucs_available(tmp_path) is None  # the cheap check does not read the weights
    with pytest.raises(ModelLoadingError, match="checksum"):
        load_separator(tmp_path)


def test_safetensors_preferred_over_th(safetensors_dir: Path):
    (safetensors_dir / "aaaa0000.th").write_bytes(b"not a pickle")
    sep = load_separator(safetensors_dir)
    assert "aaaa0000.th" not in sep.files


def test_safetensors_must_name_a_demucs_class(tmp_path: Path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "aaaa0000.safetensors"), {"klass": "os.system"})
    write_yaml(tmp_path, ["aaaa0000"])
    with pytest.raises(ValueError, match="not a demucs model"):
        load_separator(tmp_path)


def test_quiet_tracks_separate_like_loud_ones(safetensors_dir: Path):
    """The std normalisation: demucs's own input normalisation has an epsilon that would
    otherwise distort very quiet tracks."""
    sep = load_separator(safetensors_dir)
    x = audio(n=1)
    torch.testing.assert_close(sep.stems(x * 1e-5) / 1e-5, sep.stems(x), atol=1e-5, rtol=1e-4)


def test_silence_and_bad_shapes(safetensors_dir: Path):
    sep = load_separator(safetensors_dir)
    silent = np.zeros((1, 4000), dtype=np.float32)
    assert torch.isfinite(sep.residual(silent)).all()
    assert sep.stems(np.zeros((0, 100), dtype=np.float32)).shape == (0, 4, 100)
    short = np.array([[0.5], [-0.25]], dtype=np.float32)  # one sample: no std
    torch.testing.assert_close(sep.residual(short) + sep.remix(short), torch.from_numpy(short))
    with pytest.raises(ValueError, match=r"\[n, samples\]"):
        sep.stems(np.zeros(100, dtype=np.float32))


def _one_line_unavailable(directory: Path | None, name: str = DEFAULT_DEMUCS) -> str:
    with pytest.raises(DemucsUnavailable) as info:
        load_separator(directory, name)
    message = str(info.value)
    assert message and "\n" not in message
    assert demucs_available(directory, name) == message
    return message


def test_missing_yaml(tmp_path: Path):
    message = _one_line_unavailable(tmp_path)
    assert "htdemucs.yaml" in message and "ARTIFACTBENCH_DEMUCS" in message
    assert "does not exist" in _one_line_unavailable(tmp_path / "nowhere")


def test_bad_yaml(tmp_path: Path):
    (tmp_path / "htdemucs.yaml").write_text("models: [unclosed\n")
    assert "not valid YAML" in _one_line_unavailable(tmp_path)
    (tmp_path / "htdemucs.yaml").write_text("weights: [[1.0]]\n")
    assert "models:" in _one_line_unavailable(tmp_path)


def test_missing_model_file(safetensors_dir: Path):
    write_yaml(safetensors_dir, ["aaaa0000", "ffff9999"])
    message = _one_line_unavailable(safetensors_dir)
    assert "ffff9999" in message and "aaaa0000" not in message


def test_missing_package(safetensors_dir: Path, monkeypatch: pytest.MonkeyPatch):
    assert demucs_available(safetensors_dir) is None
    monkeypatch.setitem(sys.modules, "demucs", None)
    assert "pip install demucs" in _one_line_unavailable(safetensors_dir)


def test_demucs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ARTIFACTBENCH_DEMUCS", raising=False)
    assert demucs_dir() == cache_dir() / "demucs"
    monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(tmp_path))
    assert demucs_dir() == tmp_path
    assert demucs_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_env_var_is_used_by_default(safetensors_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARTIFACTBENCH_DEMUCS", str(safetensors_dir))
    assert demucs_available() is None
    assert load_separator().directory == safetensors_dir
