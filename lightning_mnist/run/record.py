"""After ``fit``: test the best checkpoint, as the tutorial does, and write the run record
(results.json last, after the predictions and plots it points to)."""

import platform
import time
from copy import deepcopy
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning
import numpy
import torch
import torchmetrics

from lightning_mnist.atomic import write_json
from lightning_mnist.errors import folder_removed
from lightning_mnist.model import count_params
from lightning_mnist.network import conv_path
from lightning_mnist.run import measure
from lightning_mnist.run.history import best_epoch as lowest_val_loss_epoch
from lightning_mnist.run.plots import plot_history
from lightning_mnist.run.results import HistoryRecorder


def test_and_record(trainer, model, datamodule, run_dir: Path | None, cfg: Any, fit_t0: float):
    """Test the best checkpoint (the last weights without one) and write the run record."""
    recorders = (c for c in trainer.callbacks if isinstance(c, HistoryRecorder))
    # Testing from a checkpoint restores the callbacks' states too, which would roll the
    # history back to the best epoch: keep a copy of the fit's own record first.
    recorder = deepcopy(next(recorders, None))
    # This process's fit (data loading included) plus the earlier ones' before a resume.
    fit_seconds = time.perf_counter() - fit_t0 + (recorder.prior_seconds if recorder else 0.0)
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_path if ckpt is not None and not trainer.fast_dev_run else ""
    # The tutorial evaluates the best model it saved (load_model('best_model.h5')).
    # Every rank must take the same path here, or the collective calls diverge.
    t0 = time.perf_counter()
    trainer.test(model, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False)
    seconds = (fit_seconds, time.perf_counter() - t0)
    # The system's own epoch means (the same on every rank), also when nothing is logged.
    test = {k: v for k, v in model.epoch_metrics.items() if k.startswith("test_")}
    if not trainer.is_global_zero:
        return
    if trainer.fast_dev_run:  # a smoke test: no run folder is written
        print(
            f"fast_dev_run: test accuracy {test['test_accuracy']:.4f} on "
            f"{int(test['test_samples'])} images"
        )
    elif recorder is None:
        print("no HistoryRecorder in trainer.callbacks: results.json and plots not written")
    else:
        results = write_record(
            trainer, model, datamodule, Path(run_dir), cfg, recorder, test, best, seconds
        )
        print_summary(results, Path(run_dir), best, seconds[0])


def write_record(trainer, model, datamodule, run_dir, cfg, recorder, test, best, seconds) -> dict:
    """Write the test predictions, the plots and then results.json; return the record."""
    if not run_dir.is_dir():  # removed during the run: no part-record in a new folder
        raise folder_removed(run_dir)
    fit_seconds, test_seconds = seconds
    val_loss = recorder.history["val_loss"]
    # The tested checkpoint's epoch; without a checkpoint, the epoch of the lowest val_loss.
    best_epoch = model.loaded_epoch + 1 if best else lowest_val_loss_epoch(val_loss)
    results = {
        "framework": "lightning",
        "dataset": datamodule.dataset,
        "seed": _seed(cfg.get("seed_everything")),
        "epochs_run": len(val_loss),
        "best_epoch": best_epoch,  # null: no epoch was validated
        "history": recorder.history,
        "epoch_seconds": recorder.epoch_seconds,
        "fit_seconds": fit_seconds,
        "test_loss": test["test_loss"],
        "test_accuracy": test["test_accuracy"],
        "test_samples": int(test["test_samples"]),
        "params": count_params(model.model),
        "conv_path": conv_path(model.model, trainer.strategy.root_device),
        "tune_malloc": bool(cfg.get("tune_malloc")),
        "precision": str(trainer.precision),
        "data_dir": str(Path(datamodule.data_dir).resolve()),
        "best_model": str(Path(best).resolve().relative_to(run_dir.resolve())) if best else "",
        "device": describe_device(trainer),
        "versions": versions(),
        "timing": run_timing(recorder, fit_seconds, test_seconds, datamodule, trainer),
        **measure_best_model(trainer, model, datamodule, run_dir),
    }
    plot_history(results["history"], run_dir)
    write_json(run_dir / "results.json", results)
    return results


