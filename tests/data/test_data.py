"""The split follows Keras's rule, batches are exact, every image is counted once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_mnist.data.batches import TensorBatches, epoch_order
from lightning_mnist.data.module import MNISTDataModule, keras_split, to_tensor
from lightning_mnist.data.verify import load_arrays


def test_keras_split_takes_the_last_fraction():
    train, val = keras_split(60000, 0.2)
    assert (train.start, train.stop) == (0, 48000)
    assert (val.start, val.stop) == (48000, 60000)
    # Keras: split_at = floor(n * (1 - split))
    assert keras_split(10, 0.25) == (range(0, 7), range(7, 10))


def _batches(n: int, shuffle: bool, rank: int = 0, world: int = 1, epoch: int = 0):
    x = torch.arange(n).unsqueeze(1)
    return TensorBatches(
        x,
        torch.arange(n),
        256,
        shuffle=shuffle,
        seed=7,
        epoch_fn=lambda: epoch,
        rank=rank,
        world_size=world,
    )


@pytest.mark.parametrize(
    ("n", "shuffle", "steps"), [(48000, True, 188), (12000, False, 47), (10000, False, 40)]
)
def test_step_counts_keep_the_partial_batch(n, shuffle, steps):
    b = _batches(n, shuffle)
    assert len(b) == steps
    sizes = [len(y) for _, y in b]
    assert len(sizes) == steps and sum(sizes) == n


def test_training_order_is_reshuffled_each_epoch_and_reproducible():
    assert not torch.equal(epoch_order(100, 0, 0), epoch_order(100, 0, 1))
    assert torch.equal(epoch_order(100, 3, 5), epoch_order(100, 3, 5))
    e0 = torch.cat([y for _, y in _batches(1000, True, epoch=0)])
    assert sorted(e0.tolist()) == list(range(1000))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_share_each_epoch_without_overlap(world):
    for epoch in range(2):
        per_rank = [
            torch.cat([y for _, y in _batches(48000, True, r, world, epoch)]) for r in range(world)
        ]
        union = torch.cat(per_rank)
        assert len(union) == 48000 and len(set(union.tolist())) == 48000
        assert len({len(_batches(48000, True, r, world)) for r in range(world)}) == 1
    for n in (12000, 10000):  # evaluation: every image exactly once over the ranks
        seen = torch.cat(
            [torch.cat([y for _, y in _batches(n, False, r, world)]) for r in range(world)]
        )
        assert sorted(seen.tolist()) == list(range(n))


def test_to_tensor_matches_the_tutorial_preprocessing():
    images = np.array([[[0, 128, 255] * 9 + [1]] * 28], dtype=np.uint8)
    x, y = to_tensor(images, np.array([3], dtype=np.uint8))
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    expected = images.astype("float32") / 255  # the tutorial's astype('float32'); x /= 255
    assert np.array_equal(x[0, 0].numpy(), expected[0])


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"validation_split": 0.0}, "validation_split"),
    ],
)
def test_bad_arguments_are_refused(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        MNISTDataModule(**kwargs)


@pytest.mark.real_data
def test_real_mnist_split_shapes_and_values(data_dir):
    dm = MNISTDataModule(str(data_dir), fetch=False)
    dm.setup("fit")
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    (xt, yt), (xv, yv), (xs, ys) = (dm.tensors[k] for k in ("train", "val", "test"))
    assert xt.shape == (48000, 1, 28, 28) and xv.shape == (12000, 1, 28, 28)
    assert xs.shape == (10000, 1, 28, 28) and xt.dtype == torch.float32
    assert float(xt.min()) == 0.0 and float(xt.max()) == 1.0
    assert dm.split_indices == {"train": range(0, 48000), "val": range(48000, 60000)}
    assert torch.equal(yv, torch.from_numpy(y_train[48000:].astype("int64")))
    assert torch.equal(xv[:, 0], torch.from_numpy(x_train[48000:]).float() / 255)
    assert torch.equal(ys, torch.from_numpy(y_test.astype("int64")))
    assert len(dm.test_dataloader()) == 40 and len(dm.val_dataloader()) == 47
    assert len(dm.train_dataloader()) == 188


def test_a_last_batch_smaller_than_the_processes_is_refused():
    from lightning_mnist.errors import ConfigError

    dm = MNISTDataModule(batch_size=256)
    dm.check_world_size(2, 48_000)  # 48,000 = 187 x 256 + 128: the last 128 split in two
    with pytest.raises(ConfigError, match="last batch has 3 images, fewer than the 4"):
        dm.check_world_size(4, 187 * 256 + 3)
    with pytest.raises(ConfigError, match="must divide by the 3 processes"):
        dm.check_world_size(3, 48_000)
