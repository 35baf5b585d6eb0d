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


def test_pooling_before_relu_is_the_keras_order():
    # Keras: Conv2D(activation="relu") then MaxPooling2D; the model pools first (they commute).
    torch.manual_seed(0)
    a = TutorialCNN().eval()
    x = torch.rand(8, 1, 28, 28)
    keras_order = torch.max_pool2d(torch.relu(a.conv(x)), 2).permute(0, 2, 3, 1).flatten(1)
    assert torch.equal(a.features(x), keras_order)
    c = TutorialCNN().eval().to(memory_format=torch.channels_last)
    c.load_state_dict(a.state_dict())
    assert torch.allclose(c(x.contiguous(memory_format=torch.channels_last)), a(x), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"dropout": 1.0}, {"dropout": -0.1}, {"filters": 0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        TutorialCNN(**kwargs)
