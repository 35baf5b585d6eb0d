"""On a machine with a CUDA GPU (skipped, saying so, where torch sees none: the ``gpu`` marker,
tests/conftest.py): the tutorial preset trains and tests there, a CUDA forward matches the CPU,
and no training step synchronises with the host.

Each host sync makes the host wait for every kernel queued so far, which exposes the launch
latency of this network's many tiny kernels. The epoch's order reaches the device once an
epoch (``TensorBatches.indices``), the epoch sums stay on the device (``EpochSums``), and the
step loss is logged only on the steps a logger writes. ``benchmarks/gpu_check.sh`` runs this
file on a lent GPU machine.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import cli_args
from lightning.pytorch.loggers import CSVLogger

from lightning_mnist.cli import cli_main
from lightning_mnist.data.batches import TensorBatches
from lightning_mnist.network import conv_path
from lightning_mnist.system import MNISTClassifier

pytestmark = pytest.mark.gpu
STEPS = 12


@pytest.mark.real_data
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
    torch.manual_seed(0)
    model = MNISTClassifier().eval()
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-2, rtol=1e-2)


class NoSyncWindow(L.Callback):
    """Sync debug mode "error" from the start of step 2 to the end of the next-to-last step:
    the steps and the fetches of the batches after them (the first step warms up; the last
    one's end logs the epoch means, the one sync an epoch)."""

    def __init__(self) -> None:
        self.checked = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 1:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if 1 <= batch_idx <= STEPS - 2:
            self.checked += 1
        if batch_idx == STEPS - 2:
            torch.cuda.set_sync_debug_mode("default")


def test_no_host_sync_inside_the_training_steps(tmp_path):
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker runs this test only where CUDA is available")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(STEPS * 256, 1, 28, 28, generator=g).cuda()
    y = torch.randint(0, 10, (STEPS * 256,), generator=g).cuda()
    window = NoSyncWindow()
    trainer = L.Trainer(
        accelerator="gpu", devices=1, max_epochs=1, callbacks=[window],
        logger=CSVLogger(tmp_path), log_every_n_steps=1000,  # no logging step in the window
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    try:
        trainer.fit(MNISTClassifier(), train_dataloaders=TensorBatches(x, y, 256, shuffle=True))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert window.checked == STEPS - 2
