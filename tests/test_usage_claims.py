"""What docs/usage.md promises about evaluating, resuming and recording a run, on tiny data.

Each test runs the real command in this process on tiny IDX files (``tiny_mnist`` makes the
CLI's "mnist" their size), so no real MNIST is needed and each fit takes about a second.
"""

from __future__ import annotations

import csv
import importlib
import platform
from pathlib import Path

import pytest
import torch
from helpers import cli_args
from lightning.pytorch.callbacks import timer
from test_hostile import CASES, World, listing
from test_records import _fit, tiny_mnist  # noqa: F401 (tiny_mnist: autouse fixture)

from lightning_mnist import cli as cli_module
from lightning_mnist.cli import cli_main, main
from lightning_mnist.ops import malloc

# The tiny files: 64 training images, of which the last 13 validate (Keras's 20% split);
# 32 test images.
VAL_IMAGES, TEST_IMAGES = 13, 32


def _args(data: Path, root: Path, *extra: str) -> list[str]:
    return cli_args(data, root, "--data.batch_size", "8", "--early_stopping", "null", *extra)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _evaluate(command: str, data: Path, root: Path, ckpt: str, capsys) -> tuple[object, str]:
    """Run ``command --ckpt_path ckpt``; return the CLI and what it printed."""
    capsys.readouterr()
    cli = cli_main([command, *_args(data, root, "--ckpt_path", ckpt)])
    return cli, capsys.readouterr().out


def test_validate_test_and_predict_take_the_newest_runs_last_checkpoint(
    tiny_idx_dir, tmp_path, capsys
):
    # usage.md: `validate`, `test` and `predict` take `--ckpt_path last` (the newest run's
    # last.ckpt) and print which file they took. Two runs of different seeds tell them apart.
    one_epoch = ("--trainer.max_epochs", "1")
    older, _ = _fit(tiny_idx_dir, tmp_path, *one_epoch)
    newest, run = _fit(tiny_idx_dir, tmp_path, *one_epoch, "--seed_everything", "1")
    assert run.name == "version_1" and older["test_loss"] != newest["test_loss"]
    last = run / "checkpoints" / "last.ckpt"

    cli, out = _evaluate("validate", tiny_idx_dir, tmp_path, "last", capsys)
    assert f"validate: {last} (--ckpt_path last)" in out
    assert f"Run folder: {cli.run_dir}" in out.splitlines() and cli.run_dir.name == "version_2"
    metrics = cli.trainer.callback_metrics
    assert metrics["val_samples"] == VAL_IMAGES
    # last.ckpt holds the weights the fit validated at the end of its only epoch.
    assert metrics["val_loss"].item() == pytest.approx(newest["history"]["val_loss"][0], rel=1e-5)

    cli, out = _evaluate("test", tiny_idx_dir, tmp_path, "last", capsys)
    assert f"test: {last} (--ckpt_path last)" in out
    assert f"Run folder: {cli.run_dir}" in out.splitlines() and cli.run_dir.name == "version_3"
    metrics = cli.trainer.callback_metrics
    assert metrics["test_samples"] == TEST_IMAGES == newest["test_samples"]
    # One epoch: the fit's tested best checkpoint holds the same weights as last.ckpt.
    assert newest["best_model"].startswith("checkpoints/best-01-")
    assert metrics["test_loss"].item() == pytest.approx(newest["test_loss"], rel=1e-5)

    cli, out = _evaluate("predict", tiny_idx_dir, tmp_path, "last", capsys)
    assert f"predict: {last} (--ckpt_path last)" in out
    predicted = _rows(Path(cli.trainer.log_dir) / "predictions.csv")
    tested = _rows(run / "test_predictions.csv")
    assert len(predicted) == TEST_IMAGES
    assert [(r["label"], r["predicted"]) for r in predicted] == [
        (r["label"], r["predicted"]) for r in tested
    ]


def test_validate_a_named_checkpoint(tiny_idx_dir, tmp_path, capsys):
    # usage.md: `validate --config ... --ckpt_path CKPT` validates that checkpoint.
    res, run = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2")
    best = run / res["best_model"]
    epoch = res["best_epoch"] - 1
    cli, _ = _evaluate("validate", tiny_idx_dir, tmp_path, str(best), capsys)
    metrics = cli.trainer.callback_metrics
    assert metrics["val_samples"] == VAL_IMAGES
    assert metrics["val_loss"].item() == pytest.approx(res["history"]["val_loss"][epoch], rel=1e-5)
    assert metrics["val_accuracy"].item() == pytest.approx(
        res["history"]["val_accuracy"][epoch], rel=1e-5
    )
    assert res["history"]["val_loss"][0] != res["history"]["val_loss"][1]  # the epoch matters


