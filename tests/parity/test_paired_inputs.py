"""``mnist-compare --paired``'s shared inputs: both frameworks compute the same batch order
(compared as arrays), Keras is fed it batch by batch across epochs, and the Keras reference's
paired options reach the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keras_reference import order
from keras_reference.tutorial import fit_data
from lightning_mnist.data.batches import TensorBatches, epoch_order

pytestmark = pytest.mark.keras


@pytest.mark.parametrize(
    ("n", "seed", "epoch"), [(48_000, 0, 0), (48_000, 4, 23), (7, 2**31 - 1, 1)]
)
def test_both_frameworks_compute_the_same_order(n, seed, epoch):
    port = epoch_order(n, seed, epoch)
    assert port.dtype == torch.int64
    np.testing.assert_array_equal(port.numpy(), order.epoch_order(n, seed, epoch))
    assert not np.array_equal(
        order.epoch_order(n, seed, epoch), order.epoch_order(n, seed, epoch + 1)
    )


def test_the_port_batches_are_the_keras_batches_epoch_after_epoch():
    n, batch = 10, 4  # 3 batches an epoch, the last of 2
    keras_batches = order.seeded_batches(np.arange(n), np.arange(n), batch, seed=5)
    port = TensorBatches(torch.arange(n), torch.arange(n), batch, shuffle=True, seed=5)
    for epoch in range(3):
        port.epoch_fn = lambda epoch=epoch: epoch
        for (x, _), idx in zip(
            [next(keras_batches) for _ in range(3)], port.indices(), strict=True
        ):
            np.testing.assert_array_equal(x, idx.numpy())


def test_keras_fit_data_seeded_feeds_the_training_rows_in_order_and_validates_on_the_rest():
    n, batch, seed = 20, 6, 3  # training rows 0..15 (the first 80%), 3 batches an epoch
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    y = np.eye(10, dtype=np.float32)[np.arange(n) % 10]
    data = fit_data(x, y, batch, "seeded", seed)
    assert data["steps_per_epoch"] == 3 and data["validation_batch_size"] == batch
    assert data["shuffle"] is False
    np.testing.assert_array_equal(data["validation_data"][0].ravel(), np.arange(16, 20))
    seen = [b[0].numpy().ravel() for b in data["x"].take(6)]  # two epochs
    for epoch in range(2):
        expected = order.epoch_order(16, seed, epoch)
        np.testing.assert_array_equal(np.concatenate(seen[3 * epoch : 3 * epoch + 3]), expected)
    assert [len(s) for s in seen[:3]] == [6, 6, 4]  # the partial batch is kept
    tutorial = fit_data(x, y, batch, "keras", seed)
    assert tutorial["validation_split"] == 0.2 and tutorial["batch_size"] == batch


def test_keras_reference_paired_options_reach_the_run(monkeypatch, tmp_path):
    import keras_reference.tutorial as tutorial
    from keras_reference.__main__ import main

    got = {}
    monkeypatch.setattr(tutorial, "run_tutorial", lambda **kw: got.update(kw) or {"seed": 0})
    monkeypatch.setattr("keras_reference.results.write_results", lambda out, results: out)
    args = ["--out", str(tmp_path / "run"), "--shuffle", "seeded", "--save_initial_weights", "true"]
    assert main(args) == 0
    assert (got["shuffle"], got["save_initial_weights"]) == ("seeded", True)
    assert main(["--out", str(tmp_path / "run2")]) == 0
    assert (got["shuffle"], got["save_initial_weights"]) == ("keras", False)  # the tutorial's


@pytest.mark.real_data
@pytest.mark.slow
def test_keras_saves_the_untrained_weights_the_port_then_loads(data_dir, tmp_path):
    import keras

    from keras_reference.model import build_model
    from keras_reference.tutorial import INITIAL_WEIGHTS_NAME, run_tutorial
    from lightning_mnist.interop.keras_weights import read_keras_weights

    results = run_tutorial(
        data_dir, tmp_path, epochs=1, patience=2, batch_size=256, seed=3, verbose=0,
        shuffle="seeded", save_initial_weights=True,
    )  # fmt: skip
    assert (results["shuffle"], results["initial_weights"]) == ("seeded", INITIAL_WEIGHTS_NAME)
    keras.utils.set_random_seed(3)  # the same seed builds the same untrained network
    expected = build_model().get_weights()
    saved = read_keras_weights(tmp_path / INITIAL_WEIGHTS_NAME)
    got = [a for layer in ("conv", "fc1", "fc2") for a in saved[layer]]
    for g, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, want)
    trained = keras.models.load_model(tmp_path / "best_model.h5").get_weights()
    assert not np.array_equal(trained[0], expected[0])  # and training moved on from it
