"""The torch model is the tutorial's: shapes, parameter count, Keras initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_mnist.model import TutorialCNN, count_params


def test_output_shape_and_logits():
    out = TutorialCNN()(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


def test_parameter_count_equals_keras():
    # Conv 32*(3*3*1)+32 = 320; Dense 5408*32+32 = 173,088; Dense 32*10+10 = 330.
    assert count_params(TutorialCNN()) == 173_738
    assert (
        count_params(TutorialCNN(filters=16, hidden=64))
        == 16 * 9 + 16 + 13 * 13 * 16 * 64 + 64 + 650
    )


def test_keras_initialisation_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    m = TutorialCNN(keras_init=True)
    for layer, fan_in, fan_out in ((m.conv, 9, 32 * 9), (m.fc1, 5408, 32), (m.fc2, 32, 10)):
        limit = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert torch.all(layer.bias == 0)
        assert float(w.abs().max()) <= limit
        # A uniform(-a, a) sample has std a / sqrt(3).
        assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.15)
    assert not torch.all(TutorialCNN(keras_init=False).fc1.bias == 0)


def test_pool_before_relu_is_the_same_function():
    torch.manual_seed(0)
    a, b = TutorialCNN(pool_before_relu=False).eval(), TutorialCNN(pool_before_relu=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(a(x), b(x))
    c = TutorialCNN().eval().to(memory_format=torch.channels_last)
    c.load_state_dict(a.state_dict())
    assert torch.allclose(c(x.contiguous(memory_format=torch.channels_last)), a(x), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"dropout": 1.0}, {"dropout": -0.1}, {"filters": 0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        TutorialCNN(**kwargs)


def _pair():
    torch.manual_seed(0)
    native = TutorialCNN(conv_pool="native").to(memory_format=torch.channels_last)
    fast = TutorialCNN(conv_pool="fused")
    fast.load_state_dict(native.state_dict())
    return native, fast


def test_fused_conv_pool_matches_pytorch_forward_and_gradients():
    from lightning_mnist import fused

    assert fused.available(), "the C kernel did not build (is a C compiler installed?)"
    native, fast = _pair()
    x = torch.rand(37, 1, 28, 28)  # an odd batch: uneven per-thread ranges
    x[:5, :, :10] = 0  # blank regions give exact ties in the pooling windows
    y = torch.randint(0, 10, (37,))
    for m in (native, fast):
        m.eval()
        torch.nn.functional.cross_entropy(m(x), y).backward()
    # float32 sums in another order: a few ulps of the largest terms
    assert torch.allclose(native(x), fast(x), atol=1e-6)
    for p, q in zip(native.parameters(), fast.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5)


def test_fused_ties_go_to_the_first_window_position():
    from lightning_mnist.fused import ConvPoolReLU

    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.zeros(1, 1, 28, 28)  # every window ties at the bias
    w = conv.weight.detach().requires_grad_()
    b = torch.tensor([0.5, -0.5], requires_grad=True)  # ReLU keeps channel 0, cuts channel 1
    out = ConvPoolReLU.apply(x, w, b)
    assert out.shape == (1, 13, 13, 2)
    out.sum().backward()
    # one position per window (not four), and nothing through ReLU's zeros
    assert torch.equal(b.grad, torch.tensor([169.0, 0.0]))


def test_fused_is_deterministic():
    _, fast = _pair()
    fast.eval()  # no dropout: both passes see the same function
    x = torch.rand(64, 1, 28, 28)
    grads = []
    for _ in range(2):
        fast.zero_grad()
        fast(x).sum().backward()
        grads.append([p.grad.clone() for p in fast.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_auto_falls_back_to_pytorch_without_the_kernel(monkeypatch):
    from lightning_mnist import fused

    native, _ = _pair()
    auto = TutorialCNN(conv_pool="auto").to(memory_format=torch.channels_last)
    auto.load_state_dict(native.state_dict())
    monkeypatch.setattr(fused, "available", lambda: False)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(auto.eval()(x), native.eval()(x))
    with pytest.raises(RuntimeError, match="fused"):
        TutorialCNN(conv_pool="fused")(x)