def _seed(seed: Any) -> int | None:
    """The seed LightningCLI set (it replaces ``true`` by the one it chose); None: unseeded."""
    return None if seed is None or isinstance(seed, bool) else int(seed)


def run_timing(recorder, fit_seconds: float, test_seconds: float, datamodule, trainer) -> dict:
    """Where a run's time went, in seconds, and the wall clock when data loading began (the
    comparison subtracts its launch time from it to get the start-up)."""
    epochs, val = sum(recorder.epoch_seconds), sum(recorder.val_seconds)
    data = getattr(datamodule, "load_seconds", None)
    # AtomicCheckpointIO counts it; another CheckpointIO does not (null).
    ckpt = getattr(trainer.strategy.checkpoint_io, "save_seconds", None)
    return {
        "data_started_at": getattr(datamodule, "load_started_at", None),
        "data": data,
        "train": epochs - val,
        "validation": val,
        "checkpoint": ckpt,
        "fit_other": fit_seconds - epochs - (data or 0.0) - (ckpt or 0.0),
        "before_resume": recorder.prior_seconds,  # in fit_seconds and fit_other
        "test": test_seconds,
    }


def measure_best_model(trainer, model, datamodule, run_dir: Path) -> dict:
    """Write the tested weights' predictions of the tested images, time inference on the test
    set's first images, and record peak memory and the environment."""
    # The images the test scored on every rank (--trainer.limit_test_batches may cut them).
    batches, limit = datamodule.test_dataloader(), trainer.num_test_batches[0]
    parts = [replace(batches, rank=r).indices()[:limit] for r in range(batches.world_size)]
    x, y = datamodule.tensors["test"]
    x, y = x.to(model.device), y.to(model.device)
    idx = torch.cat([i for part in parts for i in part]).to(model.device)
    tested_x, tested_y = x.index_select(0, idx), y.index_select(0, idx)
    labels, predicted = tested_y.cpu().numpy(), measure.predict_classes(model, tested_x)
    measure.write_predictions(run_dir / measure.PREDICTIONS_CSV, labels, predicted)
    return {
        "test_predictions": measure.PREDICTIONS_CSV,
        "inference_ms": measure.latency_ms(model, x),
        "peak_rss_mb": measure.peak_rss_mb(),
        "environment": measure.environment(model.device),
    }


def versions() -> dict[str, str]:
    packages = (torch, lightning, torchmetrics, numpy)
    return {"python": platform.python_version(), **{p.__name__: p.__version__ for p in packages}}


def describe_device(trainer) -> str:
    dev = trainer.strategy.root_device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return f"{dev.type} x{trainer.world_size} ({name}, {torch.get_num_threads()} threads)"


def say_run_folder(trainer, run_dir: Path | None) -> None:
    """After validate or test: where the run folder is (fit says it in its summary)."""
    if run_dir is not None and trainer.is_global_zero:
        print(f"Run folder: {run_dir}")


def print_summary(results: dict, run_dir: Path, best: str, fit_seconds: float) -> None:
    secs = sorted(results["epoch_seconds"])
    tested = "best checkpoint" if best else "last weights"
    print(
        f"\nRun folder: {run_dir}\n"
        f"Epochs run: {results['epochs_run']} (best {results['best_epoch'] or 'none'}), "
        f"median {secs[len(secs) // 2]:.2f} s/epoch, fit {fit_seconds:.1f} s, "
        f"conv path {results['conv_path']}\n"
        f"Testing Accuracy:  {100 * results['test_accuracy']:.2f}  "
        f"({results['test_samples']} images, {tested})\n"
        f"Testing Loss:  {results['test_loss']:.4f}"
    )
