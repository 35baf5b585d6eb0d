"""The Lightning CLI: ``lightning-mnist fit|validate|test|predict|export``.

Every piece of a run is in the config, so ``--print_config`` shows it and a user can change
or remove it: the run logger (``trainer.logger``), ModelCheckpoint (``checkpoint``),
EarlyStopping (``early_stopping``), the project's callbacks (``trainer.callbacks``), the
atomic checkpoint writer (``trainer.plugins``) and the optimizer (``optimizer``).

The run folder is ``<default_root_dir>/version_N``, decided here before anything is built:
the next free N, the run being resumed (``fit --ckpt_path last``), or the SLURM job id, so a
requeued job continues in its own folder. It holds config.yaml, checkpoints/, metrics.csv,
results.json and the plots whatever loggers are chosen; other loggers write where they are
told, in addition.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
import time
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_mnist.checkpoints import CheckpointError, check_compatible, read_checkpoint
from lightning_mnist.data.idx import DataError, get_spec
from lightning_mnist.data.module import MNISTDataModule
from lightning_mnist.errors import UserError
from lightning_mnist.model import conv_path, count_params
from lightning_mnist.ops.build import OpUnavailable
from lightning_mnist.ops.malloc import tune_malloc
from lightning_mnist.run.folder import (
    RunConfig,
    RunLock,
    RunLogger,
    clean_for_resume,
    find_last,
    versions,
)
from lightning_mnist.run.plots import plot_history
from lightning_mnist.run.results import (
    HistoryRecorder,
    build_results,
    measure_best_model,
    run_timing,
    write_json,
)
from lightning_mnist.system import MNISTClassifier

DEFAULT_ROOT = "runs"
SPECIAL_CKPTS = ("best", "last", "hpc", "registry")
SUBCOMMANDS = ("fit", "validate", "test", "predict")
PARSER_KWARGS = {"exit_on_error": False, **{s: {"exit_on_error": False} for s in SUBCOMMANDS}}
CALLBACK_GROUPS = ("checkpoint", "early_stopping")
# Lightning's own MisconfigurationException is a configuration mistake too (e.g. a GPU asked
# for on a machine without one, max_epochs below -1).
USER_ERRORS = (UserError, DataError, CheckpointError, OpUnavailable, MisconfigurationException)
LOG = logging.getLogger("lightning_mnist")
HELD_LOCKS: list[RunLock] = []
# A full disk, a quota or a read-only filesystem: the user's to fix, shown as one line.
DISK_ERRORS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
)  # released when the command ends, however it ends
# Arguments that define the network a checkpoint holds; a flag that contradicts the
# checkpoint's value is refused (conv_pool, channels_last... change no weights and may differ).
ARCHITECTURE = ("filters", "hidden", "num_classes", "dropout")

# The tutorial's callbacks. Keras's ModelCheckpoint(save_best_only=True) monitors val_loss;
# Lightning's default monitors nothing (docs/parity.md #8). save_last lets a run resume.
CHECKPOINT = {
    "class_path": "lightning_mnist.run.folder.RunCheckpoint",
    "init_args": {
        "monitor": "val_loss",
        "mode": "min",
        "save_top_k": 1,
        "save_last": True,
        "filename": "best-{epoch:02d}-{val_loss:.4f}",
        "auto_insert_metric_name": False,
    },
}
# Keras's EarlyStopping has patience 0 and Lightning's 3; the tutorial's hidden value is
# reproduced by 2 (docs/parity.md #7).
EARLY_STOPPING = {
    "class_path": "lightning.pytorch.callbacks.EarlyStopping",
    "init_args": {"monitor": "val_loss", "mode": "min", "patience": 2},
}
PROJECT_CALLBACKS = [
    {"class_path": "lightning_mnist.run.results.HistoryRecorder"},
    {"class_path": "lightning_mnist.run.folder.SaveOnInterrupt"},
    {"class_path": "lightning_mnist.predict.writer.PredictionCSV"},
]


def add_project_options(parser: LightningArgumentParser) -> None:
    """The project's own top-level options, beside Lightning's."""
    parser.add_argument(
        "--tune_malloc",
        type=bool,
        default=False,
        help="Opt-in: keep freed memory in the process (glibc mallopt); steadier, faster "
        "CPU steps (configs/fast-cpu.yaml turns it on); recorded in results.json",
    )
    parser.add_argument(
        "--evaluate_initial_weights",
        type=bool,
        default=False,
        help="validate/test/predict without --ckpt_path evaluate the untrained network "
        "(refused otherwise, so random weights are never reported by mistake)",
    )
    parser.add_argument(
        "--num_threads",
        type=int | None,
        default=None,
        help="torch CPU threads per process (default: torch's choice, all cores)",
    )


class MNISTCLI(LightningCLI):
    """LightningCLI with the tutorial's run folder, callbacks and optimizer as config."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_project_options(parser)
        # Optional groups: `--checkpoint null` / `--early_stopping null` remove them, and
        # `--early_stopping.patience 4` changes one value.
        parser.add_lightning_class_args(
            ModelCheckpoint, "checkpoint", subclass_mode=True, required=False
        )
        parser.add_lightning_class_args(
            EarlyStopping, "early_stopping", subclass_mode=True, required=False
        )
        parser.set_defaults(
            {
                "checkpoint": CHECKPOINT,
                "early_stopping": EARLY_STOPPING,
                "trainer.max_epochs": 100,
                "trainer.num_sanity_val_steps": 0,
                "trainer.default_root_dir": DEFAULT_ROOT,
                "trainer.logger": {"class_path": "lightning_mnist.run.folder.RunLogger"},
                "trainer.callbacks": PROJECT_CALLBACKS,
                "trainer.plugins": [
                    {"class_path": "lightning_mnist.run.folder.AtomicCheckpointIO"}
                ],
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # A named checkpoint is opened here, weights only, before Lightning reads its
        # hyper-parameters: a missing, corrupt or code-carrying file gets one line.
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else self.config.get("ckpt_path")
        self._ckpt = (ckpt, read_checkpoint(ckpt)) if ckpt and ckpt not in SPECIAL_CKPTS else None
        if self._ckpt:
            given = sys.argv[1:] if args is None else list(args)
            model = self.config[sub].model if sub else self.config.model
            check_flags_against(self._ckpt[1].get("hyper_parameters") or {}, given, model)

    def _cfg(self, config: Any) -> Any:
        """This command's part of a parsed config (all of it when run=False)."""
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        cfg = self._cfg(self.config)
        if cfg.get("tune_malloc"):
            tune_malloc()
        if cfg.get("num_threads") is not None:
            if cfg.num_threads < 1:
                raise UserError(f"--num_threads must be at least 1, got {cfg.num_threads}")
            torch.set_num_threads(cfg.num_threads)
        # config.yaml gets the config as given, not the paths filled in below, so that
        # `fit --config <run>/config.yaml` starts a new run instead of writing into this one.
        self.save_config_kwargs["config_as_given"] = deepcopy(cfg)
        trainer = cfg.trainer
        root = Path(trainer.get("default_root_dir") or DEFAULT_ROOT)
        check_root(root)
        if self.subcommand == "fit" and trainer.get("max_epochs") == 0:
            raise UserError("--trainer.max_epochs 0 trains nothing; give 1 or more (-1: no limit)")
        check_optimizer(cfg.get("optimizer"))
        self._check_evaluation_weights(cfg, root)
        self._drop_what_the_trainer_forbids(cfg)
        version = self._version(cfg, root)
        self.run_dir = None if trainer.get("fast_dev_run") else root / f"version_{version}"
        for logger in _as_list(trainer.get("logger")):
            if _is(logger, RunLogger):
                logger.init_args.save_dir = logger.init_args.get("save_dir") or str(root)
                if logger.init_args.get("version") is None:
                    logger.init_args.version = version
        run = str(self.run_dir) if self.run_dir else None
        if cfg.get("checkpoint") and run and not cfg.checkpoint.init_args.get("dirpath"):
            cfg.checkpoint.init_args.dirpath = str(Path(run) / "checkpoints")
        for callback in _as_list(trainer.get("callbacks")):
            if callback.class_path.endswith("PredictionCSV") and run:
                callback.init_args.dirpath = callback.init_args.get("dirpath") or run
        self._keep_atomic_writer(trainer)
        self.save_config_kwargs.update(save_to_log_dir=False, run_dir=run)

    def _drop_what_the_trainer_forbids(self, cfg) -> None:
        trainer = cfg.trainer
        if trainer.get("barebones"):
            # Barebones mode logs nothing: no logger, no checkpoints, nothing to stop early on.
            trainer.logger = False
            trainer.enable_checkpointing = False
            for key in CALLBACK_GROUPS:
                if cfg.get(key):
                    cfg[key] = None
            print("barebones: no logger, checkpoints or early stopping; results.json is kept")
        elif trainer.get("enable_checkpointing") is False and cfg.get("checkpoint"):
            cfg.checkpoint = None
            print("checkpointing off: no checkpoints; the final test uses the last weights")
        elif not cfg.get("checkpoint") and trainer.get("enable_checkpointing") is not True:
            # Without this Lightning would add a default ModelCheckpoint of its own.
            trainer.enable_checkpointing = False
            print("checkpoint removed: no checkpoints; the final test uses the last weights")
        if trainer.get("fast_dev_run") and cfg.get("checkpoint"):
            # A smoke test writes nothing; ModelCheckpoint.on_train_end would save last.ckpt.
            cfg.checkpoint.init_args.save_last = False

    def _check_evaluation_weights(self, cfg, root: Path) -> None:
        """validate/test/predict evaluate a trained checkpoint, never random weights silently."""
        ckpt = cfg.get("ckpt_path")
        if self.subcommand not in ("validate", "test", "predict"):
            return
        if ckpt is None and not cfg.get("evaluate_initial_weights"):
            raise UserError(
                f"{self.subcommand} needs --ckpt_path CKPT (a trained checkpoint); "
                "--evaluate_initial_weights true evaluates the untrained network"
            )
        if ckpt == "last":
            found = find_last(root)
            if found is None:
                raise UserError(f"--ckpt_path last: no run with checkpoints/last.ckpt under {root}")
            cfg["ckpt_path"] = str(found[1])
        elif ckpt == "best":
            raise UserError(
                "--ckpt_path best means the best checkpoint of a fit in this same command; "
                "give the checkpoint file (runs/.../checkpoints/best-*.ckpt)"
            )

    def _version(self, cfg, root: Path) -> int | str:
        """The run folder's version: the run being resumed, the SLURM job, or the next one."""
        if self.subcommand == "fit" and cfg.get("ckpt_path") == "last":
            found = find_last(root)
            if found is None:
                raise UserError(f"--ckpt_path last: no run with checkpoints/last.ckpt under {root}")
            cfg["ckpt_path"] = str(found[1])
            if first_process():  # DDP ranks re-run this command: one of them locks and cleans
                self._lock(root / f"version_{found[0]}")
                clean_for_resume(root / f"version_{found[0]}", read_checkpoint(found[1])["epoch"])
            print(f"Resuming {found[1]}")
            return found[0]
        job = os.environ.get("SLURM_JOB_ID")
        if job and os.environ.get("SLURM_JOB_NAME") not in (None, "bash", "interactive"):
            return job  # a requeued job finds its own folder and resumes with --ckpt_path last
        # A new run's folder is not created here (its lock sits beside it): DDP ranks
        # re-running this command and torchrun's processes must all find the same number.
        existing = [v for v, _ in versions(root) if isinstance(v, int)]
        version = max(existing, default=-1) + 1
        if self.subcommand == "fit" and not cfg.trainer.get("fast_dev_run") and first_process():
            self._lock(root / f"version_{version}")
        return version

    def _lock(self, run_dir: Path) -> None:
        """One writer per run folder: a `fit --ckpt_path last` on a folder in use is refused."""
        lock = RunLock(run_dir)
        HELD_LOCKS.append(lock)
        reason = lock.acquire()
        if reason:
            HELD_LOCKS.remove(lock)
            raise UserError(reason)

    @staticmethod
    def _keep_atomic_writer(trainer) -> None:
        """A user's own ``--trainer.plugins`` list keeps the atomic checkpoint writer unless it
        brings its own CheckpointIO."""
        plugins = _as_list(trainer.get("plugins"))
        io_plugins = [p for p in plugins if "CheckpointIO" in str(p.get("class_path", ""))]
        if not io_plugins:
            atomic = Namespace(class_path="lightning_mnist.run.folder.AtomicCheckpointIO")
            trainer.plugins = [*plugins, atomic]

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        # A removed callback group (`--early_stopping null`) is a no-op callback here.
        cfg = self._cfg(self.config_init)
        for key in CALLBACK_GROUPS:
            if cfg.get(key) is None:
                cfg[key] = Callback()
        return super().instantiate_trainer(**kwargs)

    def _check_ckpt(self) -> None:
        ckpt = self._cfg(self.config).get("ckpt_path")
        if ckpt and ckpt not in SPECIAL_CKPTS:
            loaded = self._ckpt[1] if self._ckpt and self._ckpt[0] == ckpt else None
            check_compatible(ckpt, self.model, loaded)

    def before_fit(self) -> None:
        # Checked here, before DDP starts its processes, so an error prints once.
        world = self.trainer.world_size
        self.datamodule.check_world_size(world)
        classes = get_spec(self.datamodule.dataset).num_classes
        if self.model.hparams.num_classes < classes:
            raise UserError(
                f"model.num_classes {self.model.hparams.num_classes} is fewer than the "
                f"{classes} classes of {self.datamodule.dataset}"
            )
        self._check_ckpt()
        self._check_monitors()
        batch = self.datamodule.batch_size
        print(
            f"Batch: {batch} images per optimizer step (global), {batch // world} per device "
            f"on {world} device(s)"
        )
        self._fit_t0 = time.perf_counter()

    before_validate = before_test = before_predict = _check_ckpt

    def _check_monitors(self) -> None:
        """A misspelled monitor is found now, not after the first epoch."""
        known = {f"{p}{m}" for p in ("", "val_") for m in ("loss", "accuracy", "samples")}
        for callback in self.trainer.callbacks:
            monitor = getattr(callback, "monitor", None)
            watched = isinstance(callback, ModelCheckpoint | EarlyStopping) and monitor
            if watched and monitor not in known:
                raise UserError(
                    f"{type(callback).__name__} monitors {monitor!r}, which is never logged; "
                    f"choose one of {sorted(known)}"
                )

    def after_fit(self) -> None:
        trainer = self.trainer
        if trainer.interrupted:
            return
        fit_seconds = time.perf_counter() - self._fit_t0
        recorder = next((c for c in trainer.callbacks if isinstance(c, HistoryRecorder)), None)
        # Testing from a checkpoint restores the callbacks' states too, which would roll
        # the history back to the best epoch: keep the fit's own record first.
        recorder = recorder.snapshot() if recorder else None
        best = self._best_checkpoint()
        # The tutorial evaluates the best model it saved (load_model('best_model.h5')).
        # Every rank must take the same path here, or the collective calls diverge.
        ckpt_path = "best" if best else None
        t0 = time.perf_counter()
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False)
        test_seconds = time.perf_counter() - t0
        # The system's own epoch means (the same on every rank), also when nothing is logged.
        test = {k: v for k, v in self.model.epoch_metrics.items() if k.startswith("test_")}
        if not trainer.is_global_zero:
            return
        if trainer.fast_dev_run:  # a smoke test: no run folder is written
            print(
                f"fast_dev_run: test accuracy {test['test_accuracy']:.4f} on "
                f"{int(test['test_samples'])} images"
            )
            return
        if recorder is None:
            print("no HistoryRecorder in trainer.callbacks: results.json and plots not written")
            return
        self._write_results(recorder, test, best, (fit_seconds, test_seconds))

    def _best_checkpoint(self) -> str:
        ckpt = self.trainer.checkpoint_callback
        return ckpt.best_model_path if ckpt is not None and not self.trainer.fast_dev_run else ""

    def _write_results(self, recorder, test: dict, best: str, seconds: tuple) -> None:
        trainer, run_dir = self.trainer, Path(self.run_dir)
        fit_seconds, test_seconds = seconds
        cfg = self._cfg(self.config)
        results = build_results(
            recorder,
            trainer,
            test,
            seed=int(cfg.get("seed_everything") or 0),
            dataset=self.datamodule.dataset,
            params=count_params(self.model.model),
            best_model=str(Path(best).resolve().relative_to(run_dir.resolve())) if best else "",
            fit_seconds=fit_seconds,
            best_epoch=read_checkpoint(best)["epoch"] + 1 if best else None,
            conv_path=conv_path(self.model.model, trainer.strategy.root_device),
            tune_malloc=bool(cfg.get("tune_malloc")),
        )
        results["timing"] = run_timing(
            recorder, fit_seconds, test_seconds, self.datamodule, trainer.strategy.checkpoint_io
        )
        results.update(measure_best_model(self.model, self.datamodule, run_dir))
        write_json(run_dir / "results.json", results)
        plot_history(results["history"], run_dir)
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


def first_process() -> bool:
    """Whether this is the process that started the command (not a DDP or torchrun rank > 0)."""
    return (os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0") == "0"


def check_flags_against(saved: dict, args: list[str], model: Any) -> None:
    """Refuse a ``--model.X`` flag that contradicts the checkpoint's own hyper-parameter."""
    for name in ARCHITECTURE:
        given = any(a == f"--model.{name}" or a.startswith(f"--model.{name}=") for a in args)
        if given and name in saved and model.get(name) != saved[name]:
            raise UserError(
                f"--model.{name} {model.get(name)} contradicts the checkpoint, which has "
                f"{name} {saved[name]}; drop the flag or use a checkpoint trained with it"
            )


def release_locks() -> None:
    """Release the run-folder locks."""
    while HELD_LOCKS:
        lock = HELD_LOCKS.pop()
        lock.release()
        folder = lock.path.parent  # the run root, removed if the lock made it and it stayed empty
        if lock.created_parent and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def check_config_files(args: list[str]) -> None:
    """Each ``--config FILE`` exists and holds a YAML mapping; else one line naming the file."""
    files = [b for a, b in zip(args, args[1:], strict=False) if a in ("--config", "-c")]
    files += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for name in files:
        path = Path(name)
        if not path.is_file():
            continue  # the parser says so, naming the file
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or one_line(e)
            raise UserError(f"{name}: not valid YAML{where} ({problem})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{name}: cannot be read ({one_line(e)})") from None
        if data is None:
            raise UserError(f"{name} is empty; a config holds keys such as trainer:, model:, data:")
        if not isinstance(data, dict):
            raise UserError(f"{name} is not a mapping of keys (trainer:, model:, data:, ...)")


def check_optimizer(config: Any) -> None:
    """The optimizer's own argument checks (a negative lr, ...), run before anything is built."""
    if not config or not config.get("class_path"):
        return
    module, name = config.class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    try:
        cls([torch.nn.Parameter(torch.zeros(1))], **dict(config.get("init_args") or {}))
    except ValueError as e:
        raise UserError(f"optimizer {name}: {one_line(e)}") from None


def check_root(root: Path) -> None:
    """Refuse a run root that is a file or cannot be written, before anything is built."""
    if root.exists() and not root.is_dir():
        raise UserError(f"--trainer.default_root_dir {root} is a file; give a folder")
    existing = next((p for p in [root, *root.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--trainer.default_root_dir {root}: {existing} is not writable")


def _as_list(value: Any) -> list:
    if value in (None, False, True):
        return []
    return list(value) if isinstance(value, list) else [value]


def _is(config: Any, cls: type) -> bool:
    path = config.get("class_path", "") if hasattr(config, "get") else ""
    return path.rsplit(".", 1)[-1] == cls.__name__


def argument_message(error: ArgumentError, args: list[str]) -> str:
    """The parser's error as one line, with a pointer to ``--help``."""
    command = " ".join(["lightning-mnist", *args[:1]])
    message = parser_message(error)
    if "does not accept option 'model." in message and "--ckpt_path" in args:
        # Lightning merges a checkpoint's saved hyper-parameters into the config.
        message += (
            ", which the --ckpt_path checkpoint holds: it was written by an older version "
            "(Adam's lr, betas and eps are --optimizer.* now)"
        )
    return f"{message} (see `{command} --help`)"


def main(argv: list[str] | None = None) -> int:
    """Console script ``lightning-mnist``: user mistakes become one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(message)s")
    LOG.setLevel(logging.INFO)  # show each fetch step
    try:
        if args[:1] == ["export"]:
            from lightning_mnist.interop.export import main as export_main

            return export_main(args[1:])
        check_config_files(args)
        cli = cli_main(argv)
    except USER_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        print(
            f"error: {e.filename or 'writing'}: {e.strerror}; free space or choose another "
            "--trainer.default_root_dir",
            file=sys.stderr,
        )
        return 2
    except ArgumentError as e:
        print(f"error: {argument_message(e, args)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # the argument parser has already printed its error line
        return e.code if isinstance(e.code, int) else 1
    finally:
        release_locks()
    writer = next(
        (c for c in getattr(cli.trainer, "callbacks", []) if hasattr(c, "failures")), None
    )
    return 1 if writer is not None and writer.failures else 0


def cli_main(args: list[str] | None = None, run: bool = True) -> MNISTCLI:
    """Entry point of ``lightning-mnist``; tests call it with an argument list.

    Args:
        args: The arguments (default: ``sys.argv[1:]``).
        run: Run the subcommand; False builds the model, data and trainer only (and then
            ``args`` has no subcommand).
    """
    # With `--optimizer`/`optimizer:` LightningCLI replaces the model's own (Keras Adam)
    # configure_optimizers, as intended; its notice about that is not news here.
    warnings.filterwarnings("ignore", message=".*configure_optimizers` will be overridden")
    return MNISTCLI(
        MNISTClassifier,
        MNISTDataModule,
        seed_everything_default=0,
        save_config_callback=RunConfig,
        # A parser error is raised, not printed after the usage screen: main() shows one line.
        parser_kwargs={
            "exit_on_error": False,
            **{s: {"exit_on_error": False} for s in SUBCOMMANDS},
        },
        args=args,
        run=run,
    )


def parser_message(e: BaseException) -> str:
    """The useful line of a jsonargparse error (its first line is often only a preamble)."""
    lines = [x.strip(" -") for x in str(e).splitlines() if x.strip(" -")]
    useful = [
        x for x in lines if "No action for key" in x or "Not a valid" in x or "Unrecognized" in x
    ]
    text = useful[0] if useful else (lines[-1] if lines else type(e).__name__)
    return text if len(lines) < 2 or text == lines[0] else f"{lines[0].rstrip(':')}: {text}"


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
