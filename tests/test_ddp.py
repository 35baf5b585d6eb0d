"""DDP on CPU processes (gloo): the same answers as one process, results written once.

Each test runs the real console script in a subprocess, because ``strategy=ddp``
re-launches the command once per extra process (and torchrun starts its own). Runs
are kept short (a few training batches), but validation and test always score the
whole 12,000 / 10,000 images, since counting them once over the ranks is the point.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DDP, cli_args

BIN = Path(sys.executable).parent
TIMEOUT = 300  # a hung collective fails the test instead of hanging CI (runs take < 60 s)

pytestmark = pytest.mark.real_data


def _args(data_dir: Path, root: Path, *extra: str, devices: int = 0) -> list[str]:
    """CLI options on CPU; ``devices`` > 0 adds the DDP preset on that many processes."""
    ddp = ["--trainer.devices", str(devices)] if devices else []
    return cli_args(
        data_dir,
        root,
        *ddp,
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_model_summary",
        "false",
        *extra,
        presets=(DDP,) if devices else (),
    )


def _env() -> dict[str, str]:
    # The launcher must pick its own free port and ranks, whatever the calling shell set.
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "RANK", "WORLD_SIZE")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` (so nothing lands in the repo) and fail with its output."""
    p = subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert p.returncode == 0, f"{cmd[:2]} exit {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-5000:]}"
    return p


def _one_run_folder(root: Path) -> Path:
    """The single ``version_N`` folder under ``root``: a second one means a rank wrote too."""
    runs = sorted(root.glob("version_*"))
    assert len(runs) == 1, f"expected one run folder under {root}, got {runs}"
    return runs[0]


def _epoch_row(run: Path, key: str) -> dict[str, float]:
    """The (last) metrics.csv row that holds ``key``."""
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get(key)]
    assert rows, f"no {key} in {run / 'metrics.csv'}"
    return {k: float(v) for k, v in rows[-1].items() if v}


def _correct(accuracy: float, n: int = 10_000) -> int:
    """Correct count behind an accuracy over ``n`` images (float32 keeps it exact)."""
    count = round(accuracy * n)
    assert abs(accuracy * n - count) < 1e-3
    return count


@pytest.fixture(scope="module")
def fits(data_dir: Path, tmp_path_factory) -> dict[int, Path]:
    """The same short fit on 2 processes and on 1: ``{processes: default_root_dir}``.

    Dropout is off, so the only randomness left (the shuffle) is shared by every rank,
    and the two fits must take the same optimizer steps.
    """
    roots = {}
    for devices in (2, 1):
        root = tmp_path_factory.mktemp(f"fit{devices}")
        # 10 global batches of 256: 128 images per rank per step under DDP.
        extra = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "10")
        extra += ("--model.dropout", "0")
        args = _args(data_dir, root / "runs", *extra, devices=devices if devices > 1 else 0)
        done = _run([str(BIN / "lightning-mnist"), "fit", *args], root)
        # Each rank re-runs the command; only the first one says what it does.
        assert done.stdout.count("Batch: 256 images per optimizer step") == 1, done.stdout[-2000:]
        # The epoch means are exact sums over the ranks already: no advice to sync them.
        assert "sync_dist=True" not in done.stderr, done.stderr[-2000:]
        roots[devices] = root / "runs"
    return roots


@pytest.fixture(scope="module")
def ddp_fit(fits) -> Path:
    return fits[2]


def test_ddp_fit_counts_every_image_once_and_writes_once(ddp_fit):
    run = _one_run_folder(ddp_fit)
    assert len(list(ddp_fit.rglob("results.json"))) == 1
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith("."))
    assert len(ckpts) == 2 and ckpts[0].startswith("best-") and ckpts[1] == "last.ckpt", ckpts
    # Training samples are summed over ranks: 10 global batches of the tutorial's 256.
    assert _epoch_row(run, "samples")["samples"] == 10 * 256
    assert _epoch_row(run, "val_samples")["val_samples"] == 12_000
    r = json.loads((run / "results.json").read_text())
    assert r["test_samples"] == 10_000 and r["device"].startswith("cpu x2")
    assert r["best_model"] == f"checkpoints/{ckpts[0]}"


