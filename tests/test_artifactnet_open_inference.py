"""The CPU inference path of the open ArtifactNet against the torch graph it stands in for: the
scipy median filters are bit-identical, P(AI) of the shipped model stays within 1e-6, and
training, gradients and export never leave the torch graph."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from artifactbench.detectors.artifactnet_open import features, inference
from artifactbench.detectors.artifactnet_open.detector import read_weights
from artifactbench.detectors.artifactnet_open.features import (
    fast_path_applies,
    median_filter,
    reference_path,
)
from artifactbench.detectors.artifactnet_open.model import ArtifactNetConfig, ArtifactNetOpen

RATE = 44100
SEGMENT = 176400
SHIPPED = Path(features.__file__).parents[2] / "data" / "models" / "artifactnet_open.pt"


class Spy:
    """Wraps a function and counts its calls."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def scipy_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy(features._scipy_median)
    monkeypatch.setattr(features, "_scipy_median", spy)
    return spy


@pytest.fixture
def logits_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy(inference.logits)
    monkeypatch.setattr(inference, "logits", spy)
    return spy


@pytest.fixture(scope="module")
def shipped() -> ArtifactNetOpen:
    model, _, _ = read_weights(SHIPPED)
    return model


def small_model(seed: int = 0, bounded: bool = True) -> ArtifactNetOpen:
    """A small random model whose BatchNorms hold non-trivial running statistics and affine
    parameters, so that folding them into the convolutions is really exercised."""
    torch.manual_seed(seed)
    model = ArtifactNetOpen(dataclasses.replace(ArtifactNetConfig.small(), bounded=bounded))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.2 * torch.randn(n, generator=gen))
    return model.eval()


def chunks(n_samples: int = SEGMENT) -> torch.Tensor:
    """Noise at three levels, a tone, clicks on silence, a tone burst and silence."""
    rng = np.random.default_rng(7)
    t = np.arange(n_samples) / RATE
    clicks = np.zeros(n_samples)
    clicks[:: RATE // 8] = 0.9
    burst = np.where((t > 1.0) & (t < 2.5), 0.4 * np.sin(2 * np.pi * 1234.5 * t), 0.0)
    rows = [
        np.clip(0.5 * rng.standard_normal(n_samples), -1, 1),
        0.05 * rng.standard_normal(n_samples),
        1e-4 * rng.standard_normal(n_samples),
        0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 3100.0 * t),
        clicks,
        burst + 0.01 * rng.standard_normal(n_samples),
        np.zeros(n_samples),
    ]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


@pytest.mark.parametrize(
    ("shape", "kernel", "ties"),
    [
        ((2, 513, 345), 31, False),  # the paper's spectrogram of a 4 s chunk
        ((1, 513, 345), 31, True),  # ties everywhere: small integers
        ((3, 40, 33), 7, True),
        ((2, 20, 12), 31, False),  # both axes shorter than the window: mirrored twice over
        ((1, 5, 3), 31, True),
        ((2, 1, 50), 31, False),  # a single bin
        ((1, 31, 31), 31, False),
    ],
)
def test_scipy_median_is_the_torch_median_bit_for_bit(shape, kernel, ties, scipy_spy) -> None:
    rng = np.random.default_rng(sum(shape) + kernel)
    data = rng.integers(0, 4, shape) if ties else rng.exponential(0.1, shape)
    x = torch.from_numpy(data.astype(np.float32))
    for dim in (-1, -2, 1, 2):
        with reference_path():
            expected = median_filter(x, kernel, dim)
        calls = scipy_spy.calls
        got = median_filter(x, kernel, dim)
        assert scipy_spy.calls == calls + 1
        assert got.shape == expected.shape == x.shape and got.dtype == torch.float32
        assert torch.equal(got, expected), f"dim {dim}"


def test_scipy_median_under_inference_mode_and_in_float64(scipy_spy) -> None:
    x = torch.from_numpy(np.random.default_rng(3).exponential(1.0, (2, 60, 45)))
    with reference_path():
        expected = [median_filter(x, 31, d) for d in (-1, -2)]
    with torch.inference_mode():
        got = [median_filter(x, 31, d) for d in (-1, -2)]
    assert scipy_spy.calls == 2
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == torch.float64 and torch.equal(g, e)


def test_nan_stays_with_the_torch_median(scipy_spy) -> None:
    x = torch.rand(1, 40, 50)
    x[0, 10, 20] = float("nan")
    with reference_path():
        expected = median_filter(x, 31, -1)
    got = median_filter(x, 31, -1)
    assert scipy_spy.calls == 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    nan = torch.isnan(got[0, 10])
    assert bool(nan[5:36].all()) and not bool(nan[:5].any() or nan[36:].any())


def test_median_that_needs_a_gradient_keeps_the_torch_graph(scipy_spy) -> None:
    data = torch.from_numpy(np.random.default_rng(4).exponential(0.1, (2, 45, 40)))
    weights = torch.linspace(-1, 1, 40, dtype=torch.float64)
    grads = []
    for reference in (False, True):
        x = data.clone().requires_grad_()
        with reference_path() if reference else torch.enable_grad():
            out = median_filter(x, 31, -1) * weights + median_filter(x, 31, -2)
        out.square().sum().backward()
        grads.append(x.grad)
    assert scipy_spy.calls == 0
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])


