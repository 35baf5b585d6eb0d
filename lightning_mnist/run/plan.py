"""Which run folder a command writes, decided before anything is built, and the config's
paths pointed at it.

The run folder is ``<default_root_dir>/version_N``: the next free N, the run being resumed
(``fit --ckpt_path last``), or the SLURM job id. A SLURM job's new fit never writes over a run
already in its folder; a requeued job continues it with ``--ckpt_path`` of its ``last.ckpt``.
One process writes a run folder at a time (``run/lock.py``).
"""

from __future__ import annotations

import importlib
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_only

from lightning_mnist.checkpoints import read_checkpoint
from lightning_mnist.errors import UserError
from lightning_mnist.run.checkpointing import inside
from lightning_mnist.run.folder import DEFAULT_ROOT, clean_for_resume, find_last, versions
from lightning_mnist.run.lock import lock_or_refuse, try_lock

CALLBACK_GROUPS = ("checkpoint", "early_stopping")
# The version rank 0 chose, for the DDP processes Lightning starts (they re-run the command).
VERSION_ENV = "LIGHTNING_MNIST_RUN_VERSION"


def say(*parts: object) -> None:
    """One line for the user, from the first process only (DDP ranks re-run the command)."""
    if first_process():
        print(*parts)


def first_process() -> bool:
    """Whether this is the process that started the command (not a DDP, torchrun or srun
    rank > 0), by Lightning's own rank detection."""
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
    resolve_evaluation_ckpt(subcommand, cfg, root)
    repair_for_trainer(cfg)
    resumed = _resumed_run(root, cfg.get("ckpt_path")) if subcommand == "fit" else None
    version = choose_version(subcommand, cfg, root, locks, resumed)
    run_dir = None if trainer.get("fast_dev_run") else root / f"version_{version}"
    fill_run_paths(cfg, root, version, run_dir)
    if subcommand == "fit" and run_dir is not None and slurm_job() is not None:
        # Lightning's SLURM plugin saves hpc_ckpt_N.ckpt in default_root_dir on SIGUSR1, and a
        # fit without --ckpt_path resumes from the newest one there: in the run's own folder,
        # another job's never starts this one.
        trainer.default_root_dir = str(run_dir)
    dirpath = cfg.checkpoint.init_args.get("dirpath") if cfg.get("checkpoint") else None
    if subcommand == "fit" and resumed is None and dirpath:
        check_empty_checkpoints(Path(dirpath))
    keep_atomic_writer(trainer)
    return run_dir


def say_batch(batch: int, trainer: Any) -> None:
    """The start-up line: images per optimizer step (accumulated batches summed in), and per
    device."""
    world, steps = trainer.world_size, trainer.accumulate_grad_batches
    per_step = f"{batch * steps} images per optimizer step (global, {steps} batches)"
    say(
        f"Batch: {per_step if steps > 1 else f'{batch} images per optimizer step (global)'}, "
        f"{batch // world} per device on {world} device(s)"
    )


def resolve_evaluation_ckpt(subcommand: str | None, cfg: Any, root: Path) -> None:
    """validate/test/predict evaluate a trained checkpoint, never random weights silently."""
    ckpt = cfg.get("ckpt_path")
    if subcommand not in ("validate", "test", "predict"):
        return
    if ckpt is None and not cfg.get("evaluate_initial_weights"):
        raise UserError(
            f"{subcommand} needs --ckpt_path CKPT (a trained checkpoint); "
            "--evaluate_initial_weights true evaluates the untrained network"
        )


def resolve_special_ckpt(subcommand: str | None, cfg: Any) -> None:
    """``--ckpt_path last`` (the newest run's last.ckpt) and, for validate/test/predict,
    ``best`` become that file before Lightning reads a checkpoint's hyper-parameters, so they
    apply and a flag that contradicts them is refused, as for a checkpoint named by path."""
    ckpt = cfg.get("ckpt_path")
    if ckpt == "last" or (ckpt == "best" and subcommand in ("validate", "test", "predict")):
        root = Path(cfg.trainer.get("default_root_dir") or DEFAULT_ROOT)
        version, path = _last(root) if ckpt == "last" else (None, _best(root))
        cfg["ckpt_path"] = str(path)
        if subcommand != "fit":  # a fit says "Resuming <file>" when it plans the run
            say(f"{subcommand}: {cfg['ckpt_path']} (--ckpt_path {ckpt})")
        elif first_process():  # what plan_run refuses, before the checkpoint is read
            run_dir = root / f"version_{version}"
            check_not_finished(run_dir, cfg.trainer.get("max_epochs"))
            with ExitStack() as probe:
                lock_or_refuse(run_dir, probe)


