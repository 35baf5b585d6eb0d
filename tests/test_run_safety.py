"""A run never touches what is not its own.

A checkpoint is data, never instructions: paths in its saved callback state cannot make a
run delete anything outside its own checkpoints folder, or a user's own files inside it (the
cases train a tiny run, rewrite the ModelCheckpoint state of its ``last.ckpt`` as an attacker
would, with plain strings, and resume). Two fits never share a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers import TUTORIAL

from lightning_mnist.cli import main
from lightning_mnist.run.checkpointing import AtomicCheckpointIO, RunCheckpoint


def _fit(data: Path, root: Path, epochs: int, *extra: str) -> int:
    args = ["fit", "--config", TUTORIAL, "--trainer.accelerator", "cpu"]
    args += ["--data.data_dir", str(data), "--data.fetch", "false"]
    args += ["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    args += ["--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "2"]
    args += ["--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]
    args += ["--early_stopping.patience", "100", *extra]
    return main(args)


def _poisoned(last: Path, out: Path, target: str) -> Path:
    """``last`` with every path of its ModelCheckpoint state pointing at ``target``."""
    ckpt = torch.load(last, weights_only=True)
    states = [v for k, v in ckpt["callbacks"].items() if k.startswith("RunCheckpoint")]
    assert states, list(ckpt["callbacks"])
    for state in states:
        for key in ("best_model_path", "last_model_path", "kth_best_model_path"):
            state[key] = target
        state["best_k_models"] = {target: torch.tensor(9.0)}
        state["kth_value"] = torch.tensor(9.0)
    torch.save(ckpt, out)
    return out


@pytest.fixture
def world(tmp_path, data_dir):
    data = data_dir
    root = tmp_path / "runs"
    assert _fit(data, root, 1) == 0
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me")
    return data, root, victim


@pytest.mark.real_data
@pytest.mark.parametrize("how", ["resume-last", "new-folder"])
def test_checkpoint_paths_cannot_delete_a_folder(world, tmp_path, how, capsys):
    # Lightning removes a superseded checkpoint when its path is lexically inside the
    # checkpoints folder, and removes recursively: `<ckpts>/../../../victim` qualifies.
    data, root, victim = world
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    if how == "resume-last":  # the run's own last.ckpt, replaced by the attacker
        target = root / "version_0" / "checkpoints" / ".." / ".." / ".." / "victim"
        ckpt, version = _poisoned(last, last, str(target)), "version_0"
    else:  # a file handed to the user, aimed at the folder the run will write
        target = root / "version_1" / "checkpoints" / ".." / ".." / ".." / "victim"
        ckpt, version = _poisoned(last, tmp_path / "poisoned.ckpt", str(target)), "version_1"
    capsys.readouterr()
    resume = "last" if how == "resume-last" else str(ckpt)
    assert _fit(data, root, 3, "--ckpt_path", resume) == 0
    assert (victim / "precious.txt").read_text() == "keep me" and (victim / "inner").is_dir()
    assert "ignoring" in capsys.readouterr().out  # the dropped path is reported
    assert (root / version / "results.json").is_file()  # the run itself went on


@pytest.mark.real_data
def test_a_users_files_in_the_checkpoints_folder_survive_a_resume(world, tmp_path):
    data, root, _ = world
    ckpts = root / "version_0" / "checkpoints"
    mine = [ckpts / "my-copy.ckpt", ckpts / "best.ckpt.bak"]
    for path in mine:
        path.write_bytes(b"a user's own file")
    stray = ckpts / "best-07-0.1234.ckpt"  # the run's own pattern, listed nowhere: removed
    stray.write_bytes(b"an older best")
    assert _fit(data, root, 2, "--ckpt_path", "last") == 0
    assert all(p.read_bytes() == b"a user's own file" for p in mine)
    assert not stray.exists()


def test_own_name_pattern_matches_only_the_runs_names():
    pattern = RunCheckpoint(monitor="val_loss")._own_name()
    assert pattern.fullmatch("best-03-0.0712.ckpt") and pattern.fullmatch("best-03-0.0712-v1.ckpt")
    for name in ("best-03-0.0712-copy.ckpt", "last.ckpt", "my.ckpt", "best-x-0.1.ckpt"):
        assert not pattern.fullmatch(name), name


def test_best_checkpoints_are_named_by_what_they_monitor():
    name = {m: RunCheckpoint(monitor=m).filename for m in ("val_loss", "loss", "a/b", None)}
    assert name["val_loss"] == "best-{epoch:02d}-{val_loss:.4f}"  # the presets' names
    assert name["loss"] == "best-{epoch:02d}-{loss:.4f}"
    assert name["a/b"] == name[None] == "best-{epoch:02d}"  # a "/" would make a folder
    metrics = {"epoch": 0, "loss": torch.tensor(0.5)}  # no val_loss: Lightning would write 0
    assert RunCheckpoint(monitor="loss").format_checkpoint_name(metrics) == "best-01-0.5000.ckpt"


def test_checkpoint_io_never_removes_a_folder(tmp_path, capsys):
    folder = tmp_path / "victim"
    (folder / "inner").mkdir(parents=True)
    AtomicCheckpointIO().remove_checkpoint(folder)
    assert (folder / "inner").is_dir()
    one = tmp_path / "one.ckpt"
    one.write_bytes(b"x")
    AtomicCheckpointIO().remove_checkpoint(one)
    assert not one.exists()


@pytest.mark.real_data
def test_a_fit_starting_beside_another_takes_the_next_folder(data_dir, tmp_path):
    # Another fit has just taken version_0 (its lock held, its folder not written yet).
    root = tmp_path / "runs"
    root.mkdir()
    with FileLock(root / ".version_0.lock"):
        assert _fit(data_dir, root, 1) == 0
    assert (root / "version_1" / "results.json").is_file() and not (root / "version_0").exists()


@pytest.mark.real_data
def test_the_resume_the_interrupt_message_prints_continues_the_same_run(world, capsys):
    data, root, _ = world
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert _fit(data, root, 2, "--ckpt_path", str(last)) == 0
    out = capsys.readouterr().out
    assert "Resuming" in out and "Resumed optimizer state: lr 0.001" in out
    assert not (root / "version_1").exists()
    assert json.loads((root / "version_0" / "results.json").read_text())["epochs_run"] == 2
    assert _fit(data, root, 2, "--ckpt_path", str(last)) == 2  # finished: nothing to resume


@pytest.mark.real_data
def test_ckpt_path_best_tests_the_newest_runs_best_checkpoint(world, capsys):
    data, root, _ = world
    best = json.loads((root / "version_0" / "results.json").read_text())["best_model"]
    args = ["test", "--config", "tutorial", "--trainer.accelerator", "cpu"]  # a preset's name
    args += ["--data.data_dir", str(data), "--trainer.default_root_dir", str(root)]
    args += ["--trainer.limit_test_batches", "2", "--ckpt_path", "best"]
    assert main(args) == 0
    assert best.split("/")[-1] in capsys.readouterr().out  # Lightning names what it restored


@pytest.mark.parametrize("ckpt", ["last", "best"])
def test_no_run_under_the_root_names_the_folders_below_that_hold_runs(ckpt, tmp_path, capsys):
    # A preset's config trains into runs/<preset>; a command without it looks in runs/.
    (tmp_path / "runs" / "tutorial" / "version_0" / "checkpoints").mkdir(parents=True)
    args = ["test", "--trainer.default_root_dir", str(tmp_path / "runs"), "--ckpt_path", ckpt]
    assert main([*args, "--trainer.accelerator", "cpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"runs are under {tmp_path / 'runs' / 'tutorial'}" in line, line
    assert f"--trainer.default_root_dir {tmp_path / 'runs' / 'tutorial'}" in line, line