def test_fast_path_rules() -> None:
    model = small_model()
    x = torch.zeros(1, 1000)
    with torch.no_grad():
        assert fast_path_applies(x, model)
        with reference_path():
            assert not fast_path_applies(x, model)
        assert not fast_path_applies(x, model.train())
    model.eval()
    assert not fast_path_applies(x, model), "parameters need gradients"
    assert fast_path_applies(x)
    assert not fast_path_applies(x.clone().requires_grad_())
    with torch.no_grad():
        assert fast_path_applies(x.clone().requires_grad_())
        assert not fast_path_applies(x.to("meta"))


def test_shipped_model_scores_within_1e_6_of_the_torch_graph(
    shipped: ArtifactNetOpen, logits_spy: Spy, scipy_spy: Spy
) -> None:
    audio = chunks()
    with torch.inference_mode():
        with reference_path():
            expected = shipped(audio)
        assert logits_spy.calls == 0 and scipy_spy.calls == 0
        got = shipped(audio)
    assert logits_spy.calls == 1
    assert scipy_spy.calls == 2 * len(audio)
    assert got.shape == expected.shape == (len(audio),)
    assert float((got - expected).abs().max()) <= 1e-6
    # The scores spread over the range, so agreement is not saturation at 0 or 1.
    assert float(expected.max() - expected.min()) > 0.1


def test_shipped_features_are_bit_identical_on_the_fast_median(shipped: ArtifactNetOpen) -> None:
    with torch.no_grad():
        _, residual = shipped.unet(shipped.stft(chunks()[:4]))
        with reference_path():
            expected = shipped.features(residual)
        got = shipped.features(residual)
    assert torch.equal(got, expected)


def test_a_nan_chunk_stays_nan_and_leaves_the_others_alone(shipped: ArtifactNetOpen) -> None:
    audio = chunks()[:3].clone()
    audio[1, 1000] = float("nan")
    with torch.inference_mode():
        with reference_path():
            expected = shipped(audio)
        got = shipped(audio)
    assert bool(torch.isnan(got[1])) and bool(torch.isnan(expected[1]))
    assert float((got[[0, 2]] - expected[[0, 2]]).abs().max()) <= 1e-6


@pytest.mark.parametrize("bounded", [True, False])
def test_folded_unet_matches_the_modules(bounded: bool) -> None:
    model = small_model(seed=1, bounded=bounded)
    mag = model.stft(chunks(RATE))
    with torch.no_grad():
        expected_mask, expected_residual = model.unet(mag)
        mask, residual = inference.UNetPlan(model.unet)(mag)
    torch.testing.assert_close(mask, expected_mask, rtol=0, atol=1e-6)
    torch.testing.assert_close(residual, expected_residual, rtol=1e-5, atol=1e-6)


def test_folded_conv_of_one_input_channel() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 8, 3, padding=1)
    norm = torch.nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        x = torch.randn(2, 1, 30, 41)
        expected = torch.relu(norm(conv(x)))
        got = inference.FoldedConv(conv, norm, relu=True)(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 8, 10), (2, 4, 7, 9), (1, 2, 3, 5)])
def test_max_pool2_is_max_pool2d(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    x.view(-1)[3] = float("nan")
    expected = torch.nn.functional.max_pool2d(x, 2)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = inference.max_pool2(x.contiguous(memory_format=layout))
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)


def test_training_keeps_the_torch_graph_and_its_gradients(logits_spy: Spy, scipy_spy: Spy) -> None:
    """In train mode the loss and every parameter gradient are those of the torch graph."""
    model = small_model(seed=2).train()
    audio = chunks(RATE)[:4]
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    runs = []
    for reference in (False, True):
        model.load_state_dict(state)
        model.zero_grad()
        torch.manual_seed(0)
        with reference_path() if reference else torch.enable_grad():
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(audio), target)
        loss.backward()
        runs.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    with torch.no_grad():
        model.logits(audio)  # train mode without gradients: still the torch graph
    assert logits_spy.calls == 0 and scipy_spy.calls == 0
    (loss, grads), (ref_loss, ref_grads) = runs
    assert torch.equal(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    assert all(torch.equal(grads[n], ref_grads[n]) for n in grads)
    assert grads["unet.head.weight"].abs().sum() > 0


def test_eval_mode_with_gradients_keeps_the_torch_graph(logits_spy: Spy, scipy_spy: Spy) -> None:
    model = small_model(seed=3)
    audio = chunks(RATE)[:2].requires_grad_()
    model.logits(audio).sum().backward()
    assert logits_spy.calls == 0 and scipy_spy.calls == 0
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    with torch.no_grad():
        model.logits(audio)
    assert logits_spy.calls == 1


def test_traced_model_keeps_the_torch_median(scipy_spy: Spy) -> None:
    """A trace records the torch ops, so the traced graph is right for any other input too."""
    model = small_model(seed=4)
    audio = chunks(RATE)
    with torch.no_grad():
        traced = torch.jit.trace(model, (audio[:2],), check_trace=False)
        assert scipy_spy.calls == 0
        with reference_path():
            expected = model(audio[2:5])
        got = traced(audio[2:5])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
