"""The Lightning CLI: ``lightning-mnist fit|validate|test|predict``, and the defaults of a run.

A run folder is the Trainer's log dir (``<default_root_dir>/version_N``), new for
every command, so nothing already written is ever overwritten. ``fit`` leaves in it:
config.yaml, checkpoints/{best-*.ckpt,last.ckpt}, metrics.csv, results.json,
accuracy.png and loss.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from lightning_mnist.data import MNISTDataModule
from lightning_mnist.model import count_params
from lightning_mnist.plots import plot_history
from lightning_mnist.predictions import PredictionCSV
from lightning_mnist.results import HistoryRecorder, build_results, write_json
from lightning_mnist.system import MNISTClassifier

DEFAULT_ROOT = "runs"


class MNISTCLI(LightningCLI):
    """LightningCLI with the tutorial's callbacks always present and configurable."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Keras's ModelCheckpoint(save_best_only=True) monitors val_loss; Lightning's
        # default monitors nothing (PARITY.md #8). save_last lets a run resume.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.mode": "min",
                "checkpoint.save_top_k": 1,
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:02d}-{val_loss:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # Keras's EarlyStopping has patience 0 and Lightning's 3; the tutorial's hidden
        # value is reproduced by 2 (PARITY.md #7).
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {
                "early_stopping.monitor": "val_loss",
                "early_stopping.mode": "min",
                "early_stopping.patience": 2,
            }
        )
        parser.set_defaults(
            {
                "trainer.max_epochs": 100,
                "trainer.num_sanity_val_steps": 0,
                "trainer.default_root_dir": DEFAULT_ROOT,
            }
        )

    def _instantiate_trainer(self, config, callbacks):
        # One CSV-logged run folder per command, under default_root_dir.
        if config.get("logger") in (None, True):
            root = config.get("default_root_dir") or DEFAULT_ROOT
            config["logger"] = CSVLogger(save_dir=root, name="")
        self.recorder = HistoryRecorder()
        return super()._instantiate_trainer(config, [*callbacks, self.recorder, PredictionCSV()])

    def before_fit(self) -> None:
        self._fit_t0 = time.perf_counter()

    def after_fit(self) -> None:
        fit_seconds = time.perf_counter() - self._fit_t0
        trainer = self.trainer
        if trainer.interrupted:
            return
        # The tutorial evaluates the best model it saved (load_model('best_model.h5')).
        # Every rank must take the same path here, or the collective calls diverge.
        ckpt_arg = None if trainer.fast_dev_run else "best"
        (test,) = trainer.test(
            self.model, datamodule=self.datamodule, ckpt_path=ckpt_arg, verbose=False
        )
        ckpt = trainer.checkpoint_callback.best_model_path
        run_dir = Path(trainer.log_dir)  # a collective call under DDP: every rank asks
        if not trainer.is_global_zero:
            return
        if trainer.fast_dev_run:  # a smoke test: no run folder is written
            print(
                f"fast_dev_run: test accuracy {test['test_accuracy']:.4f} on "
                f"{int(test['test_samples'])} images"
            )
            return
        results = build_results(
            self.recorder,
            trainer,
            test,
            seed=int(self._get(self.config, "seed_everything") or 0),
            dataset=self.datamodule.dataset,
            params=count_params(self.model.model),
            best_model=str(Path(ckpt).relative_to(run_dir)) if ckpt else "",
            fit_seconds=fit_seconds,
        )
        write_json(run_dir / "results.json", results)
        plot_history(results["history"], run_dir)
        secs = sorted(results["epoch_seconds"])
        print(
            f"\nRun folder: {run_dir}\n"
            f"Epochs run: {results['epochs_run']} (best {results['best_epoch']}), "
            f"median {secs[len(secs) // 2]:.2f} s/epoch, fit {fit_seconds:.1f} s\n"
            f"Testing Accuracy:  {100 * results['test_accuracy']:.2f}  "
            f"({results['test_samples']} images, best checkpoint)\n"
            f"Testing Loss:  {results['test_loss']:.4f}"
        )


def main() -> int:
    """Console script ``lightning-mnist``."""
    cli_main()
    return 0


def cli_main(args: list[str] | None = None) -> MNISTCLI:
    """Entry point of ``lightning-mnist``; tests call it with an argument list."""
    return MNISTCLI(
        MNISTClassifier,
        MNISTDataModule,
        seed_everything_default=0,
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    sys.exit(main())
