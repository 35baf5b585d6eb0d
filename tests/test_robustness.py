"""Reproducible runs, exact resume after a kill, atomic checkpoints (one-line errors for
bad input are tests/test_hostile.py's)."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers import cli_args

from lightning_mnist.run.checkpointing import AtomicCheckpointIO

LOGGER = "{class_path: RunLogger, init_args: {flush_logs_every_n_steps: 1}}"
# Short epochs (30 of 188 batches) keep these tests fast; validation and test stay complete.
# Every step's loss is logged and flushed, so metrics.csv shows how far a killed run got.
SHORT = ["--trainer.limit_train_batches", "30", "--early_stopping.patience", "100"]
SHORT += ["--trainer.log_every_n_steps", "1", "--trainer.logger", LOGGER]


def fit_args(data_dir: Path, root: Path, epochs: int, *extra: str) -> list[str]:
    return ["fit", *cli_args(data_dir, root, "--trainer.max_epochs", str(epochs), *SHORT, *extra)]


def _default_sigint() -> None:
    # A runner started as a background job (no job control) ignores SIGINT, and an ignored
    # SIGINT is inherited: the child would never see the Ctrl-C this test sends. Python
    # installs its KeyboardInterrupt handler only where SIGINT is not ignored at start-up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_fit(data_dir: Path, root: Path, epochs: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lightning_mnist.cli", *fit_args(data_dir, root, epochs, *extra)]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_sigint,
    )


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def final_state(run: Path) -> tuple[dict, dict]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    results = json.loads((run / "results.json").read_text())
    return ckpt["state_dict"], results


def assert_same_run(a: Path, b: Path) -> None:
    (wa, ra), (wb, rb) = final_state(a), final_state(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bitwise
    assert ra["history"] == rb["history"]
    assert (ra["best_epoch"], ra["test_accuracy"]) == (rb["best_epoch"], rb["test_accuracy"])


@pytest.fixture(scope="module")
def reference_run(data_dir, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run, seed 0."""
    root = tmp_path_factory.mktemp("reference")
    finish(run_fit(data_dir, root, 3))
    return root / "version_0"


@pytest.mark.real_data
@pytest.mark.slow
def test_same_seed_gives_bitwise_identical_runs(reference_run, data_dir, tmp_path):
    finish(run_fit(data_dir, tmp_path, 3))
    assert_same_run(reference_run, tmp_path / "version_0")


def epochs_logged(metrics: Path) -> set[int]:
    """The epochs (from 0) that have a row in ``metrics.csv`` so far."""
    try:
        rows = list(csv.DictReader(metrics.open(newline="")))
    except OSError:
        return set()
    return {int(float(r["epoch"])) for r in rows if r.get("epoch")}


def wait_for_epoch(metrics: Path, epoch: int, proc: subprocess.Popen, timeout=300) -> None:
    """Until ``metrics.csv`` has a step row of ``epoch``: the run is inside that epoch."""
    t0 = time.monotonic()
    while epoch not in epochs_logged(metrics):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_run_resumes_exactly(sig, reference_run, data_dir, tmp_path):
    proc = run_fit(data_dir, tmp_path, 3)
    run = tmp_path / "version_0"
    wait_for_epoch(run / "metrics.csv", 1, proc)  # epoch 1 finished, epoch 2 has begun
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    # A shell's status for a signal: 130 for Ctrl-C, 143 for SIGTERM (SIGKILL: killed).
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + sig), out[-2000:]
    if sig != signal.SIGKILL:  # a graceful stop saves where it was
        assert (run / "checkpoints" / "interrupted.ckpt").is_file(), out[-2000:]
    assert not (run / "results.json").exists()
    # Where the kill landed: inside epoch 2, whose rows are on disk and must be dropped.
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and 1 in epochs_logged(run / "metrics.csv")
    # What a kill in the middle of a checkpoint write leaves: a temp file, and a new best
    # written while the old one was not yet deleted.
    orphan = run / "checkpoints" / ".last.ckpt.x1y2.tmp"
    orphan.write_bytes(b"half a checkpoint")
    stale = run / "checkpoints" / "best-00-9.9999.ckpt"
    stale.write_bytes(b"an older best")
    out = finish(run_fit(data_dir, tmp_path, 3, "--ckpt_path", "last"))
    assert "Resuming" in out
    assert not (tmp_path / "version_1").exists()  # resumed in its own run folder
    assert_same_run(reference_run, run)
    assert not orphan.exists() and not stale.exists()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1  # save_top_k: 1
    # the rows of the epoch the kill cut short are dropped: the log equals an uninterrupted one
    assert (run / "metrics.csv").read_text() == (reference_run / "metrics.csv").read_text()
    with FileLock(tmp_path / ".version_0.lock", timeout=0):  # released when the command ended
        pass


@pytest.mark.real_data
def test_moved_run_folder_resumes_and_tests_its_own_best(data_dir, tmp_path):
    first = tmp_path / "first"
    finish(run_fit(data_dir, first, 2))
    moved = tmp_path / "moved"
    shutil.move(str(first), str(moved))
    out = finish(run_fit(data_dir, moved, 3, "--ckpt_path", "last"))
    assert "Resuming" in out and not first.exists()
    run = moved / "version_0"
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == 3
    assert (run / results["best_model"]).is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"v": torch.arange(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        io.save_checkpoint({"v": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["v"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_a_checkpoint_failing_at_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    """A full disk often shows only when the data is flushed (delayed allocation): the
    previous checkpoint stays whole and the error reaches the caller."""
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"v": torch.arange(3)}, path)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lightning_mnist.atomic.os.fsync", full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"v": torch.arange(5)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["v"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


# Early stopping ends these runs after epoch 2 (no improvement of 10 in the loss).
STOP = ("--early_stopping.patience", "0", "--early_stopping.min_delta", "10")


@pytest.fixture(scope="module")
def stopped_run(data_dir, tmp_path_factory) -> dict:
    """The record of an uninterrupted run that stops early."""
    root = tmp_path_factory.mktemp("stopped")
    # In a child, as the killed run is: the suite's process may hold other thread settings.
    finish(run_fit(data_dir, root, 5, *STOP))
    reference = json.loads((root / "version_0" / "results.json").read_text())
    assert reference["epochs_run"] == 2  # it did stop early
    return reference


@pytest.mark.real_data
@pytest.mark.parametrize("window", ["test", "results"])
def test_killed_after_early_stopping_resumes_exactly(window, stopped_run, data_dir, tmp_path):
    # A real SIGKILL in the final test, or between results.json's temp file and its rename.
    cmd = [sys.executable, str(Path(__file__).with_name("kill_at.py")), window]
    done = subprocess.run([*cmd, *fit_args(data_dir, tmp_path, 5, *STOP)], timeout=600)
    assert done.returncode == -signal.SIGKILL
    run = tmp_path / "version_0"
    temps = list(run.glob(".results.json.*.tmp"))
    assert not (run / "results.json").exists() and len(temps) == (window == "results")
    # Without the saved stop decision, this resume trained a third epoch.
    finish(run_fit(data_dir, tmp_path, 5, *STOP, "--ckpt_path", "last"))
    resumed = json.loads((run / "results.json").read_text())
    assert resumed["epochs_run"] == 2 and resumed["history"] == stopped_run["history"]
    assert resumed["test_accuracy"] == stopped_run["test_accuracy"]
    assert not list(run.glob(".*.tmp"))  # the killed writer's temp file is gone
