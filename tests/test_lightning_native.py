"""Lightning's conventions: every option reaches its target, the whole setup is in the config,
loggers and callbacks can be swapped or removed, the optimizer comes from the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers import REPO, TUTORIAL, cli_args
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

from lightning_mnist.cli import MNISTCLI, cli_main, main
from lightning_mnist.network import conv_path
from lightning_mnist.run.checkpointing import AtomicCheckpointIO
from lightning_mnist.run.logger import RunLogger
from lightning_mnist.run.results import HistoryRecorder
from lightning_mnist.system import MNISTClassifier

# A few batches per stage: these tests check wiring, not accuracy.
QUICK = (
    "--trainer.limit_train_batches",
    "4",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.limit_test_batches",
    "2",
)


def built(tmp_path: Path, *extra: str) -> MNISTCLI:
    """The CLI's objects for ``fit`` with the tutorial preset, built but not run."""
    args = ["--config", TUTORIAL, "--trainer.accelerator", "cpu"]
    args += ["--trainer.default_root_dir", str(tmp_path), *extra]
    return cli_main(args, run=False)


def _model(cli):
    return cli.model.model


ARGUMENT_TARGETS = [
    ("filters", "16", lambda cli: _model(cli).conv.out_channels == 16),
    ("hidden", "8", lambda cli: _model(cli).fc1.out_features == 8),
    ("dropout", "0.25", lambda cli: _model(cli).dropout.p == 0.25),
    ("num_classes", "12", lambda cli: _model(cli).fc2.out_features == 12),
    ("keras_init", "false", lambda cli: not torch.all(_model(cli).fc1.bias == 0)),
    ("channels_last", "false", lambda cli: cli.model.memory_format == torch.contiguous_format),
    ("conv_pool", "fused", lambda cli: conv_path(_model(cli)) == "fused"),
    ("arch", "improved", lambda cli: type(_model(cli)).__name__ == "ImprovedCNN"),
    ("convs", "[1, 2, 2]", lambda cli: hasattr(_model(cli).features, "conv3b")),
]
# Options that act on the improved network only are checked on it.
CONTEXT = {"convs": ("--model.arch", "improved")}
# The data module's augmentation ranges reach the transform it applies to training batches.
DATA_TARGETS = [
    ("augment_rotation", "10", lambda cli: cli.datamodule.augment["rotation"] == 10.0),
    ("augment_zoom", "0.1", lambda cli: cli.datamodule.augment["zoom"] == 0.1),
    ("augment_shift", "0.1", lambda cli: cli.datamodule.augment["shift"] == 0.1),
]


def test_every_system_argument_is_covered():
    import inspect

    names = set(inspect.signature(MNISTClassifier.__init__).parameters) - {"self"}
    assert names == {name for name, _, _ in ARGUMENT_TARGETS}


@pytest.mark.parametrize(("name", "value", "reached"), ARGUMENT_TARGETS)
def test_system_argument_reaches_its_target(tmp_path, name, value, reached):
    context = CONTEXT.get(name, ())
    default = built(tmp_path, *context)
    assert not reached(default), f"the default already satisfies the check for {name}"
    assert reached(built(tmp_path, *context, f"--model.{name}", value))


@pytest.mark.parametrize(("name", "value", "reached"), DATA_TARGETS)
def test_augmentation_argument_reaches_the_transform(tmp_path, name, value, reached, monkeypatch):
    default = built(tmp_path)
    assert not reached(default), f"the default already satisfies the check for {name}"
    cli = built(tmp_path, f"--data.{name}", value)
    assert reached(cli)
    seen = {}

    def spy(x, **ranges):
        seen.update(ranges)
        return x

    monkeypatch.setattr("lightning_mnist.data.module.random_affine", spy)

    class Training:
        training = True

    cli.datamodule.trainer = Training()
    cli.datamodule.on_after_batch_transfer((torch.zeros(2, 1, 28, 28), torch.zeros(2)), 0)
    key = name.removeprefix("augment_")
    assert seen[key] == float(value)  # the range is what the transform is called with


@pytest.mark.parametrize(
    ("value", "paths"), [("one.png", ["one.png"]), ("[a.png, b]", ["a.png", "b"])]
)
def test_images_take_one_path_or_a_list(tmp_path, value, paths):
    assert built(tmp_path).datamodule.images is None
    assert built(tmp_path, "--data.images", value).datamodule.images == paths


