"""Records that never invent (issue: numbers a comparison can trust): under each Trainer
setting that changes when an epoch ends or whether it is validated, an epoch's history holds
only what was measured in it, and results.json is strict JSON that says what ran.

Settings covered: ``max_steps`` (an epoch cut short, as ``max_time`` and a Ctrl-C cut it),
``val_check_interval`` (validation partway through an epoch), ``check_val_every_n_epoch``
(epochs without validation), ``limit_train_batches`` (an earlier epoch end) and
``limit_test_batches`` (a partial test), plus a resume (timing across processes).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import cli_args

from lightning_mnist.cli import cli_main
from lightning_mnist.data import catalogue
from lightning_mnist.data.batches import TensorBatches
from lightning_mnist.data.catalogue import make_spec
from lightning_mnist.system import MNISTClassifier

# Tiny IDX files: 64 training images, 51 after the 20% validation split; batch 8 gives 7 steps.
STEPS = 7


@pytest.fixture(autouse=True)
def tiny_mnist(monkeypatch):
    """The CLI's "mnist" is the tiny IDX files' size (the checks stay on)."""
    monkeypatch.setitem(catalogue.DATASETS, "mnist", make_spec("mnist", "MNIST", 64, 32))


def _strict(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}, which strict JSON parsers reject")

    return json.loads(path.read_text(), parse_constant=refuse)


def _fit(data: Path, root: Path, *extra: str) -> tuple[dict, Path]:
    args = cli_args(data, root, "--data.batch_size", "8", "--early_stopping", "null", *extra)
    cli = cli_main(["fit", *args])
    return _strict(cli.run_dir / "results.json"), cli.run_dir


def _metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_an_epoch_cut_short_records_nothing_it_did_not_measure(tiny_idx_dir, tmp_path):
    # max_steps ends the second epoch after 3 of its 7 steps, before its training means and
    # its validation: they are null, not the first epoch's values copied forward.
    res, _ = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "3", "--trainer.max_steps", "10")
    h = res["history"]
    assert h["loss"][0] is not None and h["val_loss"][0] is not None
    assert h["loss"][1:] == [None] and h["accuracy"][1:] == [None]
    assert h["val_loss"][1:] == [None] and h["val_accuracy"][1:] == [None]
    assert len(res["epoch_seconds"]) == 2 and res["epochs_run"] == 2


def test_validating_twice_an_epoch_records_its_last_validation(tiny_idx_dir, tmp_path):
    res, run_dir = _fit(
        tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--trainer.val_check_interval", "0.5"
    )
    rows = [r for r in _metrics(run_dir) if r.get("val_loss")]
    assert len(rows) == 4  # two validations in each of the two epochs
    by_epoch = {}
    for r in rows:
        by_epoch.setdefault(int(r["epoch"]), []).append(float(r["val_loss"]))
    assert res["history"]["val_loss"] == pytest.approx([by_epoch[0][-1], by_epoch[1][-1]])
    assert by_epoch[0][0] != by_epoch[0][-1]  # the mid-epoch value differs: the test can tell
    assert all(v is not None for v in res["history"]["loss"])


def test_epochs_without_validation_have_null_validation_values(tiny_idx_dir, tmp_path):
    every_2 = ("--trainer.check_val_every_n_epoch", "2", "--checkpoint", "null")
    res, _ = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "3", *every_2)
    h = res["history"]
    # Validated in epoch 2 only: epoch 3 does not inherit epoch 2's values.
    assert [v is None for v in h["val_loss"]] == [True, False, True]
    assert [v is None for v in h["val_accuracy"]] == [True, False, True]
    assert None not in h["loss"]
    assert res["best_epoch"] == 2  # the one validated epoch, not the unvalidated first


def test_validation_turned_off_runs_without_a_val_monitor_and_invents_no_best(
    tiny_idx_dir, tmp_path, capsys
):
    # EarlyStopping and the best checkpoint watch val_loss; limit_val_batches 0 removes it.
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--trainer.max_epochs", "2")
    cli = cli_main(["fit", *args, "--trainer.limit_val_batches", "0"])
    assert "validation off" in capsys.readouterr().out
    res = _strict(cli.run_dir / "results.json")
    assert res["best_epoch"] is None and res["best_model"] == "" and res["epochs_run"] == 2
    assert res["history"]["val_loss"] == [None, None] and None not in res["history"]["loss"]
    assert sorted(p.name for p in (cli.run_dir / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize(("flag", "seed"), [("false", None), ("7", 7)])
def test_the_recorded_seed_is_the_one_set(flag, seed, tiny_idx_dir, tmp_path):
    res, _ = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1", "--seed_everything", flag)
    assert res["seed"] == seed  # unseeded: null, not 0


def test_a_plot_draws_no_val_line_without_validation(tmp_path, monkeypatch):
    from lightning_mnist.run import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plots.plot_curve([0.5, 0.4], [float("nan")] * 2, "loss", "upper right", tmp_path / "l.png")
    plots.plot_curve([0.5, 0.4], [None, 0.3], "loss", "upper right", tmp_path / "m.png")
    assert [[line.get_label() for line in f.axes[0].lines] for f in figures] == [
        ["train"],
        ["train", "val"],
    ]


def test_limits_keep_the_record_and_the_predictions_on_the_same_images(tiny_idx_dir, tmp_path):
    res, run_dir = _fit(
        tiny_idx_dir,
        tmp_path,
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.limit_test_batches",
        "2",
    )
    assert res["history"]["loss"][0] is not None  # the epoch ended after its 3rd step
    assert res["test_samples"] == 16  # 2 batches of 8 of the 32 test images
    lines = (run_dir / res["test_predictions"]).read_text().splitlines()
    assert len(lines) - 1 == res["test_samples"]
    assert res["precision"] == "32-true"
    assert res["data_dir"] == str(tiny_idx_dir.resolve())


def test_fit_seconds_and_timing_cover_the_same_span_across_a_resume(tiny_idx_dir, tmp_path):
    first, run_dir = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1")
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--early_stopping", "null")
    cli_main(["fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    res = _strict(run_dir / "results.json")
    t = res["timing"]
    assert len(res["epoch_seconds"]) == 2
    assert t["before_resume"] > 0 and res["fit_seconds"] > first["fit_seconds"]
    assert res["fit_seconds"] >= sum(res["epoch_seconds"]) + (t["data"] or 0) + (
        t["checkpoint"] or 0
    )
    assert t["fit_other"] >= 0


def test_the_step_loss_is_logged_only_on_the_steps_a_logger_writes(
    tiny_idx_dir, tmp_path, monkeypatch
):
    names = []
    original = MNISTClassifier.log

    def spy(self, name, *args, **kwargs):
        names.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(MNISTClassifier, "log", spy)
    _, run_dir = _fit(
        tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "3"
    )
    # 14 steps; Lightning writes after steps 3, 6, 9 and 12.
    assert names.count("train_loss_step") == 4
    assert sum(1 for r in _metrics(run_dir) if r.get("train_loss_step")) == 4


def test_every_batch_is_a_view_of_one_per_epoch_order_on_the_data_device():
    x, y = torch.zeros(50, 1, 2, 2), torch.arange(50)
    for shuffle in (True, False):
        batches = TensorBatches(x, y, 8, shuffle=shuffle, rank=1, world_size=2)
        idx = batches.indices()
        assert len({i.untyped_storage().data_ptr() for i in idx}) == 1
    meta = TensorBatches(x.to("meta"), y.to("meta"), 8, shuffle=True)
    assert {i.device.type for i in meta.indices()} == {"meta"}


def test_a_one_epoch_plot_shows_its_point(tmp_path, monkeypatch):
    # The plot both frameworks' runs draw (keras_reference's plot_curve calls it too).
    from lightning_mnist.run import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plots.plot_curve([0.9], [0.95], "accuracy", "lower right", tmp_path / "accuracy.png")
    (ax,) = figures[0].axes
    left, right = ax.get_xlim()
    assert [t for t in ax.get_xticks() if left <= t <= right] == [1.0] and right - left >= 1
    assert all(line.get_marker() == "o" for line in ax.lines)  # a point, not an empty line
    assert (tmp_path / "accuracy.png").stat().st_size > 0
