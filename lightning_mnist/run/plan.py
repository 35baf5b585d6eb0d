"""Which run folder a command writes, decided before anything is built, and the config's paths
pointed at it: ``<default_root_dir>/version_N``, for the next free N, the run being resumed
(``fit --ckpt_path last``) or the SLURM job id. One process writes a run folder at a time."""

import importlib
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from lightning_mnist.checkpoints import read_checkpoint
from lightning_mnist.errors import UserError
from lightning_mnist.predict.writer import PredictionCSV
from lightning_mnist.run.checkpointing import inside
from lightning_mnist.run.folder import DEFAULT_ROOT, clean_for_resume, find_last, no_run, versions
from lightning_mnist.run.lock import lock_or_refuse, try_lock
from lightning_mnist.run.logger import RunLogger

CALLBACK_GROUPS = ("checkpoint", "early_stopping")
EVALUATING = ("validate", "test", "predict")
# The version rank 0 chose, for the DDP processes Lightning starts (they re-run the command).
VERSION_ENV = "LIGHTNING_MNIST_RUN_VERSION"


def say(*parts: object) -> None:
    """One line for the user, from the first process only (DDP ranks re-run the command)."""
    if first_process():
        print(*parts)


def first_process() -> bool:
    """Whether this is the command's own process, not a DDP, torchrun or srun rank > 0."""
    return (rank_zero_only.rank or 0) == 0


def class_of(config: Any) -> type | None:
    """The class a ``class_path`` config names (None for anything else)."""
    path = config.get("class_path") if hasattr(config, "get") else None
    if not path or "." not in path:
        return None
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name, None)


def as_list(value: Any) -> list:
    if value in (None, False, True):
        return []
    return list(value) if isinstance(value, list) else [value]


def plan_run(subcommand: str | None, cfg: Any, locks: ExitStack) -> Path | None:
    """The run folder of this command (None for a smoke test), with the config's logger,
    checkpoint and prediction paths pointed at it."""
    trainer = cfg.trainer
    root = Path(trainer.get("default_root_dir") or DEFAULT_ROOT)
    untrained = cfg.get("ckpt_path") is None and not cfg.get("evaluate_initial_weights")
    if subcommand in EVALUATING and untrained:  # never random weights silently
        raise UserError(
            f"{subcommand} needs --ckpt_path CKPT (a trained checkpoint); "
            "--evaluate_initial_weights true evaluates the untrained network"
        )
    repair_for_trainer(cfg, subcommand)
    resumed = _resumed_run(root, cfg.get("ckpt_path")) if subcommand == "fit" else None
    version = choose_version(subcommand, cfg, root, locks, resumed)
    run_dir = None if trainer.get("fast_dev_run") else root / f"version_{version}"
    fill_run_paths(cfg, root, version, run_dir)
    if subcommand == "fit" and run_dir is not None and slurm_job() is not None:
        # Lightning's SLURM plugin saves hpc_ckpt_N.ckpt in default_root_dir on SIGUSR1, and a fit
        # resumes from the newest there: in the run's own folder, no other job's starts this one.
        trainer.default_root_dir = str(run_dir)
    dirpath = cfg.checkpoint.init_args.get("dirpath") if cfg.get("checkpoint") else None
    if subcommand == "fit" and resumed is None and dirpath and any(Path(dirpath).glob("*.ckpt")):
        raise UserError(  # a new run never writes among another run's checkpoints
            f"--checkpoint.dirpath {Path(dirpath)} already holds checkpoints of another run; "
            "give a new or empty folder (or leave it out: each run gets its own)"
        )
    keep_atomic_writer(trainer)
    return run_dir


def say_batch(batch: int, trainer: Any) -> None:
    """The start-up line: images per optimizer step (accumulated batches summed in), per device."""
    world, steps = trainer.world_size, trainer.accumulate_grad_batches
    accumulated = f", {steps} batches" if steps > 1 else ""
    say(
        f"Batch: {batch * steps} images per optimizer step (global{accumulated}), "
        f"{batch // world} per device on {world} device(s)"
    )


