"""The Lightning CLI: ``lightning-mnist fit|validate|test|predict``, and the defaults of a run.

A run folder is the Trainer's log dir (``<default_root_dir>/version_N``), new for
every command, so nothing already written is ever overwritten. ``fit`` leaves in it:
config.yaml, checkpoints/{best-*.ckpt,last.ckpt}, metrics.csv, results.json,
accuracy.png and loss.png.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_mnist.checkpoints import (
    CheckpointError,
    check_compatible,
    load_classifier,
    read_checkpoint,
)
from lightning_mnist.data import MNISTDataModule
from lightning_mnist.files import DataError
from lightning_mnist.model import conv_path, count_params
from lightning_mnist.plots import plot_history
from lightning_mnist.predictions import PredictionCSV
from lightning_mnist.results import HistoryRecorder, build_results, write_json
from lightning_mnist.runfolder import (
    AtomicCheckpointIO,
    RunConfig,
    RunLogger,
    SaveOnInterrupt,
    find_last,
)
from lightning_mnist.speed import tune_malloc
from lightning_mnist.system import MNISTClassifier

DEFAULT_ROOT = "runs"
SPECIAL_CKPTS = ("best", "last", "hpc", "registry")


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, exit code 2."""


class MNISTCLI(LightningCLI):
    """LightningCLI with the tutorial's callbacks always present and configurable."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--tune_malloc",
            type=bool,
            default=False,
            help="Opt-in: keep freed memory in the process (glibc mallopt); steadier, faster "
            "CPU steps (configs/fast-cpu.yaml turns it on); recorded in results.json",
        )
        parser.add_argument(
            "--num_threads",
            type=int | None,
            default=None,
            help="torch CPU threads per process (default: torch's choice, all cores)",
        )
        # Keras's ModelCheckpoint(save_best_only=True) monitors val_loss; Lightning's
        # default monitors nothing (docs/parity.md #8). save_last lets a run resume.
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
        # value is reproduced by 2 (docs/parity.md #7).
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

    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(self.subcommand)
        if cfg.get("tune_malloc"):
            tune_malloc()
        if cfg.get("num_threads"):
            torch.set_num_threads(cfg.num_threads)
        if cfg.trainer.get("fast_dev_run"):
            # A smoke test writes nothing; Lightning's ModelCheckpoint.on_train_end would
            # still save last.ckpt under default_root_dir.
            cfg.checkpoint.save_last = False
        # `fit --ckpt_path last` continues the newest run under default_root_dir, in its
        # own folder, from the end of its last finished epoch.
        self._resume_version = None
        if self.subcommand != "fit" or cfg.get("ckpt_path") != "last":
            return
        root = cfg.trainer.default_root_dir or DEFAULT_ROOT
        found = find_last(root)
        if found is None:
            raise UserError(f"--ckpt_path last: no run with checkpoints/last.ckpt under {root}")
        self._resume_version, cfg["ckpt_path"] = found[0], str(found[1])
        print(f"Resuming {found[1]}")

    def _instantiate_trainer(self, config, callbacks):
        # One CSV-logged run folder per command (version_N under default_root_dir).
        if config.get("logger") in (None, True):
            root = config.get("default_root_dir") or DEFAULT_ROOT
            config["logger"] = RunLogger(save_dir=root, name="", version=self._resume_version)
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        self.recorder = HistoryRecorder()
        extra = [self.recorder, SaveOnInterrupt(), PredictionCSV()]
        return super()._instantiate_trainer(config, [*callbacks, *extra])

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the checkpoint's hyper-parameters here; a missing or corrupt
        # file should fail with one line, not a pickle traceback.
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        self._ckpt = (ckpt, read_checkpoint(ckpt)) if ckpt and ckpt not in SPECIAL_CKPTS else None
        super()._parse_ckpt_path()

    def _check_ckpt(self) -> None:
        ckpt = self.config.get(self.subcommand).get("ckpt_path")
        if ckpt and ckpt not in SPECIAL_CKPTS:
            loaded = self._ckpt[1] if self._ckpt and self._ckpt[0] == ckpt else None
            check_compatible(ckpt, self.model, loaded)

    def before_fit(self) -> None:
        # Checked here, before DDP starts its processes, so the error prints once.
        self.datamodule.check_world_size(self.trainer.world_size)
        self._check_ckpt()
        self._fit_t0 = time.perf_counter()

    before_validate = before_test = before_predict = _check_ckpt

    def after_fit(self) -> None:
        fit_seconds = time.perf_counter() - self._fit_t0
        trainer = self.trainer
        if trainer.interrupted:
            return
        # Testing from a checkpoint restores the callbacks' states too, which would roll
        # the history back to the best epoch: keep the fit's own record first.
        recorder = self.recorder.snapshot()
        ckpt = trainer.checkpoint_callback.best_model_path
        # The tutorial evaluates the best model it saved (load_model('best_model.h5')).
        # Every rank must take the same path here, or the collective calls diverge.
        ckpt_arg = None if trainer.fast_dev_run else "best"
        (test,) = trainer.test(
            self.model, datamodule=self.datamodule, ckpt_path=ckpt_arg, verbose=False
        )
        log_dir = trainer.log_dir  # a collective call under DDP: every rank asks
        if not trainer.is_global_zero:
            return
        if trainer.fast_dev_run:  # a smoke test: no run folder is written
            print(
                f"fast_dev_run: test accuracy {test['test_accuracy']:.4f} on "
                f"{int(test['test_samples'])} images"
            )
            return
        run_dir = Path(log_dir)
        results = build_results(
            recorder,
            trainer,
            test,
            seed=int(self.config[self.subcommand].get("seed_everything") or 0),
            dataset=self.datamodule.dataset,
            params=count_params(self.model.model),
            best_model=str(Path(ckpt).relative_to(run_dir)) if ckpt else "",
            fit_seconds=fit_seconds,
            best_epoch=read_checkpoint(ckpt)["epoch"] + 1 if ckpt else None,
            conv_path=conv_path(self.model.model, trainer.strategy.root_device),
            tune_malloc=bool(self.config[self.subcommand].get("tune_malloc")),
        )
        write_json(run_dir / "results.json", results)
        plot_history(results["history"], run_dir)
        secs = sorted(results["epoch_seconds"])
        print(
            f"\nRun folder: {run_dir}\n"
            f"Epochs run: {results['epochs_run']} (best {results['best_epoch']}), "
            f"median {secs[len(secs) // 2]:.2f} s/epoch, fit {fit_seconds:.1f} s, "
            f"conv path {results['conv_path']}\n"
            f"Testing Accuracy:  {100 * results['test_accuracy']:.2f}  "
            f"({results['test_samples']} images, best checkpoint)\n"
            f"Testing Loss:  {results['test_loss']:.4f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Console script ``lightning-mnist``: user mistakes become one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(message)s")
    logging.getLogger("lightning_mnist").setLevel(logging.INFO)  # show each fetch step
    try:
        if args[:1] == ["predict"] and "--images" in args:
            return predict_images_main(args[1:])
        if args[:1] == ["export"]:
            from lightning_mnist.export import main as export_main

            return export_main(args[1:])
        cli_main(argv)
    except USER_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # the argument parser has already printed its error line
        return e.code if isinstance(e.code, int) else 1
    return 0


def cli_main(args: list[str] | None = None) -> MNISTCLI:
    """Entry point of ``lightning-mnist``; tests call it with an argument list."""
    return MNISTCLI(
        MNISTClassifier,
        MNISTDataModule,
        seed_everything_default=0,
        save_config_callback=RunConfig,
        args=args,
        auto_configure_optimizers=False,
    )


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def predict_images_main(argv: list[str]) -> int:
    """``lightning-mnist predict --ckpt_path CKPT --images PATH... [--out FILE]``."""
    import argparse

    from lightning_mnist.image_predict import run_predict

    parser = argparse.ArgumentParser(
        prog="lightning-mnist predict",
        description="Classify your own images of handwritten digits (PNG, JPEG, ...).",
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by fit")
    parser.add_argument("--images", nargs="+", required=True, help="image files and folders")
    parser.add_argument(
        "--out",
        help="a new .csv or .json file (default: image_predictions.csv, "
        "or the next free image_predictions-N.csv)",
    )
    args = parser.parse_args(argv)
    out = args.out or next_free(Path("image_predictions.csv"))
    model = load_classifier(args.ckpt_path)
    return run_predict(model, args.images, out)


def next_free(path: Path) -> Path:
    """``path`` if it does not exist, else ``stem-1``, ``stem-2``, ... (never overwrite)."""
    n = 0
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


USER_ERRORS = (UserError, DataError, ValueError, FileNotFoundError, CheckpointError)


if __name__ == "__main__":
    sys.exit(main())
