"""The one strict check of a state dict against a model's, shared by every torch backend."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def state_dict_problems(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> list[str]:
    """Every key `state` lacks or adds, and every shape that differs, as short phrases: a
    checkpoint that does not fit is refused naming all of them at once, not the first."""
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: shape {list(state[k].shape)} in the checkpoint, {list(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    return problems
