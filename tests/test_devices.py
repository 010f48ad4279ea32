"""`--device`: refused up front when misspelt or unusable here, and each detector records where it
actually computed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from artifactbench.benches.base import Bench
from artifactbench.detectors import artifactnet_onnx as an
from artifactbench.detectors.base import FitPlan, LoadContext
from artifactbench.detectors.devices import (
    Device,
    DeviceError,
    check_device,
    cuda_problem,
    module_device,
    parse_device,
)
from artifactbench.detectors.fakeprint import FakeprintFit
from artifactbench.detectors.registry import backend, cards, resolve_models
from artifactbench.runner import RunOptions, run
from tests.conftest import RATE
from tests.test_artifactnet_onnx import mean_square_graph
from tests.test_cli import cli

# Every command that takes --device; a bench that does not exist makes the old behaviour (the
# device accepted) fail fast with another message instead of scoring anything.
DEVICE_COMMANDS = [
    ["run", "--bench", "folder:/no/such/dir"],
    ["codec", "--bench", "folder:/no/such/dir"],
    ["bandwidth", "--bench", "folder:/no/such/dir"],
]


@pytest.mark.parametrize(
    ("spec", "device"),
    [
        ("cpu", Device("cpu")),
        ("cuda", Device("cuda")),
        ("cuda:0", Device("cuda", 0)),
        ("cuda:12", Device("cuda", 12)),
        (" CUDA:1 ", Device("cuda", 1)),
        ("Cpu", Device("cpu")),
    ],
)
def test_parse_device_accepts_cpu_cuda_and_cuda_n(spec: str, device: Device) -> None:
    assert parse_device(spec) == device


@pytest.mark.parametrize(
    "spec", ["tpu", "gpu", "mps", "", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "cpu:0", "cuda0"]
)
def test_parse_device_refuses_anything_else_naming_the_choices(spec: str) -> None:
    with pytest.raises(DeviceError) as info:
        parse_device(spec)
    assert str(info.value) == f"unknown device {spec!r}; choose from: cpu, cuda, cuda:N"


def test_device_prints_canonically() -> None:
    assert [str(Device("cpu")), str(Device("cuda")), str(Device("cuda", 3))] == [
        "cpu",
        "cuda",
        "cuda:3",
    ]


def test_cpu_is_checked_without_importing_torch() -> None:
    code = (
        "import sys; from artifactbench.detectors.devices import check_device; "
        "print(check_device(' CPU '), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["cpu", "False"]


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, gpus: int, build: str | None = "12.4") -> None:
    """torch as a CUDA build would report itself with `gpus` visible devices."""
    monkeypatch.setattr(torch.version, "cuda", build)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def test_cuda_build_with_gpus_accepts_visible_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, gpus=2)
    assert check_device("cuda") == "cuda"
    assert check_device("CUDA:1") == "cuda:1"
    with pytest.raises(DeviceError, match=r"^cuda:2: only 2 GPU\(s\) visible here \(cuda:0 to "):
        check_device("cuda:2")


def test_cuda_build_without_a_visible_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, gpus=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError) as info:
        check_device("cuda:0")
    message = str(info.value)
    assert message.startswith("cuda:0: torch ") and "sees no GPU here" in message
    assert "CUDA_VISIBLE_DEVICES=''" in message and message.endswith("use --device cpu")


def test_cpu_only_torch_build_is_refused_with_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, gpus=0, build=None)
    problem = cuda_problem(Device("cuda"))
    assert problem == f"this torch build has no CUDA (torch {torch.__version__}); use --device cpu"


@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=lambda c: c[0])
def test_cli_unknown_device_is_one_line_naming_the_choices(
    tmp_path: Path, command: list[str]
) -> None:
    done = cli(*command, "--device", "tpu", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: Invalid value for '--device': unknown device 'tpu'; choose from: cpu, cuda, cuda:N"
    ], done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine can use CUDA")
@pytest.mark.parametrize(
    ("command", "device"),
    [(DEVICE_COMMANDS[0], "cuda"), (DEVICE_COMMANDS[0], "cuda:1")]
    + [(command, "cuda") for command in DEVICE_COMMANDS[1:]],
    ids=lambda x: x[0] if isinstance(x, list) else x,
)
def test_cli_cuda_without_a_gpu_exits_2_with_the_reason(
    tmp_path: Path, command: list[str], device: str
) -> None:
    done = cli(*command, "--device", device, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    reason = cuda_problem(parse_device(device))
    assert reason is not None
    assert lines == [f"error: Invalid value for '--device': {device}: {reason}"], done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine can use CUDA")
def test_cli_ray_engine_with_cuda_is_refused_here_too(tmp_path: Path) -> None:
    done = cli("run", "--engine", "ray", "--num-gpus", "1", "--device", "cuda", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for '--device': cuda: ")


def test_module_device_is_where_the_weights_are() -> None:
    assert module_device(torch.nn.Linear(2, 1)) == "cpu"
    assert module_device(torch.nn.BatchNorm1d(2, affine=False)) == "cpu"  # buffers only
    assert module_device(torch.nn.ReLU()) == "cpu"


def _fakeprint_fit(path: Path) -> Path:
    path.write_text(FakeprintFit((0.0,), 0.0, RATE, {"note": "by hand"}).to_json())
    return path


def test_fakeprint_records_the_cpu_from_a_file_and_from_a_cached_fit(tmp_path: Path) -> None:
    card = cards()["fakeprint"]
    weights = _fakeprint_fit(tmp_path / "fit.json")
    from_file = backend(card).load(card, weights, LoadContext(device="cpu"))
    assert from_file.provenance["device"] == "cpu"
    plan = FitPlan(weights, lambda: iter(()), {})
    cached = backend(card).load(card, None, LoadContext(device="cpu", fit_plan=plan))
    assert cached.provenance["source"] == "cached fit"
    assert cached.provenance["device"] == "cpu"


def test_onnx_records_the_provider_it_got_not_the_one_asked_for(tmp_path: Path) -> None:
    graph = mean_square_graph(tmp_path / "tiny.onnx")
    card = cards()["artifactnet"]
    for asked in ("cpu", "cuda", "cuda:1"):
        prov = an.load(card, graph, LoadContext(device=asked)).provenance
        assert prov["requested_device"] == asked
        if "CUDAExecutionProvider" not in prov["providers"]:
            assert prov["device"] == "cpu", asked


def test_onnx_device_names_the_cuda_provider_and_its_gpu() -> None:
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert an.provider_device(both, {"CUDAExecutionProvider": {"device_id": "1"}}) == "cuda:1"
    assert an.provider_device(both, {}) == "cuda:0"
    assert an.provider_device(["CPUExecutionProvider"], {}) == "cpu"


def test_open_artifactnet_records_the_device_of_its_weights() -> None:
    card = cards()["artifactnet-open-demo"]
    detector = backend(card).load(card, None, LoadContext(device="cpu"))
    assert detector.provenance["device"] == "cpu"
    assert detector.provenance["requested_device"] == "cpu"
    assert detector.provenance["device"] == str(next(detector.model.parameters()).device)


def test_run_json_records_each_detectors_device(file_bench: Bench, tmp_path: Path) -> None:
    options = RunOptions(out=tmp_path / "runs", workers=0, split="test", device="cpu")
    result = run(file_bench, resolve_models("counting,fakeprint"), options)
    detectors = json.loads((result.run_dir / "run.json").read_text())["detectors"]
    assert {d: detectors[d]["provenance"]["device"] for d in detectors} == {
        "counting": "cpu",
        "fakeprint": "cpu",
    }
