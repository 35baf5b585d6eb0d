"""The improved preset in both frameworks: the same layers and parameter count, and weight
transfer both ways (batch-norm statistics included, eval mode) on the 10,000 test images:
max |Δ softmax| <= 1e-5 and 10,000/10,000 equal predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from keras_reference.improved import RandomAffine, affine, build_improved_model
from lightning_mnist.data.augment import affine_params, apply_affine
from lightning_mnist.interop.keras_weights import keras_layout_state, load_keras_state
from lightning_mnist.model import ImprovedCNN, count_params

pytestmark = pytest.mark.keras

WEIGHTED = ("conv1", "bn1", "conv2", "bn2", "conv2b", "bn2b", "conv3", "bn3", "conv3b", "bn3b")
WEIGHTED += ("fc1", "fc2")
PRESET_CONVS = (1, 2, 2)  # keras_reference.improved.CONVS, configs/improved.yaml's model.convs


def random_torch_model() -> ImprovedCNN:
    """Every weight random, and batch-norm statistics far from their (0, 1) start."""
    model = ImprovedCNN(convs=PRESET_CONVS)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0.0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def torch_softmax(model: ImprovedCNN, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)[:, None]), dim=1).numpy()


def assert_same_outputs(keras_model, torch_model, x: np.ndarray) -> None:
    k = keras_model.predict(x[..., None], batch_size=1000, verbose=0)
    t = torch_softmax(torch_model, x)
    diff = float(np.abs(k - t).max())
    same = int((k.argmax(1) == t.argmax(1)).sum())
    print(f"max |Δ softmax| {diff:.2e}, equal predictions {same}/{len(x)}")
    assert diff <= 1e-5 and same == len(x)


def test_same_layers_and_parameter_count():
    keras_model = build_improved_model()
    torch_model = ImprovedCNN(convs=PRESET_CONVS)
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert trainable == count_params(torch_model) == 426_474
    single = build_improved_model(convs=(1, 1, 1))
    trainable = sum(int(np.prod(w.shape)) for w in single.trainable_weights)
    assert trainable == count_params(ImprovedCNN()) == 241_770
    names = [layer.name for layer in keras_model.layers if layer.weights]
    assert names == list(WEIGHTED)
    assert keras_model.output_shape == (None, 10)
    bn = keras_model.get_layer("bn1")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)  # torch's 0.1 and 1e-5


def test_torch_to_keras_transfer(mnist):
    source = random_torch_model()
    keras_model = build_improved_model()
    for name, arrays in keras_layout_state(source).items():
        keras_model.get_layer(name).set_weights(arrays)
    assert_same_outputs(keras_model, source, mnist.x_test)


def test_keras_to_torch_transfer(mnist):
    keras_model = build_improved_model()
    # Statistics away from their start, as after training.
    for name in ("bn1", "bn2", "bn2b", "bn3", "bn3b"):
        layer = keras_model.get_layer(name)
        gamma, beta, mean, var = layer.get_weights()
        rng = np.random.default_rng(0)
        layer.set_weights(
            [
                rng.normal(1, 0.1, gamma.shape).astype("float32"),
                rng.normal(0, 0.1, beta.shape).astype("float32"),
                rng.normal(0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ]
        )
    target = ImprovedCNN(convs=PRESET_CONVS).eval()
    arrays = {name: keras_model.get_layer(name).get_weights() for name in WEIGHTED}
    load_keras_state(target, arrays)
    assert_same_outputs(keras_model, target, mnist.x_test)


def test_transfer_refuses_another_size():
    arrays = keras_layout_state(ImprovedCNN(channels=(16, 32, 64)))
    with pytest.raises(ValueError, match="layer conv1"):
        load_keras_state(ImprovedCNN(), arrays)
    single = keras_layout_state(ImprovedCNN())  # no conv2b: another architecture
    with pytest.raises(ValueError, match="layer conv2b"):
        load_keras_state(ImprovedCNN(convs=PRESET_CONVS), single)


def test_augmentation_is_the_same_map_in_both_frameworks(mnist):
    """The same angles, zooms and shifts give the same images in Keras and in the port (one
    bilinear resampling each), and the layer acts in training only."""
    p = affine_params(1000, 10.0, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    x = mnist.x_train[:1000]
    mine = apply_affine(torch.from_numpy(x)[:, None], p)[:, 0].numpy()
    theirs = affine(x[..., None], *(p[k].numpy() for k in ("angle", "zoom", "shift_x", "shift_y")))
    diff = float(np.abs(np.asarray(theirs)[..., 0] - mine).max())
    print(f"max |Keras affine - port affine| {diff:.1e}")
    assert diff <= 1e-5
    layer = build_improved_model().get_layer("augment")
    assert isinstance(layer, RandomAffine)
    np.testing.assert_array_equal(
        np.asarray(layer(x[:4, ..., None], training=False)), x[:4, ..., None]
    )
    assert not np.allclose(np.asarray(layer(x[:4, ..., None], training=True)), x[:4, ..., None])


@pytest.mark.real_data
@pytest.mark.slow
def test_one_improved_keras_epoch_on_real_mnist(data_dir, tmp_path):
    """The Keras twin, one epoch through the real command: the same floor as the port's
    (tests/test_improved.py says why)."""
    from keras_reference.__main__ import main

    out = tmp_path / "run"
    args = ["--preset", "improved", "--trainer.max_epochs", "1", "--data.data_dir", str(data_dir)]
    assert main([*args, "--out", str(out), "--verbose", "2"]) == 0
    r = json.loads((out / "results.json").read_text())
    print(f"keras improved, 1 epoch: test accuracy {r['test_accuracy']:.4f}")
    assert r["preset"] == "improved" and r["epochs_run"] == 1
    assert r["test_accuracy"] >= 0.94
