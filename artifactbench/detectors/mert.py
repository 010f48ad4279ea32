"""MERT-v1 snapshots loaded into transformers' own `HubertModel`: no code from the snapshot runs.

MERT's published modelling code (`modeling_MERT.py`, m-a-p/MERT-v1-95M) subclasses HubertModel
and changes it only where three options ask: a CQT branch (`feature_extractor_cqt`), deepnorm's
scaled residuals and `attention_relax`. MERT-v1-95M uses none of them, so it is HuBERT's
post-layer-norm encoder (`do_stable_layer_norm` false, group-norm conv feature extractor) with
MERT's feature projection (layer norm over conv_dim[-1], then Linear), which is what
`HubertFeatureProjection` computes with `feat_proj_layer_norm`. Its config therefore maps field
for field onto `HubertConfig` and its checkpoint onto HubertModel's keys; a config using any of
the three is refused. `HubertModel(config, output_hidden_states=True)` gives hidden_states[0] as
the input to the first layer (after positional conv + layer norm), then every layer's output, on
transformers 4 and 5 alike; tests/fixtures/mert-v1-95m-random proves them equal to MERT's own
code's. `masked_spec_embed` (present when `mask_time_prob` > 0, as in MERT-v1-95M) is loaded and
never used at inference: HuBERT masks only in training or when given `mask_time_indices`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from artifactbench.detectors.base import Unavailable
from artifactbench.detectors.checkpoints import state_dict_problems

LOADER = "HubertModel (no remote code)"
MODEL_TYPE = "mert_model"
PREFIXES = ("mert_model.", "hubert.")  # MERTModel's base_model_prefix, HubertModel's
# The positional conv's weight norm: torch's old hook names <-> its parametrization names.
POS_CONV = "encoder.pos_conv_embed.conv."
WEIGHT_NORM = {
    POS_CONV + "weight_g": POS_CONV + "parametrizations.weight.original0",
    POS_CONV + "weight_v": POS_CONV + "parametrizations.weight.original1",
}
# MERTConfig's fields that HubertConfig shares, with MERTConfig's defaults (configuration_MERT.py)
# for a config.json that omits one; `conv_pos_batch_norm` postdates MERT-v1 (its conv is the
# weight-normed one).
MERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout": 0.1,
    "activation_dropout": 0.1, "attention_dropout": 0.1, "feat_proj_layer_norm": True,
    "feat_proj_dropout": 0.0, "final_dropout": 0.1, "layerdrop": 0.1, "initializer_range": 0.02,
    "layer_norm_eps": 1e-5, "feat_extract_norm": "group", "feat_extract_activation": "gelu",
    "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False, "conv_pos_batch_norm": False,
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False, "apply_spec_augment": True,
    "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2,
    "mask_feature_prob": 0.0, "mask_feature_length": 10, "mask_feature_min_masks": 0,
    "ctc_loss_reduction": "sum", "ctc_zero_infinity": False, "use_weighted_layer_sum": False,
    "classifier_proj_size": 256, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}  # fmt: skip
OPT_IN = "only MERT's own code runs it: opt in with trust_remote_code: true on the card's encoder"

T = TypeVar("T")


class MertCheckpointError(ValueError):
    """A MERT checkpoint whose keys or shapes are not HubertModel's; the message names each."""


def is_mert(folder: Path) -> bool:
    """Whether the snapshot's config.json is a MERT config (read as JSON, nothing imported)."""
    path = folder / "config.json"
    return path.is_file() and json.loads(path.read_text()).get("model_type") == MODEL_TYPE


def hubert_config(mert: Mapping[str, Any]) -> Any:
    """The `HubertConfig` computing what MERT's code computes for this config.json, or
    Unavailable naming what HuBERT cannot express."""
    from transformers import HubertConfig

    if mert.get("model_type") != MODEL_TYPE:
        raise Unavailable(f"model_type {mert.get('model_type')!r} is not {MODEL_TYPE!r}", OPT_IN)
    unsupported = [f"{k}: {mert[k]}" for k in ("feature_extractor_cqt", "deepnorm") if mert.get(k)]
    if float(mert.get("attention_relax", -1.0)) > 0:
        unsupported.append(f"attention_relax: {mert['attention_relax']}")
    if unsupported:
        raise Unavailable(
            f"MERT config uses what HubertModel cannot compute ({', '.join(unsupported)})", OPT_IN
        )
    return HubertConfig(**{key: mert.get(key, default) for key, default in MERT_DEFAULTS.items()})


def map_state(state: Mapping[str, T], model_keys: Collection[str]) -> dict[str, T]:
    """Checkpoint keys renamed to the model's: a model prefix stripped, the positional conv's
    weight-norm names translated either way to those the installed torch uses."""
    renames = {**WEIGHT_NORM, **{new: old for old, new in WEIGHT_NORM.items()}}
    mapped: dict[str, T] = {}
    for key, value in state.items():
        key = next((key.removeprefix(p) for p in PREFIXES if key.startswith(p)), key)
        if key not in model_keys and renames.get(key) in model_keys:
            key = renames[key]
        mapped[key] = value
    return mapped


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    """The snapshot's tensors: model.safetensors if present, else pytorch_model.bin (tensors
    only, `weights_only`)."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise MertCheckpointError(f"{folder}: no model.safetensors or pytorch_model.bin")


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """`state` mapped and loaded strictly; every missing, unexpected or misshapen key named."""
    expected = model.state_dict()
    mapped = map_state(state, expected)
    problems = state_dict_problems(mapped, expected)
    if problems:
        found = "; ".join(problems)
        raise MertCheckpointError(f"MERT checkpoint does not fit HubertModel: {found}")
    model.load_state_dict(mapped, strict=True)


def load_mert(folder: Path) -> tuple[Any, Any]:
    """HubertModel (eval, float32) and Wav2Vec2FeatureExtractor from a MERT snapshot folder."""
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    config = hubert_config(json.loads((folder / "config.json").read_text()))
    model = HubertModel(config)
    load_state(model, read_state(folder))
    kind = json.loads((folder / "preprocessor_config.json").read_text())
    kind = kind.get("feature_extractor_type", Wav2Vec2FeatureExtractor.__name__)
    if kind != Wav2Vec2FeatureExtractor.__name__:
        raise Unavailable(f"{folder}: feature extractor {kind}, not Wav2Vec2's", OPT_IN)
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder, local_files_only=True)
    return model.eval(), extractor