def resolve_special_ckpt(subcommand: str | None, cfg: Any) -> None:
    """``--ckpt_path last`` (the newest run's last.ckpt), and ``best`` to evaluate, become that
    file before Lightning reads its hyper-parameters, so a flag contradicting them is refused."""
    ckpt = cfg.get("ckpt_path")
    if ckpt == "last" or (ckpt == "best" and subcommand in EVALUATING):
        root = Path(cfg.trainer.get("default_root_dir") or DEFAULT_ROOT)
        version, path = find_last(root) if ckpt == "last" else (None, _best(root))
        cfg["ckpt_path"] = str(path)
        if subcommand != "fit":  # a fit says "Resuming <file>" when it plans the run
            say(f"{subcommand}: {cfg['ckpt_path']} (--ckpt_path {ckpt})")
        elif first_process():  # what plan_run refuses, before the checkpoint is read
            run_dir = root / f"version_{version}"
            check_not_finished(run_dir, cfg.trainer.get("max_epochs"))
            with ExitStack() as probe:
                lock_or_refuse(run_dir, probe)


def _recorded(run_dir: Path, key: str) -> Any:
    """``key`` of the run's results.json; None where there is no readable one."""
    try:
        return json.loads((run_dir / "results.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _best(root: Path) -> Path:
    """The best checkpoint of the newest finished run under ``root``, as its results.json says."""
    for _, folder in reversed(versions(root)):
        name = _recorded(folder, "best_model")
        if isinstance(name, str) and name and (found := inside(folder / "checkpoints", name)):
            return found
    raise no_run(root, "best", "no finished run with a best checkpoint")


def repair_for_trainer(cfg: Any, subcommand: str | None) -> None:
    """Drop what the Trainer settings forbid, saying so in one line."""
    trainer = cfg.trainer
    if trainer.get("barebones"):
        # Barebones mode logs nothing: no logger, no checkpoints, nothing to stop early on.
        trainer.logger = False
        trainer.enable_checkpointing = False
        for key in CALLBACK_GROUPS:
            cfg[key] = None
        say("barebones: no logger, checkpoints or early stopping; results.json is kept")
    elif trainer.get("enable_checkpointing") is False and cfg.get("checkpoint"):
        cfg.checkpoint = None
        say("checkpointing off: no checkpoints; the final test uses the last weights")
    elif not cfg.get("checkpoint") and trainer.get("enable_checkpointing") is not True:
        # Without this Lightning would add a default ModelCheckpoint of its own.
        trainer.enable_checkpointing = False
        say("checkpoint removed: no checkpoints; the final test uses the last weights")
    if subcommand == "fit" and trainer.get("limit_val_batches") == 0:  # no validation
        _no_validation(cfg)
    if trainer.get("fast_dev_run") and cfg.get("checkpoint"):
        # A smoke test writes nothing; ModelCheckpoint.on_train_end would save last.ckpt.
        cfg.checkpoint.init_args.save_last = False


def _no_validation(cfg: Any) -> None:
    """Without validation a ``val_`` monitor has nothing to watch: as Keras skips it, so does
    the run (EarlyStopping would end it in an error), saying so; last.ckpt is still saved."""
    watched = [k for k in CALLBACK_GROUPS if cfg.get(k)]
    watched = [k for k in watched if str(cfg[k].init_args.get("monitor")).startswith("val_")]
    if "early_stopping" in watched:
        cfg.early_stopping = None
    if "checkpoint" in watched:
        cfg.checkpoint.init_args.monitor, cfg.checkpoint.init_args.save_top_k = None, 0
    names = {"early_stopping": "early stopping", "checkpoint": "best checkpoint"}
    if watched:
        then = "; the final test uses the last weights" if "checkpoint" in watched else ""
        left_out = " or ".join(names[k] for k in watched)
        say(f"validation off (limit_val_batches 0): no {left_out} on a val_ metric{then}")


def choose_version(
    subcommand: str | None, cfg: Any, root: Path, locks: ExitStack, resumed: tuple | None
) -> int | str:
    """The run being resumed, the SLURM job, or the next free version (locked for a fit)."""
    if resumed is not None:
        version, ckpt = resumed
        run_dir = root / f"version_{version}"
        check_not_finished(run_dir, cfg.trainer.get("max_epochs"))
        cfg["ckpt_path"] = str(ckpt)
        if first_process():  # DDP ranks re-run this command: one of them locks and cleans
            lock_or_refuse(run_dir, locks)
            clean_for_resume(run_dir, read_checkpoint(ckpt, resumable=True)["epoch"])
        say(f"Resuming {ckpt}")
        return version
    new_fit = subcommand == "fit" and not cfg.trainer.get("fast_dev_run") and first_process()
    if (job := slurm_job()) is not None:
        if new_fit:
            claim_job_folder(root, job, locks)
        return job
    if not first_process() and os.environ.get(VERSION_ENV):
        return int(os.environ[VERSION_ENV])
    # Not created here (its lock sits beside it): DDP ranks re-running this find the same N.
    version = max((v for v, _ in versions(root)), default=-1) + 1
    if new_fit:
        while not try_lock(root / f"version_{version}", locks):
            version += 1  # another fit started at the same moment took it
        os.environ[VERSION_ENV] = str(version)
    return version


def slurm_job() -> str | None:
    """The SLURM batch job's id; None outside one and, as for Lightning, in an interactive one."""
    job = os.environ.get("SLURM_JOB_ID")
    interactive = os.environ.get("SLURM_JOB_NAME") in (None, "bash", "interactive")
    return job if job and not interactive else None


def claim_job_folder(root: Path, job: str, locks: ExitStack) -> None:
    """A SLURM job's new fit writes its folder alone, never over a run already there."""
    run_dir = root / f"version_{job}"
    lock_or_refuse(run_dir, locks)
    if run_dir.is_dir() and any(p.is_file() for p in run_dir.rglob("*")):
        last = run_dir / "checkpoints" / "last.ckpt"
        how = f"continue it with --ckpt_path {last}" if last.is_file() else "remove it"
        raise UserError(
            f"run folder {run_dir} of SLURM job {job} already holds a run; {how}, "
            "or choose another --trainer.default_root_dir"
        )


def _resumed_run(root: Path, ckpt: str | None) -> tuple[int, Path] | None:
    """``(version, ckpt)`` when ``ckpt`` is the last.ckpt of a run folder under ``root``."""
    path = Path(ckpt) if ckpt and ckpt not in ("best", "hpc", "registry") else None
    if path is None or path.name != "last.ckpt" or path.parent.name != "checkpoints":
        return None
    run = path.resolve().parent.parent
    return next(((v, path) for v, folder in versions(root) if folder.resolve() == run), None)


def check_not_finished(run_dir: Path, max_epochs: int | None) -> None:
    """A finished run is resumed only to train it for more epochs; else nothing changes."""
    done = _recorded(run_dir, "epochs_run")  # None: the run did not finish
    if isinstance(done, int) and (max_epochs is None or -1 < max_epochs <= done):
        raise UserError(
            f"{run_dir} has finished ({done} epochs, results.json written): nothing to "
            "resume; raise --trainer.max_epochs to train it on, or start a new run"
        )


def fill_run_paths(cfg: Any, root: Path, version: int | str, run_dir: Path | None) -> None:
    """Point the run logger, the checkpoints and the prediction files at the run folder."""
    trainer = cfg.trainer
    for logger in as_list(trainer.get("logger")):
        if class_of(logger) is RunLogger:
            logger.init_args.save_dir = logger.init_args.get("save_dir") or str(root)
            if logger.init_args.get("version") is None:
                logger.init_args.version = version
    if run_dir is None:
        return
    if cfg.get("checkpoint") and not cfg.checkpoint.init_args.get("dirpath"):
        cfg.checkpoint.init_args.dirpath = str(run_dir / "checkpoints")
    for callback in as_list(trainer.get("callbacks")):
        if issubclass(class_of(callback) or object, PredictionCSV):
            callback.init_args.dirpath = callback.init_args.get("dirpath") or str(run_dir)


def keep_atomic_writer(trainer: Any) -> None:
    """A user's ``--trainer.plugins`` keep the atomic checkpoint writer, unless one is a
    CheckpointIO."""
    plugins = as_list(trainer.get("plugins"))
    if not any(issubclass(class_of(p) or object, CheckpointIO) for p in plugins):
        atomic = Namespace(class_path="lightning_mnist.run.checkpointing.AtomicCheckpointIO")
        trainer.plugins = [*plugins, atomic]
