"""The progress bar counts epochs from 1 of max_epochs and shows no logger version; turning
the bar off or bringing one's own still works."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import TQDMProgressBar
from test_lightning_native import built

from lightning_mnist.run.progress import RunRichProgressBar, RunTQDMProgressBar


def test_the_cli_uses_the_run_bar(tmp_path):
    assert isinstance(built(tmp_path).trainer.progress_bar_callback, RunRichProgressBar)


def test_the_bar_can_be_turned_off(tmp_path):
    cli = built(tmp_path, "--trainer.enable_progress_bar", "false")
    assert cli.trainer.progress_bar_callback is None


def test_a_users_own_bar_is_kept(tmp_path):
    cli = built(tmp_path, "--trainer.callbacks+", "TQDMProgressBar")
    bar = cli.trainer.progress_bar_callback
    assert type(bar) is TQDMProgressBar
    assert not any(isinstance(c, RunRichProgressBar) for c in cli.trainer.callbacks)


@pytest.mark.parametrize(("epoch", "epochs", "text"), [(0, 100, "Epoch 1/100"), (4, -1, "Epoch 5")])
def test_epochs_count_from_one(epoch, epochs, text):
    bar = RunRichProgressBar()
    bar._trainer = SimpleNamespace(current_epoch=epoch, max_epochs=epochs)
    assert bar._get_train_description(epoch).strip() == text


@pytest.mark.parametrize("kind", [RunRichProgressBar, RunTQDMProgressBar])
def test_no_logger_version_among_the_metrics(kind, tmp_path):
    cli = built(tmp_path)
    cli.trainer.strategy.connect(cli.model)  # the module knows its trainer, as in fit
    metrics = kind().get_metrics(cli.trainer, cli.model)
    assert "v_num" not in metrics
    assert "v_num" in TQDMProgressBar().get_metrics(cli.trainer, cli.model)  # upstream shows it
