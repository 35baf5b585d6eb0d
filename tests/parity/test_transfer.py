"""Weight transfer between Keras files and TutorialCNN: exact round trips and clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import torch

from keras_reference.model import build_model
from lightning_mnist.interop.keras_weights import (
    export_keras_weights,
    keras_layout_state,
    load_keras_weights,
    read_keras_weights,
)
from lightning_mnist.model import TutorialCNN

pytestmark = pytest.mark.keras


def distinct_torch_model() -> TutorialCNN:
    """A model whose every tensor (biases included) is random, so a swap cannot go unseen."""
    model = TutorialCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


def assert_same_tensors(a: TutorialCNN, b: TutorialCNN) -> None:
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def keras_variant(filters: int = 32, dense: tuple[int, ...] = (32, 10)) -> keras.Sequential:
    """A Sequential CNN like the tutorial's, but with other sizes or another Dense stack."""
    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(filters, 3, activation="relu")]
    layers += [keras.layers.MaxPooling2D(2), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units) for units in dense]
    return keras.Sequential(layers)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_round_trip_torch_keras_torch_is_exact(tmp_path: Path) -> None:
    source = distinct_torch_model()
    weights = export_keras_weights(source, tmp_path / "torch.weights.h5")

    keras_model = build_model()
    keras_model.load_weights(weights)  # the file holds no optimizer state (Keras warns)
    expected = [a for pair in keras_layout_state(source).values() for a in pair]
    for got, want in zip(keras_model.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)

    keras_model.save(tmp_path / "model.keras")
    back = TutorialCNN()
    load_keras_weights(back, tmp_path / "model.keras")
    assert_same_tensors(source, back)


@pytest.mark.parametrize("name", ["model.keras", "best_model.h5", "model.weights.h5"])
def test_reads_every_keras_format(tmp_path: Path, name: str) -> None:
    keras_model = build_model()
    path = tmp_path / name
    if name.endswith(".weights.h5"):
        keras_model.save_weights(path)
    else:
        keras_model.save(path)  # .h5: the tutorial's legacy `best_model.h5` format
    torch_model = TutorialCNN()
    load_keras_weights(torch_model, path)
    got = [a for pair in keras_layout_state(torch_model).values() for a in pair]
    for g, want in zip(got, keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(g, want)


def test_reads_keras2_legacy_layout(tmp_path: Path) -> None:
    """tf.keras 2 files: ``layer_names``/``weight_names`` attributes and ``kernel:0`` datasets."""
    source = distinct_torch_model()
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"conv2d", b"max_pooling2d", b"flatten", b"dense", b"dense_1"]
        for layer, (kernel, bias) in zip(
            ("conv2d", "dense", "dense_1"), keras_layout_state(source).values(), strict=True
        ):
            names = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            root.create_group(layer).attrs["weight_names"] = names
            root[layer].create_dataset(f"{layer}/kernel:0", data=kernel)
            root[layer].create_dataset(f"{layer}/bias:0", data=bias)
        for layer in ("max_pooling2d", "flatten"):
            root.create_group(layer).attrs["weight_names"] = np.array([], dtype="S1")
    back = TutorialCNN()
    load_keras_weights(back, path)
    assert_same_tensors(source, back)


def test_kernel_layouts() -> None:
    """HWIO -> OIHW for the conv, (in, out) -> (out, in) for Dense, no fc1 row permutation."""
    model = distinct_torch_model()
    arrays = keras_layout_state(model)
    w = model.conv.weight.detach().numpy()
    assert arrays["conv"][0].shape == (3, 3, 1, 32)
    assert arrays["conv"][0][2, 0, 0, 5] == w[5, 0, 2, 0]  # kernel row 2, col 0, filter 5
    # Keras Flatten index of (h, w, c) is (h * 13 + w) * 32 + c; TutorialCNN flattens the same.
    assert arrays["fc1"][0][(4 * 13 + 7) * 32 + 3, 9] == model.fc1.weight[9, (4 * 13 + 7) * 32 + 3]


def test_wrong_filters_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "f16.weights.h5"
    keras_variant(filters=16).save_weights(path)
    model = TutorialCNN()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"layer conv has arrays \[\(3, 3, 1, 16\)"):
        load_keras_weights(model, path)
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)  # nothing was half-loaded
    load_keras_weights(TutorialCNN(filters=16), path)  # the matching size loads


def test_wrong_layer_count_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "three_dense.keras"
    keras_variant(dense=(32, 16, 10)).save(path)
    with pytest.raises(
        ValueError, match="expected the tutorial's 3 weighted layers.*found 4 with kernels"
    ):
        read_keras_weights(path)


def test_not_a_keras_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a Keras"):
        read_keras_weights(junk)
    with pytest.raises(FileNotFoundError):
        read_keras_weights(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        export_keras_weights(TutorialCNN(), tmp_path / "model.h5")