def _best(root: Path) -> Path:
    """The best checkpoint of the newest finished run under ``root`` (its results.json says
    which), as ``last`` is the newest run's last.ckpt."""
    for _, folder in reversed(versions(root)):
        try:
            name = json.loads((folder / "results.json").read_text()).get("best_model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(name, str) and name and (found := inside(folder / "checkpoints", name)):
            return found
    raise UserError(f"--ckpt_path best: no finished run with a best checkpoint under {root}")


def _last(root: Path) -> tuple[int, Path]:
    found = find_last(root)
    if found is None:
        raise UserError(f"--ckpt_path last: no run with checkpoints/last.ckpt under {root}")
    return found


def repair_for_trainer(cfg: Any) -> None:
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
    if trainer.get("fast_dev_run") and cfg.get("checkpoint"):
        # A smoke test writes nothing; ModelCheckpoint.on_train_end would save last.ckpt.
        cfg.checkpoint.init_args.save_last = False


def choose_version(
    subcommand: str | None, cfg: Any, root: Path, locks: ExitStack, resumed: tuple | None
) -> int | str:
    """The run being resumed, the SLURM job, or the next free version (locked for a fit)."""
    if resumed is not None:
        version, ckpt = resumed
        check_not_finished(root / f"version_{version}", cfg.trainer.get("max_epochs"))
        cfg["ckpt_path"] = str(ckpt)
        if first_process():  # DDP ranks re-run this command: one of them locks and cleans
            lock_or_refuse(root / f"version_{version}", locks)
            epoch = read_checkpoint(ckpt, resumable=True)["epoch"]
            clean_for_resume(root / f"version_{version}", epoch)
        say(f"Resuming {ckpt}")
        return version
    job = slurm_job()
    if job is not None:
        if subcommand == "fit" and not cfg.trainer.get("fast_dev_run") and first_process():
            claim_job_folder(root, job, locks)
        return job
    if not first_process() and os.environ.get(VERSION_ENV):
        return int(os.environ[VERSION_ENV])
    # A new run's folder is not created here (its lock sits beside it): DDP ranks
    # re-running this command must find the same number.
    version = max((v for v, _ in versions(root)), default=-1) + 1
    if subcommand == "fit" and not cfg.trainer.get("fast_dev_run") and first_process():
        while not try_lock(root / f"version_{version}", locks):
            version += 1  # another fit started at the same moment took it
        os.environ[VERSION_ENV] = str(version)
    return version


def slurm_job() -> str | None:
    """The id of the SLURM batch job this runs in (None outside one, and in an interactive
    allocation, named ``bash`` or ``interactive`` as Lightning's SLURM detection has it)."""
    job = os.environ.get("SLURM_JOB_ID")
    interactive = os.environ.get("SLURM_JOB_NAME") in (None, "bash", "interactive")
    return job if job and not interactive else None


def claim_job_folder(root: Path, job: str, locks: ExitStack) -> None:
    """A SLURM job's new fit writes its folder alone, and never over a run already there
    (a requeued job, or a second fit of the job): that run is continued, or kept."""
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
    """The run a fit continues in its own folder: the ``last.ckpt`` of one of this root's run
    folders (``--ckpt_path last`` arrives here as that file), as the interrupt message prints it."""
    path = Path(ckpt) if ckpt and ckpt not in ("best", "hpc", "registry") else None
    if path is None or path.name != "last.ckpt" or path.parent.name != "checkpoints":
        return None
    for version, folder in versions(root):
        if path.resolve().parent.parent == folder.resolve():
            return version, path
    return None


def check_not_finished(run_dir: Path, max_epochs: int | None) -> None:
    """A finished run is resumed only to train it for more epochs; else nothing changes."""
    try:
        done = json.loads((run_dir / "results.json").read_text()).get("epochs_run")
    except (OSError, ValueError, AttributeError):
        return  # no (readable) record: the run did not finish
    if isinstance(done, int) and (max_epochs is None or -1 < max_epochs <= done):
        raise UserError(
            f"{run_dir} has finished ({done} epochs, results.json written): nothing to "
            "resume; raise --trainer.max_epochs to train it on, or start a new run"
        )


def check_empty_checkpoints(folder: Path) -> None:
    """A new run never writes into a folder that already holds another run's checkpoints."""
    if folder.is_dir() and any(folder.glob("*.ckpt")):
        raise UserError(
            f"--checkpoint.dirpath {folder} already holds checkpoints of another run; give a "
            "new or empty folder (or leave it out: each run gets its own)"
        )


def fill_run_paths(cfg: Any, root: Path, version: int | str, run_dir: Path | None) -> None:
    """Point the run logger, the checkpoints and the prediction files at the run folder."""
    from lightning_mnist.predict.writer import PredictionCSV
    from lightning_mnist.run.logger import RunLogger

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
        cls = class_of(callback)
        if cls is not None and issubclass(cls, PredictionCSV):
            callback.init_args.dirpath = callback.init_args.get("dirpath") or str(run_dir)


def keep_atomic_writer(trainer: Any) -> None:
    """A user's own ``--trainer.plugins`` list keeps the atomic checkpoint writer unless it
    brings its own CheckpointIO."""
    from lightning.pytorch.plugins.io import CheckpointIO

    plugins = as_list(trainer.get("plugins"))
    if not any(issubclass(class_of(p) or object, CheckpointIO) for p in plugins):
        atomic = Namespace(class_path="lightning_mnist.run.checkpointing.AtomicCheckpointIO")
        trainer.plugins = [*plugins, atomic]
