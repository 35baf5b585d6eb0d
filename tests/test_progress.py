"""The progress bar counts epochs from 1 of max_epochs and shows no logger version; turning
the bar off or bringing one's own still works."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from helpers import cli_args
from lightning.pytorch.callbacks import TQDMProgressBar
from test_lightning_native import built
from test_records import tiny_mnist  # noqa: F401 (autouse: tiny IDX files pass the checks)

from lightning_mnist.cli import cli_main
from lightning_mnist.run import progress
from lightning_mnist.run.progress import EpochLines, RunRichProgressBar, RunTQDMProgressBar


def test_the_cli_uses_the_run_bar_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: True)
    assert isinstance(built(tmp_path).trainer.progress_bar_callback, RunRichProgressBar)


def test_the_cli_prints_epoch_lines_elsewhere(tmp_path, monkeypatch):
    # A bar is redrawn only on a terminal: in a log file it would appear once, at the end.
    monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: False)
    assert isinstance(built(tmp_path).trainer.progress_bar_callback, EpochLines)


def test_an_epoch_line_shows_only_what_its_epoch_measured(tiny_idx_dir, tmp_path, capsys):
    # Validation every second epoch: the bar still holds epoch 2's val_ values during epoch 3.
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--trainer.max_epochs", "3")
    args[args.index("--trainer.enable_progress_bar") + 1] = "true"
    cli_main(["fit", *args, "--trainer.check_val_every_n_epoch", "2"])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("Epoch ")]
    assert ["val_loss" in x for x in lines] == [False, True, False], lines
    assert all("loss" in x.split(":")[1] for x in lines), lines


def test_a_first_epoch_cut_before_validation_keeps_early_stopping_and_says_only_its_time(
    tiny_idx_dir, tmp_path, capsys
):
    # max_steps 3 of the epoch's 7: no val_loss yet for the preset's EarlyStopping to read.
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--trainer.max_steps", "3")
    args[args.index("--trainer.enable_progress_bar") + 1] = "true"
    cli = cli_main(["fit", *args])
    assert any(type(c).__name__ == "EarlyStopping" for c in cli.trainer.callbacks)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("Epoch ")]
    assert len(lines) == 1 and re.fullmatch(r"Epoch 1/100: \([\d.]+ s\)", lines[0]), lines


def test_a_log_file_gets_one_line_per_epoch(tiny_idx_dir, tmp_path, capsys):
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--trainer.max_epochs", "2")
    args[args.index("--trainer.enable_progress_bar") + 1] = "true"  # on, as a user has it
    cli_main(["fit", *args])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("Epoch ")]
    assert [x.split(":")[0] for x in lines] == ["Epoch 1/2", "Epoch 2/2"], lines
    names = r"loss [\d.]+, accuracy [\d.]+, val_loss [\d.]+, val_accuracy [\d.]+"
    assert all(re.search(rf": {names} \([\d.]+ s\)$", x) for x in lines), lines


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


def test_a_disabled_epoch_line_bar_prints_nothing(capsys):
    # ProgressBar.disable() is Lightning's public switch (e.g. on the processes that are not
    # rank 0); a disabled bar must not reach for the trainer's metrics.
    bar = EpochLines()
    bar.disable()
    bar.on_train_epoch_end(SimpleNamespace(is_global_zero=True), None)
    assert capsys.readouterr().out == ""