def test_optimizer_flags_do_not_change_a_resumed_runs_optimizer(tiny_idx_dir, tmp_path, capsys):
    # usage.md: a resumed run takes its optimizer's settings from the checkpoint and says so;
    # --optimizer.* flags shape new runs only.
    _, run = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1")
    capsys.readouterr()
    resumed = ("--trainer.max_epochs", "2", "--ckpt_path", "last", "--optimizer.lr", "0.5")
    cli_main(["fit", *_args(tiny_idx_dir, tmp_path, *resumed)])
    assert "Resumed optimizer state: lr 0.001" in capsys.readouterr().out
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1  # the second epoch (0-based) was trained with that state
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == 1e-3 and group["eps"] == 1e-7


@pytest.mark.parametrize("named", ["file", "last"])
def test_a_flag_contradicting_the_checkpoint_is_refused_on_a_resumed_fit(
    named, tiny_idx_dir, tmp_path, capsys
):
    # usage.md: `--model.conv_pool fused` on a native checkpoint is refused, for fit too, and
    # for `--ckpt_path last` as for the file it names.
    _, run = _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1")
    last = str(run / "checkpoints" / "last.ckpt") if named == "file" else "last"
    before = listing(tmp_path)
    capsys.readouterr()
    argv = _args(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", last)
    assert main(["fit", *argv, "--model.conv_pool", "fused"]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out + err, err[-2000:]
    assert lines[0].startswith("error: --model.conv_pool fused contradicts the checkpoint")
    assert "conv_pool native" in lines[0]
    assert listing(tmp_path) == before  # nothing trained, written or cleaned


def test_resuming_last_keeps_the_runs_own_hyper_parameters(tiny_idx_dir, tmp_path, capsys):
    # usage.md: `last` is resolved to its file before Lightning reads the checkpoint, so a run
    # trained with --model.dropout 0.25 resumes with 0.25 although the config says 0.5.
    _fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1", "--model.dropout", "0.25")
    resumed = ("--trainer.max_epochs", "2", "--ckpt_path", "last")
    cli = cli_main(["fit", *_args(tiny_idx_dir, tmp_path, *resumed)])
    assert cli.model.hparams.dropout == 0.25
    assert cli.model.model.dropout.p == 0.25


def _fit_counting_malloc(data: Path, root: Path, monkeypatch, *extra: str) -> tuple[dict, list]:
    calls = []

    def spy() -> bool:
        calls.append(malloc.tune_malloc())
        return calls[-1]

    monkeypatch.setattr(cli_module, "tune_malloc", spy)
    res, _ = _fit(data, root, "--trainer.max_epochs", "2", *extra)
    return res, calls


def test_tune_malloc_is_recorded_and_false_turns_it_off(tiny_idx_dir, tmp_path, monkeypatch):
    # usage.md: results.json's tune_malloc says whether the glibc allocator setting applied;
    # on by default, `--tune_malloc false` turns it off; it changes no number.
    off, off_calls = _fit_counting_malloc(
        tiny_idx_dir, tmp_path / "off", monkeypatch, "--tune_malloc", "false"
    )
    on, on_calls = _fit_counting_malloc(tiny_idx_dir, tmp_path / "on", monkeypatch)
    assert off_calls == [] and off["tune_malloc"] is False
    assert on_calls == [platform.libc_ver()[0] == "glibc"]
    assert on["tune_malloc"] is on_calls[0]
    assert on["history"] == off["history"] and on["test_loss"] == off["test_loss"]


def test_without_history_recorder_one_line_and_no_results(tiny_idx_dir, tmp_path, capsys):
    # usage.md: without HistoryRecorder in trainer.callbacks no results.json is written; the
    # run says so in one line and carries on.
    own = "[{class_path: lightning_mnist.run.resume.SaveOnInterrupt}]"
    argv = _args(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1", "--trainer.callbacks", own)
    capsys.readouterr()
    assert main(["fit", *argv]) == 0
    out, err = capsys.readouterr()
    said = [line for line in out.splitlines() if "HistoryRecorder" in line]
    assert said == ["no HistoryRecorder in trainer.callbacks: results.json and plots not written"]
    run = tmp_path / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()  # the fit itself carried on
    assert not (run / "results.json").exists() and not list(run.glob("*.png"))
    assert "Traceback" not in out + err


PARSER_CASES = (
    "unknown-key",
    "conv-pool-choice",
    "bad-type",
    "union-precision",
    "union-logger",
    "nested-lr",
    "callback-missing-argument",
)


@pytest.mark.parametrize(
    ("make", "words"), [pytest.param(*c[1:], id=c[0]) for c in CASES if c[0] in PARSER_CASES]
)
def test_a_parser_error_points_at_help(make, words, tmp_path, capsys):
    # usage.md: parser errors are the one useful line plus a pointer to --help, not the usage
    # screen.
    argv = make(World(tmp_path, tmp_path))
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], err[-2000:]
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"(see `lightning-mnist {argv[0]} --help`)")
    assert "usage:" not in out + err and "Traceback" not in out + err


def test_a_parser_error_of_another_subcommand_points_at_its_help(tmp_path, capsys):
    world = World(tmp_path, tmp_path)
    assert main(world.sub("validate", "--model.unknown_key", "3")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown_key" in err
    assert err.endswith("(see `lightning-mnist validate --help`)")


def test_a_misspelt_subcommand_points_at_the_commands_help(capsys):
    # The pointer must name a help that exists: `lightning-mnist fitt --help` does not.
    assert main(["fitt", "--config", "tutorial"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'fitt'" in err, err
    assert err.endswith("(see `lightning-mnist --help`)"), err


def test_an_abbreviated_option_is_refused_not_taken_for_the_longer_one(tmp_path, capsys):
    # usage.md: unknown keys are refused. argparse would take --trainer.max_epoch for
    # --trainer.max_epochs and train; the parsers are built with allow_abbrev=False.
    world = World(tmp_path, tmp_path)
    assert main(world.sub("fit", "--trainer.max_epoch", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert "unrecognized arguments: --trainer.max_epoch 1" in err, err


class StepClock:
    """Lightning's Timer reads this clock: one second per finished training step."""

    now = 0.0

    @classmethod
    def monotonic(cls) -> float:
        return cls.now


def test_max_time_cuts_an_epoch_and_validates_where_it_stopped(tiny_idx_dir, tmp_path, monkeypatch):
    # usage.md: an epoch cut short by --trainer.max_time has its seconds and null training
    # means; its validation values are those of the validation Lightning runs at the cut.
    tick = timer.Timer.on_train_batch_end

    def step_then_check(self, *args, **kwargs):
        StepClock.now += 1
        tick(self, *args, **kwargs)

    monkeypatch.setattr(StepClock, "now", 0.0)
    monkeypatch.setattr(timer, "time", StepClock)
    monkeypatch.setattr(timer.Timer, "on_train_batch_end", step_then_check)
    # 7 steps an epoch: 10 "seconds" end the second epoch after 3 of its steps.
    limit = ("--trainer.max_epochs", "3", "--trainer.max_time", "00:00:00:10")
    res, run = _fit(tiny_idx_dir, tmp_path, *limit)
    h = res["history"]
    assert StepClock.now == 10 and len(res["epoch_seconds"]) == 2 and res["epochs_run"] == 2
    assert h["loss"][0] is not None and h["loss"][1:] == [None] and h["accuracy"][1:] == [None]
    validated = [r for r in _rows(run / "metrics.csv") if r["val_loss"]]
    assert [int(r["epoch"]) for r in validated] == [0, 1]  # measured in each epoch
    assert h["val_loss"] == pytest.approx([float(r["val_loss"]) for r in validated])
    assert h["val_accuracy"] == pytest.approx([float(r["val_accuracy"]) for r in validated])


ABBREVIATED = {  # each command's option cut short: a typo to refuse, never a prefix to take
    "lightning_mnist.data.cli": ["verify", "--data.data_di", "nowhere"],
    "lightning_mnist.compare.cli": ["--report_only", "true", "--seed", "3"],
    "lightning_mnist.compare.bench": ["--repeat", "1"],
    "lightning_mnist.interop.export": ["--ckpt", "nowhere.ckpt"],
    "keras_reference.__main__": ["--data.data_di", "nowhere"],
}


@pytest.mark.parametrize("module", list(ABBREVIATED))
def test_every_command_refuses_an_abbreviated_option(module, capsys):
    argv = ABBREVIATED[module]
    try:
        status = importlib.import_module(module).main(argv)
    except SystemExit as e:  # python -m keras_reference leaves parser errors to jsonargparse
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and f"unrecognized arguments: {' '.join(argv[-2:])}" in err[-1], err
