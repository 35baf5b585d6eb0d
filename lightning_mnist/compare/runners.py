"""Each framework's training as a child process, and the checks before any run. A child has
every core, and lightning_mnist never imports Keras or TensorFlow (docs/parity.md #12)."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lightning_mnist.atomic import next_free, write_json
from lightning_mnist.compare.report import PROCESS_JSON
from lightning_mnist.errors import UserError
from lightning_mnist.presets import preset_path

# A child never imports from the working directory (`python -m` would put it first on
# sys.path, so a yaml.py there would run): -P (3.11+) leaves it out. 3.10 has only -I, which
# also ignores the PYTHON* variables, hence -u for the unbuffered output PYTHONUNBUFFERED gives.
PYTHON = [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable, "-I", "-u"]
EPOCH_LINE = "lightning_mnist.compare.epoch_line.EpochLine"


class CompareError(UserError):
    """A user mistake or a failed run; the message is one line saying what to do."""


def refuse_existing(out: Path, hint: str = "") -> None:
    """Refuse an ``out`` that exists and is not empty; ``hint`` ends the message."""
    if out.exists() and any(out.iterdir()):
        raise CompareError(
            f"{out} already exists; choose a new --out (e.g. {next_free(out)}){hint}"
        )


def check_data(data_dir: str, dataset: str = "mnist", create: bool = False) -> None:
    """Fetch and verify ``data_dir``'s IDX files; ``create`` makes the folder (default dir only)."""
    from lightning_mnist.data.catalogue import DataError
    from lightning_mnist.data.fetch import prepare

    if create:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    if not Path(data_dir).is_dir():
        raise CompareError(f"data dir {data_dir} does not exist; pass --data.data_dir DIR")
    try:
        prepare(data_dir, dataset)
    except DataError as e:
        raise CompareError(str(e)) from None


def check_gpu(frameworks: set[str]) -> None:
    """Refuse ``--trainer.accelerator gpu`` unless every framework that will run sees a GPU."""
    import torch

    if "lightning" in frameworks and not torch.cuda.is_available():
        raise CompareError(
            "--trainer.accelerator gpu: torch sees no GPU (torch.cuda.is_available())"
        )
    if "keras" in frameworks:
        probe = "import tensorflow as tf, sys; sys.exit(not tf.config.list_physical_devices('GPU'))"
        found = subprocess.run([*PYTHON, "-c", probe], env=child_env(), capture_output=True)
        if found.returncode != 0:
            raise CompareError(
                "--trainer.accelerator gpu: TensorFlow sees no GPU (install "
                "tensorflow[and-cuda]), or pass --frameworks [lightning]"
            )


def finished_results(run: Path) -> Path | None:
    """The newest results.json under a Keras run folder or a Lightning default_root_dir."""
    found = sorted(run.glob("results.json")) or sorted(
        run.glob("version_*/results.json"), key=lambda p: p.stat().st_mtime
    )
    return found[-1] if found else None


def child_env(accelerator: str = "gpu") -> dict[str, str]:
    """Unbuffered, TF's info logs hidden; on ``cpu`` no GPU visible (TF would take one itself)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if accelerator == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def stream(
    cmd: list[str], prefix: str, log: Path, quiet: bool = False, accelerator: str = "cpu"
) -> list[str]:
    """Run ``cmd``, echo each output line after ``prefix`` (unless ``quiet``), keep the output in
    ``log`` and return its lines; a non-zero exit is a CompareError. Beside ``log`` goes
    ``process.json``: the launch time and wall seconds (the report's start-up time)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with log.open("w") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        launched_at, t0 = time.time(), time.perf_counter()
        pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        proc = subprocess.Popen(cmd, env=child_env(accelerator), **pipe)
        try:
            for line in proc.stdout:
                f.write(line)
                lines.append(line.rstrip("\n"))
                if not quiet:
                    print(prefix + lines[-1], flush=True)
            rc = proc.wait()
            seconds = time.perf_counter() - t0
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if rc != 0:
        tail = " | ".join(x for x in lines[-3:] if x.strip())
        command = shlex.join(cmd[: len(PYTHON) + 2])
        raise CompareError(f"{command}... exited {rc}: {tail} (full output: {log})")
    write_json(log.parent / PROCESS_JSON, {"launched_at": launched_at, "process_seconds": seconds})
    return lines


def run_keras(
    run: Path,
    data_dir: str,
    seed: int,
    epochs: int,
    patience: int,
    quiet: bool = False,
    extra: tuple[str, ...] = (),
    dataset: str = "mnist",
    accelerator: str = "cpu",
) -> dict[str, Any]:
    """``python -m keras_reference`` into the new run folder ``run``; its results.json.
    ``extra``: more options, e.g. ``("--jit_compile", "true")``. Options carry Lightning's names."""
    cmd = [*PYTHON, "-m", "keras_reference", "--data.data_dir", str(data_dir), *extra]
    cmd += ["--data.dataset", dataset, "--seed_everything", str(seed)]
    cmd += ["--trainer.max_epochs", str(epochs), "--early_stopping.patience", str(patience)]
    cmd += ["--out", str(run), "--verbose", "2"]  # a line per epoch
    stream(cmd, f"[keras s{seed}] ", run / "run.log", quiet, accelerator)
    return json.loads((run / "results.json").read_text())


def run_lightning(
    run: Path,
    data_dir: str,
    seed: int,
    epochs: int,
    patience: int,
    quiet: bool = False,
    config: str | Path = "tutorial",
    extra: tuple[str, ...] = (),
    dataset: str = "mnist",
    accelerator: str = "cpu",
) -> dict[str, Any]:
    """``lightning-mnist fit`` on one device into a new ``version_K`` under ``run``; its
    results.json. ``config``: a preset's name or a YAML path; ``extra``: more options."""
    try:
        config = preset_path(config)
    except FileNotFoundError as e:
        raise CompareError(str(e)) from None
    cmd = [*PYTHON, "-m", "lightning_mnist.cli", "fit", "--config", str(config)]
    cmd += ["--data.data_dir", str(data_dir), "--data.dataset", dataset, "--data.fetch", "false"]
    cmd += ["--trainer.accelerator", accelerator, "--trainer.devices", "1"]
    cmd += ["--trainer.default_root_dir", str(run), "--seed_everything", str(seed)]
    cmd += ["--trainer.max_epochs", str(epochs), "--early_stopping.patience", str(patience)]
    # No progress bar (it would flood a pipe); EpochLine prints one line per epoch instead.
    cmd += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cmd += [f"--trainer.callbacks+={EPOCH_LINE}", *extra]
    stream(cmd, f"[lightning s{seed}] ", run / "run.log", quiet, accelerator)
    path = finished_results(run)  # run is new, so its only version_N is this run's
    if path is None:
        raise CompareError(
            f"the Lightning run wrote no results.json under {run}; see {run}/run.log"
        )
    return json.loads(path.read_text())