def test_ddp_takes_the_same_optimizer_steps_as_one_process(fits):
    # Each rank averages its 128 images and DDP averages the 2 gradients: the gradient of
    # the mean over the global 256, as on one process. A per-process batch of 256 (a
    # global 512) would move val_loss by ~0.07 after these 10 steps, and 128 by ~0.07 the
    # other way; summation order alone moves it by ~1e-7.
    ddp, one = (_epoch_row(_one_run_folder(fits[n]), "val_loss") for n in (2, 1))
    assert ddp["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
    assert abs(ddp["val_accuracy"] - one["val_accuracy"]) * 12_000 <= 2  # argmax near-ties
    ddp, one = (_epoch_row(_one_run_folder(fits[n]), "loss") for n in (2, 1))
    assert ddp["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert ddp["samples"] == one["samples"] == 10 * 256


def test_best_checkpoint_scores_the_same_on_2_processes_and_1(ddp_fit, data_dir, tmp_path):
    run = _one_run_folder(ddp_fit)
    fit_result = json.loads((run / "results.json").read_text())
    ckpt = str(run / fit_result["best_model"])
    scores = {}
    for devices in (2, 1):
        root = tmp_path / f"test{devices}"
        # 1 process: no DDP preset, the plain single-device path.
        args = _args(data_dir, root, "--ckpt_path", ckpt, devices=devices if devices > 1 else 0)
        _run([str(BIN / "lightning-mnist"), "test", *args], tmp_path)
        scores[devices] = _epoch_row(_one_run_folder(root), "test_accuracy")
    for s in scores.values():
        assert s["test_samples"] == 10_000
    # Exactly the same images scored by the same weights: the same correct count. The loss
    # is summed in another order (per-rank shards, other batch sizes), so only nearly equal.
    assert _correct(scores[2]["test_accuracy"]) == _correct(scores[1]["test_accuracy"])
    assert _correct(scores[2]["test_accuracy"]) == _correct(fit_result["test_accuracy"])
    assert scores[2]["test_loss"] == pytest.approx(scores[1]["test_loss"], rel=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_nodes_on_localhost_write_results_once(data_dir, tmp_path):
    # Two torchrun agents, as two machines would start them; node 0 hosts the rendezvous.
    # Lightning sees TorchElastic's variables and starts no processes of its own.
    port = _free_port()
    # An early stop after epoch 2 of 3 (no val_loss beats the best by 10): every rank
    # must take it together, or the run hangs in the next epoch's collectives.
    extra = ("--trainer.num_nodes", "2", "--trainer.max_epochs", "3")
    extra += ("--trainer.limit_train_batches", "2")
    extra += ("--early_stopping.patience", "0", "--early_stopping.min_delta", "10")
    fit = ["fit", *_args(data_dir, tmp_path / "runs", *extra, devices=1)]
    procs = []
    for node in (0, 1):
        cmd = [
            str(BIN / "torchrun"),
            *("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node)),
            *("--master_addr", "127.0.0.1", "--master_port", str(port)),
            *("-m", "lightning_mnist.cli"),
            *fit,
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=tmp_path,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a hang kills its workers too
            )
        )
    outs = []
    try:
        outs = [p.communicate(timeout=TIMEOUT)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    for node, (p, out) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, f"node {node} exit {p.returncode}\n{out[-5000:]}"
    run = _one_run_folder(tmp_path / "runs")
    assert len(list(tmp_path.rglob("results.json"))) == 1
    r = json.loads((run / "results.json").read_text())
    assert r["test_samples"] == 10_000 and r["device"].startswith("cpu x2")
    assert r["epochs_run"] == 2  # stopped by EarlyStopping, not by max_epochs
    assert _epoch_row(run, "val_samples")["val_samples"] == 12_000
    # Only global rank 0 (on node 0) reports the run.
    assert "Run folder:" in outs[0] and "Run folder:" not in outs[1]


def test_global_batch_that_does_not_divide_is_refused(data_dir, tmp_path):
    # Short, in case the check ever stops firing: it must not train for minutes.
    extra = ("--data.batch_size", "255", "--trainer.max_epochs", "1")
    extra += ("--trainer.limit_train_batches", "2")
    args = _args(data_dir, tmp_path / "runs", *extra, devices=2)
    cmd = [str(BIN / "lightning-mnist"), "fit", *args]
    p = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert p.returncode != 0
    assert "data.batch_size 255 is the global batch and must divide by the 2 processes" in p.stderr
    assert "Traceback" not in p.stderr  # a user mistake is one line, not a stack (STYLE.md)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("results.json"))