def test_optimizer_from_the_cli(tmp_path):
    (adam,) = [built(tmp_path).model.configure_optimizers()]
    adam = adam["optimizer"] if isinstance(adam, dict) else adam
    assert isinstance(adam, torch.optim.Adam)
    group = adam.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (1e-3, (0.9, 0.999), 1e-7)
    sgd = built(tmp_path, "--optimizer", "SGD", "--optimizer.lr", "0.05")
    opt = sgd.model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.05
    sched = built(tmp_path, "--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "3")
    _, schedulers = sched.model.configure_optimizers()  # LightningCLI's ([opt], [sched])
    assert schedulers[0].step_size == 3


def test_the_systems_own_optimizer_is_keras_adam():
    """Without an optimizer section (a plain Trainer), the system's own Adam is Keras's."""
    adam = MNISTClassifier().configure_optimizers()
    group = adam.param_groups[0]
    assert type(adam) is torch.optim.Adam and not group["amsgrad"]
    assert (group["lr"], group["betas"], group["eps"]) == (1e-3, (0.9, 0.999), 1e-7)
    assert group["weight_decay"] == 0


def test_print_config_shows_logger_callbacks_and_optimizer(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", TUTORIAL, "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["trainer"]["logger"]["class_path"].endswith("RunLogger")
    paths = [c["class_path"] for c in cfg["trainer"]["callbacks"]]
    assert any(p.endswith("HistoryRecorder") for p in paths)
    assert cfg["checkpoint"]["class_path"].endswith("RunCheckpoint")  # a ModelCheckpoint
    assert cfg["early_stopping"]["init_args"]["patience"] == 2
    assert cfg["optimizer"]["init_args"]["eps"] == 1e-7
    assert cfg["trainer"]["plugins"][0]["class_path"].endswith("AtomicCheckpointIO")


def test_summary_shows_input_and_output_shapes():
    summary = ModelSummary(MNISTClassifier(), max_depth=2)
    assert [1, 1, 28, 28] in summary.in_sizes and [1, 10] in summary.out_sizes


def test_plugins_keep_the_atomic_writer(tmp_path):
    env = "lightning.pytorch.plugins.environments.LightningEnvironment"
    cli = built(tmp_path, "--trainer.plugins", f"[{{class_path: {env}}}]")
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_slurm_job_id_names_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    cli = built(tmp_path)
    assert cli.run_dir == tmp_path / "version_4242"
    assert (
        Path(cli.trainer.checkpoint_callback.dirpath) == tmp_path / "version_4242" / "checkpoints"
    )


def test_run_logger_shim_still_matches_lightning():
    # RunLogger keeps metrics.csv on resume by overriding this one internal hook; if Lightning
    # renames it, this fails and the shim must follow.
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    assert callable(getattr(ExperimentWriter, "_check_log_dir_exists", None))


def run(data_dir: Path, root: Path, *extra: str) -> int:
    return main(["fit", *cli_args(data_dir, root, *QUICK, *extra)])


@pytest.mark.real_data
def test_without_early_stopping_trains_to_max_epochs(data_dir, tmp_path, capsys):
    # patience 0 and a huge min_delta stop after the second epoch (the first always counts as
    # an improvement); with early stopping removed the same options cannot stop the run.
    stop = ("--early_stopping.patience", "0", "--early_stopping.min_delta", "1e9")
    assert run(data_dir, tmp_path / "with", "--trainer.max_epochs", "3", *stop) == 0
    results = json.loads(next((tmp_path / "with").glob("version_*/results.json")).read_text())
    assert results["epochs_run"] == 2  # the control: these options do stop a run
    capsys.readouterr()
    args = ("--trainer.max_epochs", "3", *stop, "--early_stopping", "null")
    assert run(data_dir, tmp_path / "without", *args) == 0
    results = json.loads(next((tmp_path / "without").glob("version_*/results.json")).read_text())
    assert results["epochs_run"] == 3
    assert (
        "Batch: 256 images per optimizer step (global), 256 per device" in capsys.readouterr().out
    )


@pytest.mark.real_data
@pytest.mark.parametrize(
    "extra",
    [("--trainer.enable_checkpointing", "false"), ("--trainer.barebones", "true")],
    ids=["no-checkpointing", "barebones"],
)
def test_switching_features_off_ends_cleanly(data_dir, tmp_path, extra, capsys):
    assert run(data_dir, tmp_path, "--trainer.max_epochs", "1", *extra) == 0
    out = capsys.readouterr().out
    assert "Testing Accuracy" in out and "last weights" in out
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.real_data
def test_tensorboard_logger_and_the_run_folder(data_dir, tmp_path):
    tb = tmp_path / "tb"
    root = tmp_path / "runs"
    extra = ("--trainer.max_epochs", "1", "--trainer.logger", "TensorBoardLogger")
    assert run(data_dir, root, *extra, "--trainer.logger.save_dir", str(tb)) == 0
    assert list(tb.rglob("events.out.tfevents.*"))
    run_dir = root / "version_0"
    assert (run_dir / "results.json").is_file() and (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "loss.png").is_file()
    # --ckpt_path last finds that run and continues it in its own folder
    more = (
        "--trainer.max_epochs",
        "2",
        "--ckpt_path",
        "last",
        "--trainer.logger",
        "TensorBoardLogger",
    )
    assert run(data_dir, root, *more, "--trainer.logger.save_dir", str(tb)) == 0
    assert json.loads((run_dir / "results.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in root.iterdir()) == [".version_0.lock", "version_0"]


@pytest.mark.real_data
def test_two_loggers(data_dir, tmp_path):
    tb = tmp_path / "tb"
    tensorboard = f"{{class_path: TensorBoardLogger, init_args: {{save_dir: {tb}}}}}"
    loggers = f"[{{class_path: RunLogger}}, {tensorboard}]"
    cli = cli_main(
        ["fit", *cli_args(data_dir, tmp_path, *QUICK, "--trainer.max_epochs", "1")]
        + ["--trainer.logger", loggers, "--trainer.log_every_n_steps", "1"]
    )
    kinds = {type(lg) for lg in cli.trainer.loggers}
    assert kinds == {RunLogger, TensorBoardLogger}
    assert list(tb.rglob("events.out.tfevents.*"))
    metrics = (tmp_path / "version_0" / "metrics.csv").read_text()
    assert "train_loss_step" in metrics.splitlines()[0]  # per-step loss for loggers
    assert (tmp_path / "version_0" / "results.json").is_file()


@pytest.mark.real_data
def test_sgd_from_the_cli_trains_and_is_in_the_checkpoint(data_dir, tmp_path):
    extra = ("--trainer.max_epochs", "1", "--optimizer", "SGD", "--optimizer.lr", "0.05")
    assert run(data_dir, tmp_path, *extra) == 0
    ckpt = torch.load(tmp_path / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    assert "momentum" in group and "betas" not in group and group["lr"] == 0.05


@pytest.mark.real_data
def test_predict_images_through_the_cli(data_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    assert run(data_dir, root, "--trainer.max_epochs", "1") == 0
    ckpt = str(root / "version_0" / "checkpoints" / "last.ckpt")
    digits = Path(__file__).resolve().parents[1] / "examples" / "digits"
    args = ["predict", *cli_args(data_dir, root, "--ckpt_path", ckpt)]
    assert main([*args, "--data.images", f"[{digits}, {tmp_path / 'nope.png'}]"]) == 1
    out = root / "version_1" / "image_predictions.csv"
    rows = out.read_text().splitlines()
    assert rows[0].startswith("file,predicted") and len(rows) == 1 + 4 + 1
    assert "nope.png" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["predict", "--help"])
    assert "--data.images" in capsys.readouterr().out


@pytest.mark.real_data
def test_an_unexpected_error_keeps_its_traceback(data_dir, tmp_path, monkeypatch):
    def broken(self, batch, batch_idx):
        raise ValueError("a bug, not a user mistake")

    monkeypatch.setattr(MNISTClassifier, "training_step", broken)
    with pytest.raises(ValueError, match="a bug"):
        run(data_dir, tmp_path, "--trainer.max_epochs", "1")


def test_callback_types_in_a_built_trainer(tmp_path):
    def has(cli, kind) -> bool:
        return any(isinstance(c, kind) for c in cli.trainer.callbacks)

    cli = built(tmp_path)
    assert all(has(cli, kind) for kind in (ModelCheckpoint, EarlyStopping, HistoryRecorder))
    removed = built(tmp_path, "--early_stopping", "null", "--checkpoint", "null")
    assert not has(removed, ModelCheckpoint) and not has(removed, EarlyStopping)


@pytest.mark.real_data
def test_relative_run_root_as_in_the_readme(data_dir, tmp_path, monkeypatch):
    # The README's command uses a relative default_root_dir (runs/tutorial).
    monkeypatch.chdir(tmp_path)
    args = cli_args(data_dir, Path("runs/tutorial"), *QUICK, "--trainer.max_epochs", "1")
    assert main(["fit", *args]) == 0
    results = json.loads(Path("runs/tutorial/version_0/results.json").read_text())
    assert results["best_model"].startswith("checkpoints/best-")


def test_epoch_means_are_keras_sample_weighted_means():
    """The device sums give Keras's values: sum(loss * n) / sum(n) and correct / seen, on
    uneven batches; computing resets them for the next epoch."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from lightning_mnist.system import EpochSums

    g = torch.Generator().manual_seed(0)
    means, strategy = EpochSums(), SingleDeviceStrategy("cpu")
    loss_sum, correct, seen = 0.0, 0, 0
    for n in (256, 256, 100, 7):  # a partial last batch weighs less
        logits = torch.randn(n, 10, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        loss = torch.nn.functional.cross_entropy(logits, y)
        means.update(loss, logits, y)
        loss_sum += float(loss) * n
        correct += int((logits.argmax(1) == y).sum())
        seen += n
    got = means.compute(strategy)
    assert got["loss"] == pytest.approx(loss_sum / seen, rel=1e-6)
    assert got["accuracy"] == pytest.approx(correct / seen, rel=1e-7)
    assert int(got["samples"]) == seen == 619
    means.update(torch.tensor(1.0), torch.eye(10)[:2], torch.tensor([0, 2]))
    assert means.compute(strategy)["accuracy"] == 0.5  # compute forgot the earlier batches


@pytest.mark.real_data
def test_the_start_up_line_counts_accumulated_batches(data_dir, tmp_path, capsys):
    args = ("--trainer.max_epochs", "1", "--trainer.accumulate_grad_batches", "4")
    assert run(data_dir, tmp_path, *args) == 0
    out = capsys.readouterr().out
    line = "Batch: 1024 images per optimizer step (global, 4 batches), 256 per device on 1"
    assert line in out, out[-2000:]


@pytest.mark.real_data
def test_a_scheduler_steps_during_fit_and_learning_rate_monitor_logs_it(data_dir, tmp_path):
    sched = ("--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1")
    sched += ("--lr_scheduler.gamma", "0.5", "--trainer.callbacks+=LearningRateMonitor")
    assert run(data_dir, tmp_path, "--trainer.max_epochs", "3", *sched) == 0
    with (tmp_path / "version_0" / "metrics.csv").open() as f:
        rates = [float(r["lr-Adam"]) for r in csv.DictReader(f) if r.get("lr-Adam")]
    assert rates == [1e-3, 5e-4, 2.5e-4]  # once an epoch, halved each time


@pytest.mark.real_data
def test_evaluate_initial_weights_tests_the_untrained_network(data_dir, tmp_path):
    args = ["test", *cli_args(data_dir, tmp_path, "--trainer.limit_test_batches", "4")]
    cli = cli_main([*args, "--evaluate_initial_weights", "true"])
    # Glorot kernels and zero biases give near-uniform softmax outputs: loss ln(10), chance.
    metrics = cli.trainer.callback_metrics
    assert abs(float(metrics["test_loss"]) - math.log(10)) < 0.1
    assert float(metrics["test_accuracy"]) < 0.25 and float(metrics["test_samples"]) == 1024


def test_the_fast_cpu_preset_runs_the_fused_operator(tmp_path):
    cli = built(tmp_path, "--config", str(REPO / "configs" / "fast-cpu.yaml"))
    assert conv_path(cli.model.model) == "fused"
    assert cli.trainer.accelerator.__class__.__name__ == "CPUAccelerator"
