"""A SLURM batch job, and the same job requeued, on tiny data without SLURM.

The job's run folder is ``version_<SLURM_JOB_ID>``. A requeued job runs its command again with
the same job id: a new fit there never writes over the run already in that folder; the
sbatch script continues it with ``--ckpt_path`` of the folder's own ``last.ckpt``
(docs/gpus.md). ``--ckpt_path last`` takes the newest run under the root, whichever job's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
from helpers import cli_args

from lightning_mnist.cli import cli_main, main
from lightning_mnist.data import catalogue
from lightning_mnist.data.catalogue import make_spec
from lightning_mnist.run.lock import try_lock

JOB = "4242"


@pytest.fixture(autouse=True)
def slurm_job(monkeypatch):
    """A batch job's environment (as srun sets it for one task), and the tiny files as
    "mnist"."""
    monkeypatch.setitem(catalogue.DATASETS, "mnist", make_spec("mnist", "MNIST", 64, 32))
    for name, value in {
        "SLURM_JOB_ID": JOB,
        "SLURM_JOB_NAME": "lightning-mnist",
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }.items():
        monkeypatch.setenv(name, value)


def fit(data: Path, root: Path, *extra: str) -> int:
    args = cli_args(data, root, "--data.batch_size", "8", "--early_stopping", "null", *extra)
    return main(["fit", *args])


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def epochs_run(run_dir: Path) -> int:
    return json.loads((run_dir / "results.json").read_text())["epochs_run"]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def killed_after_one_epoch(data: Path, root: Path, job: str = JOB) -> Path:
    """The job's folder as a kill after the first epoch leaves it: checkpoints, no record."""
    assert fit(data, root, "--trainer.max_epochs", "1") == 0
    run_dir = root / f"version_{job}"
    for name in ("results.json", "test_predictions.csv", "accuracy.png", "loss.png"):
        (run_dir / name).unlink()
    return run_dir


def test_the_job_id_names_the_folder_and_the_hpc_checkpoints_stay_in_it(tiny_idx_dir, tmp_path):
    args = cli_args(tiny_idx_dir, tmp_path, "--data.batch_size", "8", "--trainer.max_epochs", "1")
    cli = cli_main(["fit", *args])
    assert cli.run_dir == tmp_path / f"version_{JOB}"
    assert epochs_run(cli.run_dir) == 1
    # Lightning saves hpc_ckpt_N.ckpt on SIGUSR1, and resumes from it, in default_root_dir.
    assert Path(cli.trainer.default_root_dir) == tmp_path / f"version_{JOB}"


def test_a_requeued_command_without_ckpt_path_is_refused_and_changes_nothing(
    tiny_idx_dir, tmp_path, capsys
):
    run_dir = killed_after_one_epoch(tiny_idx_dir, tmp_path)
    before = snapshot(run_dir)
    capsys.readouterr()
    assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert f"--ckpt_path {run_dir / 'checkpoints' / 'last.ckpt'}" in line, line
    assert snapshot(run_dir) == before
    assert sorted(p.name for p in tmp_path.glob("version_*")) == [f"version_{JOB}"]


def test_a_requeued_command_with_its_last_ckpt_continues_its_own_run(
    tiny_idx_dir, tmp_path, capsys
):
    run_dir = killed_after_one_epoch(tiny_idx_dir, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last)) == 0
    assert f"Resuming {last}" in capsys.readouterr().out
    assert epochs_run(run_dir) == 2
    assert sorted(p.name for p in tmp_path.glob("version_*")) == [f"version_{JOB}"]


def test_a_second_fit_of_the_job_keeps_a_run_without_checkpoints(tiny_idx_dir, tmp_path, capsys):
    off = ("--trainer.max_epochs", "1", "--trainer.enable_checkpointing", "false")
    assert fit(tiny_idx_dir, tmp_path, *off) == 0
    run_dir = tmp_path / f"version_{JOB}"
    before = snapshot(run_dir)
    assert "results.json" in before
    capsys.readouterr()
    assert fit(tiny_idx_dir, tmp_path, *off, "--seed_everything", "1") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "already holds a run" in line and "remove it" in line, line
    assert snapshot(run_dir) == before


def test_a_folder_another_process_writes_is_refused(tiny_idx_dir, tmp_path, capsys):
    with ExitStack() as locks:
        assert try_lock(tmp_path / f"version_{JOB}", locks)
        assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "1") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "being written by another process" in line, line
    assert not (tmp_path / f"version_{JOB}").exists()


def test_ckpt_path_last_takes_the_newest_run_under_the_root_whichever_job(
    tiny_idx_dir, tmp_path, capsys, monkeypatch
):
    assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", "last") == 2
    assert "no run with checkpoints/last.ckpt" in error_lines(capsys.readouterr().err)[0]
    killed_after_one_epoch(tiny_idx_dir, tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "5000")  # a later job under the same root
    other = killed_after_one_epoch(tiny_idx_dir, tmp_path, "5000")
    monkeypatch.setenv("SLURM_JOB_ID", JOB)
    capsys.readouterr()
    assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0
    assert f"Resuming {other / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert epochs_run(other) == 2 and not (tmp_path / f"version_{JOB}" / "results.json").exists()


def test_another_jobs_hpc_checkpoint_never_starts_a_new_job(tiny_idx_dir, tmp_path, capsys):
    run_dir = killed_after_one_epoch(tiny_idx_dir, tmp_path)
    # Where Lightning wrote hpc checkpoints before they went into the job's folder.
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt")
    shutil.rmtree(run_dir)
    capsys.readouterr()
    assert fit(tiny_idx_dir, tmp_path, "--trainer.max_epochs", "2") == 0
    assert "Resumed optimizer state" not in capsys.readouterr().out
    with open(run_dir / "metrics.csv", newline="") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("loss")}
    assert epochs == {"0", "1"}  # both epochs trained here, from scratch
