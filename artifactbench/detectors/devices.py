"""Compute devices named on the command line, checked before any work starts.

A device that is misspelt or that this machine cannot use is refused up front: otherwise a run
would go on (a model falling back to the CPU, or skipped) and record a device nobody used.
torch is imported only when a CUDA device is asked for, so `--device cpu` stays cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHOICES = ("cpu", "cuda", "cuda:N")
_SPEC = re.compile(r"(cpu|cuda)(?::([0-9]+))?")


class DeviceError(ValueError):
    """A device that is malformed or not usable here; the message is one line for the user."""


@dataclass(frozen=True)
class Device:
    """A parsed device: `kind` is "cpu" or "cuda"; `index` is N of `cuda:N`, if given."""

    kind: str
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(spec: str) -> Device:
    """`cpu`, `cuda` or `cuda:N` (any case, surrounding spaces ignored); anything else refused."""
    match = _SPEC.fullmatch(spec.strip().lower())
    if match is None or (match[1] == "cpu" and match[2] is not None):
        raise DeviceError(f"unknown device {spec!r}; choose from: {', '.join(CHOICES)}")
    return Device(match[1], None if match[2] is None else int(match[2]))


def cuda_problem(device: Device) -> str | None:
    """Why torch cannot run on this CUDA device here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed, so nothing here can use a GPU; use --device cpu"
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"this torch build has no CUDA (torch {torch.__version__}); use --device cpu"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return f"torch {torch.__version__} sees no GPU here{where}; use --device cpu"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"only {count} GPU(s) visible here (cuda:0 to cuda:{count - 1})"
    return None


def check_device(spec: str) -> str:
    """The canonical spelling of a device this machine can use; DeviceError says why not."""
    device = parse_device(spec)
    if device.kind == "cuda":
        problem = cuda_problem(device)
        if problem is not None:
            raise DeviceError(f"{device}: {problem}")
    return str(device)


def default_batch_size(device: str) -> int:
    """Tracks per detector call when none is asked for: a batch buys throughput on a GPU; on a
    CPU it buys nothing measurable, only memory."""
    return 16 if device.startswith("cuda") else 4


def module_device(module: torch.nn.Module) -> str:
    """Where a torch module's weights live ("cpu", "cuda:0"): the device it actually runs on."""
    for tensor in module.parameters():
        return str(tensor.device)
    for tensor in module.buffers():
        return str(tensor.device)
    return "cpu"
