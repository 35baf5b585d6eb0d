"""On a machine with a CUDA GPU: the tutorial preset trains and tests there (skipped, saying
so, where torch sees none: the ``gpu`` marker, tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
from helpers import cli_args

from lightning_mnist.cli import cli_main
from lightning_mnist.network import conv_path

pytestmark = [pytest.mark.gpu, pytest.mark.real_data]


def test_the_tutorial_preset_runs_on_the_gpu(data_dir, tmp_path, capsys):
    extra = ("--trainer.accelerator", "gpu", "--trainer.fast_dev_run", "true")
    extra += ("--model.conv_pool", "auto")  # the fused operator is CPU-only: native on CUDA
    cli = cli_main(["fit", *cli_args(data_dir, tmp_path, *extra)])
    assert cli.trainer.state.finished
    device = cli.trainer.strategy.root_device
    assert device.type == "cuda" and next(cli.model.parameters()).device.type == "cuda"
    assert conv_path(cli.model.model, device) == "native"
    assert "fast_dev_run: test accuracy" in capsys.readouterr().out


def test_a_cuda_forward_matches_the_cpu():
    """The same weights give the same logits on both devices. Where TF32 is on, each input of
    a conv or matmul is rounded to 2**-11 relative; through fc1's 5408-term dot products that
    moves a logit by about 1e-3, so 1e-2 absolute and relative leaves a margin."""
    from lightning_mnist.system import MNISTClassifier

    torch.manual_seed(0)
    model = MNISTClassifier().eval()
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-2, rtol=1e-2)
