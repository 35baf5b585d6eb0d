"""After ``fit``: test the best checkpoint, as the tutorial does, and write the run record
(results.json last, after the predictions and plots it points to)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning_mnist.model import count_params
from lightning_mnist.network import conv_path
from lightning_mnist.run.plots import plot_history
from lightning_mnist.run.results import (
    HistoryRecorder,
    build_results,
    measure_best_model,
    run_timing,
    write_json,
)


def test_and_record(trainer, model, datamodule, run_dir: Path | None, cfg: Any, fit_t0: float):
    """Test the best checkpoint (the last weights without one) and write the run record."""
    fit_seconds = time.perf_counter() - fit_t0
    recorder = next((c for c in trainer.callbacks if isinstance(c, HistoryRecorder)), None)
    # Testing from a checkpoint restores the callbacks' states too, which would roll
    # the history back to the best epoch: keep the fit's own record first.
    recorder = recorder.snapshot() if recorder else None
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
    fit_seconds, test_seconds = seconds
    results = build_results(
        recorder,
        trainer,
        test,
        seed=int(cfg.get("seed_everything") or 0),
        dataset=datamodule.dataset,
        params=count_params(model.model),
        best_model=str(Path(best).resolve().relative_to(run_dir.resolve())) if best else "",
        fit_seconds=fit_seconds,
        best_epoch=model.loaded_epoch + 1 if best else None,
        conv_path=conv_path(model.model, trainer.strategy.root_device),
        tune_malloc=bool(cfg.get("tune_malloc")),
    )
    results["timing"] = run_timing(
        recorder, fit_seconds, test_seconds, datamodule, trainer.strategy.checkpoint_io
    )
    results.update(measure_best_model(model, datamodule, run_dir))
    plot_history(results["history"], run_dir)
    write_json(run_dir / "results.json", results)
    return results


def print_summary(results: dict, run_dir: Path, best: str, fit_seconds: float) -> None:
    secs = sorted(results["epoch_seconds"])
    tested = "best checkpoint" if best else "last weights"
    print(
        f"\nRun folder: {run_dir}\n"
        f"Epochs run: {results['epochs_run']} (best {results['best_epoch']}), "
        f"median {secs[len(secs) // 2]:.2f} s/epoch, fit {fit_seconds:.1f} s, "
        f"conv path {results['conv_path']}\n"
        f"Testing Accuracy:  {100 * results['test_accuracy']:.2f}  "
        f"({results['test_samples']} images, {tested})\n"
        f"Testing Loss:  {results['test_loss']:.4f}"
    )
