"""The real CLI, driven through ``cli_main([...])``: fit, print_config, test, predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import TUTORIAL, cli_args

from lightning_mnist.checkpoints import load_classifier
from lightning_mnist.cli import cli_main, main
from lightning_mnist.data.module import to_tensor
from lightning_mnist.data.verify import load_arrays

_args = cli_args


def test_print_config_shows_the_tutorial_preset(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["fit", "--config", TUTORIAL, "--print_config"])
    assert e.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["batch_size"] == 256 and cfg["data"]["validation_split"] == 0.2
    adam = cfg["optimizer"]["init_args"]
    assert (adam["lr"], adam["betas"], adam["eps"]) == (1e-3, [0.9, 0.999], 1e-7)
    model = {k: cfg["model"][k] for k in ("filters", "hidden", "dropout", "keras_init")}
    assert model == {"filters": 32, "hidden": 32, "dropout": 0.5, "keras_init": True}
    assert cfg["early_stopping"]["init_args"]["patience"] == 2
    assert cfg["checkpoint"]["init_args"]["monitor"] == "val_loss"
    assert cfg["trainer"]["num_sanity_val_steps"] == 0 and cfg["trainer"]["max_epochs"] == 100


def assert_measured(r: dict, run: Path) -> None:
    """The fields the comparison reads: predictions, phase timings, latency, memory, machine."""
    rows = np.loadtxt(run / r["test_predictions"], delimiter=",", skiprows=1, dtype=int)
    assert rows.shape == (10000, 2) and set(rows[:, 0]) == set(range(10))
    # The CSV holds the tested (best) model's predictions: they give its test accuracy.
    assert (rows[:, 0] == rows[:, 1]).mean() == pytest.approx(r["test_accuracy"], abs=1e-4)
    t = r["timing"]
    assert t["data_started_at"] > 1.6e9 and all(t[k] >= 0 for k in ("data", "train", "test"))
    assert t["train"] + t["validation"] == pytest.approx(sum(r["epoch_seconds"]))
    # Figures, not a race: timing under load belongs to the benchmark.
    assert t["validation"] > 0 and t["train"] > 0 and t["checkpoint"] > 0
    assert set(r["inference_ms"]) == {"1", "256"} and r["peak_rss_mb"] > 100
    assert r["environment"]["logical_cpus"] and r["environment"]["threads"]["intra_op"] >= 1


@pytest.mark.real_data
def test_fit_fast_dev_run(data_dir, tmp_path, capsys):
    cli = cli_main(["fit", *_args(data_dir, tmp_path, "--trainer.fast_dev_run", "true")])
    assert cli.trainer.state.finished
    assert "fast_dev_run: test accuracy" in capsys.readouterr().out
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # a smoke test writes nothing


@pytest.fixture(scope="module")
def one_epoch_run(data_dir, tmp_path_factory) -> Path:
    """One real epoch on a quarter of the training files (val = last 20% as always)."""
    root = tmp_path_factory.mktemp("runs")
    cli = cli_main(
        [
            "fit",
            *_args(
                data_dir, root, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "0.25"
            ),
        ]
    )
    return Path(cli.trainer.log_dir)


@pytest.mark.real_data
def test_fit_writes_the_run_folder(one_epoch_run):
    run = one_epoch_run
    names = {p.name for p in run.iterdir()}
    assert {
        "config.yaml",
        "metrics.csv",
        "results.json",
        "accuracy.png",
        "loss.png",
        "checkpoints",
    } <= names
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    r = json.loads((run / "results.json").read_text())
    assert r["framework"] == "lightning" and r["test_samples"] == 10000
    assert r["epochs_run"] == 1 == len(r["epoch_seconds"]) == len(r["history"]["val_loss"])
    assert r["best_model"].startswith("checkpoints/best-") and r["params"] == 173_738
    assert_measured(r, run)


@pytest.mark.real_data
def test_test_and_predict_from_a_checkpoint(one_epoch_run, data_dir, tmp_path):
    ckpt = str(one_epoch_run / "checkpoints" / "last.ckpt")
    cli = cli_main(["test", *_args(data_dir, tmp_path, "--ckpt_path", ckpt)])
    assert cli.trainer.callback_metrics["test_samples"] == 10000
    cli = cli_main(["predict", *_args(data_dir, tmp_path, "--ckpt_path", ckpt)])
    out = Path(cli.trainer.log_dir) / "predictions.csv"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 10000
    probs = torch.tensor([[float(r[f"p{i}"]) for i in range(10)] for r in rows[:50]])
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-4)
    assert all(
        int(r["predicted"]) == int(torch.tensor([float(r[f"p{i}"]) for i in range(10)]).argmax())
        for r in rows[:50]
    )
    acc = sum(r["label"] == r["predicted"] for r in rows) / len(rows)
    assert acc > 0.85


@pytest.mark.real_data
def test_saved_config_reproduces_the_run(one_epoch_run, tmp_path):
    saved = yaml.safe_load((one_epoch_run / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 1 and saved["seed_everything"] == 0
    cli = cli_main(
        [
            "fit",
            "--config",
            str(one_epoch_run / "config.yaml"),
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    a = json.loads((one_epoch_run / "results.json").read_text())
    b = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    assert a["history"] == b["history"] and a["test_accuracy"] == b["test_accuracy"]


@pytest.mark.real_data
def test_results_keep_every_epoch_when_the_best_is_not_the_last(data_dir, tmp_path):
    # Testing the best checkpoint restores callback states; the history must not roll back.
    # Every epoch validates the same 12,000 images, so monitoring their count keeps epoch 1
    # as the "best" of two (a tie is no improvement), while the file names still carry val_loss.
    extra = [
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "10",
        "--checkpoint.monitor",
        "val_samples",
        "--checkpoint.mode",
        "max",
        "--early_stopping.patience",
        "5",
    ]
    cli = cli_main(["fit", *_args(data_dir, tmp_path, *extra)])
    run = Path(cli.trainer.log_dir)
    r = json.loads((run / "results.json").read_text())
    assert r["epochs_run"] == 2 and len(r["epoch_seconds"]) == 2
    # epochs count from 1 in file names too: best_epoch 1 is best-01-
    assert r["best_epoch"] == 1 and r["best_model"].startswith("checkpoints/best-01-")
    # last.ckpt is the latest epoch even though it saved no best (Lightning 2.6 skips it).
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert_tested_the_best(r, run, data_dir)


def checkpoint_classes(path: Path, x: torch.Tensor) -> np.ndarray:
    """The classes a checkpoint, loaded on its own, predicts for ``x``."""
    with torch.no_grad():
        return load_classifier(path)(x).argmax(1).numpy()


def assert_tested_the_best(r: dict, run: Path, data_dir: Path) -> None:
    """What fit tested and recorded is the best checkpoint's, not the last weights'."""
    x, y = to_tensor(*load_arrays(data_dir)[2:])
    best = checkpoint_classes(run / r["best_model"], x)
    last = checkpoint_classes(run / "checkpoints" / "last.ckpt", x)
    assert (best != last).any()  # else this test could not tell them apart
    rows = np.loadtxt(run / r["test_predictions"], delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(rows[:, 1], best)
    # test_accuracy is an epoch mean in float32: within a rounding of the count's.
    assert r["test_accuracy"] == pytest.approx((best == y.numpy()).mean(), abs=1e-6)


@pytest.mark.real_data
@pytest.mark.slow
def test_three_tutorial_epochs_reach_96_percent(data_dir, tmp_path):
    cli = cli_main(["fit", *_args(data_dir, tmp_path, "--trainer.max_epochs", "3")])
    r = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    keys = {
        "framework",
        "seed",
        "epochs_run",
        "best_epoch",
        "history",
        "epoch_seconds",
        "fit_seconds",
        "test_loss",
        "test_accuracy",
        "test_samples",
        "device",
        "versions",
    }
    assert keys <= r.keys()
    assert all(len(r["history"][k]) == 3 for k in ("loss", "accuracy", "val_loss", "val_accuracy"))
    assert r["test_samples"] == 10000
    assert r["test_accuracy"] >= 0.96


@pytest.mark.real_data
def test_predict_images_from_a_fit_checkpoint(one_epoch_run, tmp_path, capsys):
    from lightning_mnist.cli import main

    digits = Path(__file__).resolve().parents[1] / "examples" / "digits"
    ckpt = str(one_epoch_run / "checkpoints" / "last.ckpt")
    root = tmp_path / "runs"
    args = ["predict", "--ckpt_path", ckpt, "--data.images", f"[{digits}]"]
    assert main([*args, "--trainer.default_root_dir", str(root)]) == 0
    out = root / "version_0" / "image_predictions.csv"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    right = sum(r["predicted"] == Path(r["file"]).stem.split("label")[1] for r in rows)
    assert right >= 3  # a quarter-epoch model; the full tutorial model gets all four


@pytest.fixture(scope="module")
def trained_ckpt(data_dir, tmp_path_factory) -> Path:
    """A checkpoint from a short real fit (one partial epoch)."""
    root = tmp_path_factory.mktemp("export-run")
    extra = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "40")
    assert main(["fit", *cli_args(data_dir, root, *extra)]) == 0
    return next(root.glob("version_*/checkpoints/last.ckpt"))


@pytest.mark.real_data
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
def test_export_matches_the_model_on_real_images(trained_ckpt, data_dir, tmp_path, fmt, capsys):
    out = tmp_path / f"model.{fmt}"
    args = ["export", "--ckpt_path", str(trained_ckpt), "--format", fmt, "--out", str(out)]
    args += ["--data.data_dir", str(data_dir), "--check_images", "300"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 300 and report["equal_predictions"] == 300
    assert report["max_abs_softmax_diff"] <= 1e-5 and out.is_file()
    assert main(args) == 2  # an existing file is never overwritten
    assert "already exists" in capsys.readouterr().err


@pytest.mark.real_data
def test_export_of_a_fused_checkpoint_uses_stock_ops(data_dir, tmp_path, capsys):
    from lightning_mnist.ops import convpool

    convpool.load()
    root = tmp_path / "runs"
    extra = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "10")
    extra += ("--model.conv_pool", "fused")
    assert main(["fit", *cli_args(data_dir, root, *extra)]) == 0
    results = json.loads(next(root.glob("version_*/results.json")).read_text())
    assert results["conv_path"] == "fused"
    ckpt = next(root.glob("version_*/checkpoints/last.ckpt"))
    out = tmp_path / "m.pt2"
    args = ["export", "--ckpt_path", str(ckpt), "--format", "exported-program", "--out", str(out)]
    assert main([*args, "--data.data_dir", str(data_dir), "--check_images", "200"]) == 0
    program = torch.export.load(str(out))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("lightning_mnist" in t for t in targets)
