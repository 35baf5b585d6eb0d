"""The improved preset on the torch side: the network, the augmentation, the preset's wiring,
and one short real-data epoch. Its Keras twin and the transfer parity are in
``tests/parity/test_improved.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import REPO, cli_args

from lightning_mnist.cli import cli_main
from lightning_mnist.data.augment import affine_params, random_affine
from lightning_mnist.errors import ConfigError
from lightning_mnist.model import ImprovedCNN, count_params
from lightning_mnist.system import MNISTClassifier

IMPROVED = str(REPO / "configs" / "improved.yaml")
# conv 288 + 18,432 + 73,728; batch norm scale and shift 64 + 128 + 256;
# fc1 1,152 * 128 + 128; fc2 128 * 10 + 10.
IMPROVED_PARAMS = 288 + 18_432 + 73_728 + 64 + 128 + 256 + 147_584 + 1_290
# The preset (configs/improved.yaml) adds a second conv to blocks 2 and 3: conv2b 64 * 64 * 9
# with its batch norm 128, conv3b 128 * 128 * 9 with 256.
PRESET_CONVS = (1, 2, 2)
PRESET_PARAMS = IMPROVED_PARAMS + 36_864 + 128 + 147_456 + 256


def test_improved_network_shapes_and_parameters():
    model = ImprovedCNN()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert count_params(model) == IMPROVED_PARAMS == 241_770
    assert model.features(x).shape == (3, 128, 3, 3)
    bn = model.features.bn1
    assert (bn.eps, bn.momentum) == (1e-5, 0.1)  # Keras side: epsilon 1e-5, momentum 0.9
    preset = ImprovedCNN(convs=PRESET_CONVS)
    assert count_params(preset) == PRESET_PARAMS == 426_474
    assert preset(x).shape == (3, 10) and preset.features(x).shape == (3, 128, 3, 3)
    names = [n for n, m in preset.features.named_children() if isinstance(m, torch.nn.Conv2d)]
    assert names == ["conv1", "conv2", "conv2b", "conv3", "conv3b"]
    with pytest.raises(ConfigError, match="convs"):
        ImprovedCNN(convs=(1, 3, 1))


def test_the_system_selects_the_network_and_keeps_the_tutorial_default():
    assert isinstance(MNISTClassifier(arch="improved", hidden=128).model, ImprovedCNN)
    assert type(MNISTClassifier().model).__name__ == "TutorialCNN"
    with pytest.raises(ConfigError, match="tutorial network only"):
        MNISTClassifier(arch="improved", conv_pool="fused")
    with pytest.raises(ConfigError, match="improved network"):
        MNISTClassifier(convs=(1, 2, 2))


def test_augmentation_is_the_identity_at_zero_ranges():
    x = torch.rand(4, 1, 28, 28)
    assert random_affine(x) is x
    # The sampling path itself, at ranges too small to move a pixel, reproduces the input.
    near = random_affine(x, rotation=1e-6, zoom=1e-7, shift=1e-7)
    assert torch.allclose(near, x, atol=1e-4)


def test_augmentation_is_deterministic_under_a_seed():
    x = torch.rand(8, 1, 28, 28)
    a = random_affine(x, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(3))
    b = random_affine(x, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(3))
    c = random_affine(x, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(0)
    d = random_affine(x, 10, 0.1, 0.1)
    torch.manual_seed(0)
    assert torch.equal(d, random_affine(x, 10, 0.1, 0.1))  # the global generator, seeded


def test_augmentation_parameters_stay_in_their_ranges():
    p = affine_params(10_000, 10.0, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    assert p["angle"].abs().max() <= math.radians(10) and p["angle"].abs().max() > math.radians(9.9)
    assert 0.9 <= p["zoom"].min() < 0.901 and 1.099 < p["zoom"].max() <= 1.1
    assert p["shift_x"].abs().max() <= 0.1 and p["shift_y"].abs().max() <= 0.1


def _blob(n: int) -> torch.Tensor:
    """n copies of a centred bar, 3 px tall and 11 wide, well inside the image."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 13:16, 9:20] = 1.0
    return x


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mass, centroid (row, col) and the principal axis angle of each image."""
    img = x[:, 0]
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = img.sum((1, 2))
    r = (img * rows).sum((1, 2)) / mass
    c = (img * cols).sum((1, 2)) / mass
    dr, dc = rows - r[:, None, None], cols - c[:, None, None]
    mrr, mcc, mrc = ((img * v).sum((1, 2)) / mass for v in (dr * dr, dc * dc, dr * dc))
    angle = 0.5 * torch.atan2(2 * mrc, mcc - mrr)
    return mass, r, c, angle


def test_transformed_batches_move_within_the_configured_ranges():
    x, g = _blob(500), torch.Generator().manual_seed(0)
    mass0, r0, c0, angle0 = _moments(x)
    # Shift only: the centroid moves by at most 10% of 28 px (2.8 px) each way, and does move.
    _, r, c, _ = _moments(random_affine(x, shift=0.1, generator=g))
    assert (r - r0).abs().max() <= 2.8 + 0.05 and (c - c0).abs().max() <= 2.8 + 0.05
    assert (c - c0).abs().max() > 2.0
    # Rotation only: the bar turns by at most 10 degrees, the ink is kept.
    mass, _, _, angle = _moments(random_affine(x, rotation=10.0, generator=g))
    turned = torch.rad2deg((angle - angle0).abs())
    assert turned.max() <= 10.5 and turned.max() > 8.0
    assert torch.allclose(mass, mass0, rtol=0.03)
    # Zoom only: the ink of a smooth spot scales by the factor squared, 0.9^2 to 1.1^2 (a
    # smooth spot, because bilinear sampling blurs hard edges and adds ink at them).
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    spot = torch.exp(-((rows - 13.5) ** 2 + (cols - 13.5) ** 2) / (2 * 3.0**2)).expand(
        500, 1, 28, 28
    )
    ratio = _moments(random_affine(spot, zoom=0.1, generator=g))[0] / _moments(spot)[0]
    assert ratio.min() >= 0.81 - 0.01 and ratio.max() <= 1.21 + 0.01
    assert ratio.max() - ratio.min() > 0.3


def test_augmentation_reaches_training_batches_only(tiny_idx_dir, tmp_path):
    cli = cli_main(
        ["--config", IMPROVED, "--data.data_dir", str(tiny_idx_dir), "--data.fetch", "false",
         "--trainer.default_root_dir", str(tmp_path)],
        run=False,
    )  # fmt: skip
    dm = cli.datamodule
    assert dm.augment == {"rotation": 10.0, "zoom": 0.1, "shift": 0.1}
    batch = (torch.rand(4, 1, 28, 28), torch.arange(4))

    class Stage:
        training = True

    dm.trainer = Stage()
    moved = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(moved[0], batch[0]) and torch.equal(moved[1], batch[1])
    Stage.training = False
    assert dm.on_after_batch_transfer(batch, 0)[0] is batch[0]


def test_improved_preset_wires_its_recipe(tmp_path):
    cli = cli_main(["--config", IMPROVED, "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.model.model, ImprovedCNN) and cli.datamodule.batch_size == 128
    assert cli.trainer.max_epochs == 15
    optimizers, schedulers = cli.model.configure_optimizers()
    (adam,), (sched,) = optimizers, schedulers
    assert adam.param_groups[0]["lr"] == 0.002 and adam.param_groups[0]["eps"] == 1e-7
    assert isinstance(sched, torch.optim.lr_scheduler.ExponentialLR) and sched.gamma == 0.8


@pytest.mark.real_data
@pytest.mark.slow
def test_one_improved_epoch_on_real_mnist(data_dir, tmp_path):
    """One full epoch of the improved recipe, augmentation on. Measured (seed 0): 97.8% after
    one epoch (the Keras twin 97.8%; the first version, one conv per block, 96.0%). The floor,
    94%, fails what breaks the recipe: batch-norm statistics that eval mode cannot use give
    about 11%, and the tutorial's network itself needs 3 epochs for 96%."""
    args = cli_args(data_dir, tmp_path, "--trainer.max_epochs", "1", presets=(IMPROVED,))
    cli = cli_main(["fit", *args])
    r = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    print(f"improved, 1 epoch: test accuracy {r['test_accuracy']:.4f}")
    assert r["params"] == PRESET_PARAMS and r["epochs_run"] == 1
    assert r["test_accuracy"] >= 0.94
