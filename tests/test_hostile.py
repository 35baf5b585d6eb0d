"""Hostile but fair input: every case gets exit code 2, exactly one line on stderr naming the
cause, no traceback, and no file created or changed under the run root or the data dir.

Each case runs the real command in this process on tiny IDX files (no real MNIST needed).
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers import TUTORIAL, write_tiny_idx

from lightning_mnist.cli import main
from lightning_mnist.system import MNISTClassifier


class Payload:
    """A pickle that creates a file when a full unpickler loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def listing(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folders`` with its size and modification time."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")) if folder.exists() else []:
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


class World:
    """A scratch world per case: data, a run root, checkpoints of several kinds.

    The data dir holds tiny IDX files, except for the cases that damage a file: they get a
    copy of the real MNIST files, so that only the damage is wrong.
    """

    def __init__(self, tmp: Path, real: Path) -> None:
        self.tmp = tmp
        self.real = real
        self.data = write_tiny_idx(tmp / "data", n_train=64, n_test=32)
        self.root = tmp / "runs"
        self.marker = tmp / "payload-ran"

    def fit(self, *extra: str) -> list[str]:
        return ["fit", *self.base(), "--trainer.max_epochs", "1", *extra]

    def base(self) -> list[str]:
        return [
            "--config",
            TUTORIAL,
            "--trainer.accelerator",
            "cpu",
            "--data.data_dir",
            str(self.data),
            "--data.fetch",
            "false",
            "--trainer.default_root_dir",
            str(self.root),
            "--trainer.enable_progress_bar",
            "false",
            "--data.batch_size",
            "16",
        ]

    def sub(self, command: str, *extra: str) -> list[str]:
        return [command, *self.base(), *extra]

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def ckpt(self, kind: str) -> str:
        if kind == "malicious":
            payload = {"state_dict": {}, "x": Payload(self.marker)}
            return self.file("evil.ckpt", pickle.dumps(payload))
        if kind == "corrupt":
            return self.file("corrupt.ckpt", os.urandom(2000))
        if kind == "empty":
            return self.file("empty.ckpt", b"")
        if kind == "no-state":
            path = self.tmp / "nostate.ckpt"
            torch.save({"epoch": 1}, path)
            return str(path)
        if kind in ("flipped", "nan"):
            model = MNISTClassifier()
            if kind == "nan":
                model.model.fc1.weight.data[0, 0] = float("nan")
            path = self.tmp / f"{kind}.ckpt"
            torch.save({"state_dict": model.state_dict(), "hyper_parameters": {}}, path)
            if kind == "flipped":  # inside the stored weights, behind an intact zip directory
                data = bytearray(path.read_bytes())
                for i in range(len(data) // 2, len(data) // 2 + 16):
                    data[i] ^= 0xFF
                path.write_bytes(bytes(data))
            return str(path)
        if kind == "weights-only":
            path = self.tmp / "weights.ckpt"
            torch.save({"state_dict": MNISTClassifier().state_dict(), "epoch": 3}, path)
            return str(path)
        if kind in ("bad-hparams", "bad-epoch"):
            path = self.tmp / f"{kind}.ckpt"
            bad = {"hyper_parameters": [1, 2]} if kind == "bad-hparams" else {"epoch": "x"}
            torch.save({"state_dict": MNISTClassifier().state_dict(), **bad}, path)
            return str(path)
        if kind == "other-architecture":
            path = self.tmp / "other.ckpt"
            torch.save({"state_dict": MNISTClassifier(filters=16).state_dict()}, path)
            return str(path)
        raise ValueError(kind)

    def raw(self) -> Path:
        """A fresh copy of the real MNIST files to damage; the data dir points at it."""
        self.data = self.tmp / "real-copy"
        raw = self.data / "MNIST" / "raw"
        shutil.copytree(self.real / "MNIST" / "raw", raw)
        for f in raw.iterdir():
            os.chmod(f, 0o644)
        return raw


Case = Callable[[World], list[str]]


def _corrupt_labels(w: World) -> list[str]:
    path = w.raw() / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[8 + 5] = 12  # the sixth label: 12 is no digit
    path.write_bytes(bytes(data))
    return w.fit()


def _truncated(w: World) -> list[str]:
    path = w.raw() / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    return w.fit()


def _dir_for_file(w: World) -> list[str]:
    path = w.raw() / "t10k-labels-idx1-ubyte"
    path.unlink()
    path.mkdir()
    return w.fit()


def _data_dir_is_file(w: World) -> list[str]:
    return [*w.fit(), "--data.data_dir", w.file("not-a-dir", b"x")]


def _root_is_file(w: World) -> list[str]:
    return [*w.fit(), "--trainer.default_root_dir", w.file("root-file", b"x")]


def _yaml_syntax(w: World) -> list[str]:
    return ["fit", "--config", w.file("bad.yaml", b"model: [unclosed\n")]


def _empty_config(w: World) -> list[str]:
    return ["fit", "--config", w.file("empty.yaml", b"")]


# Nine levels of ten aliases: 700 bytes that a YAML loader expands to 10**9 strings.
ALIAS_BOMB = "a: &a [" + ",".join(["x"] * 10) + "]\n"
for _prev, _name in zip("abcdefgh", "bcdefghi", strict=True):
    ALIAS_BOMB += f"{_name}: &{_name} [" + ",".join([f"*{_prev}"] * 10) + "]\n"


def _locked_run(w: World) -> list[str]:
    # A run folder that another live process (this test's own) is writing.
    run = w.root / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    w.held = FileLock(w.root / ".version_0.lock")  # held until the case ends
    w.held.acquire()
    return w.fit("--ckpt_path", "last")


def _foreign_checkpoint_dir(w: World) -> list[str]:
    other = w.tmp / "other-run" / "checkpoints"
    other.mkdir(parents=True)
    (other / "best-03-0.0700.ckpt").write_bytes(b"another run's best")
    return w.fit("--checkpoint.dirpath", str(other))


def _finished_run(w: World) -> list[str]:
    run = w.root / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "results.json").write_text('{"epochs_run": 1}')
    return w.fit("--ckpt_path", "last")  # w.fit asks for 1 epoch


def _contradicting_flag(w: World) -> list[str]:
    path = w.tmp / "sixteen.ckpt"
    model = MNISTClassifier(filters=16)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {"filters": 16}}, path)
    return w.sub("test", "--ckpt_path", str(path), "--model.filters", "32")


def _no_training_images(w: World) -> list[str]:
    w.raw()
    return w.fit("--data.validation_split", "0.9999999")


def _bad_images_ckpt(w: World) -> list[str]:
    return w.sub("predict", "--ckpt_path", w.ckpt("corrupt"), "--data.images", "[x.png]")


# (id, case, words the one stderr line must contain)
CASES: list[tuple[str, Case, str]] = [
    # configuration values
    ("batch-size-0", lambda w: w.fit("--data.batch_size", "0"), "batch_size"),
    ("batch-size-negative", lambda w: w.fit("--data.batch_size", "-3"), "batch_size"),
    ("split-above-1", lambda w: w.fit("--data.validation_split", "1.5"), "validation_split"),
    ("split-0", lambda w: w.fit("--data.validation_split", "0"), "validation_split"),
    ("dropout-1", lambda w: w.fit("--model.dropout", "1.0"), "dropout"),
    ("filters-0", lambda w: w.fit("--model.filters", "0"), "filters"),
    ("num-classes-5", lambda w: w.fit("--model.num_classes", "5"), "num_classes"),
    ("unknown-key", lambda w: w.fit("--model.unknown_key", "3"), "unknown_key"),
    ("conv-pool-choice", lambda w: w.fit("--model.conv_pool", "magic"), "conv_pool"),
    ("bad-type", lambda w: w.fit("--model.hidden", "many"), "hidden"),
    ("num-threads-negative", lambda w: w.fit("--num_threads", "-1"), "num_threads"),
    ("max-epochs-negative", lambda w: w.fit("--trainer.max_epochs", "-5"), "max_epochs"),
    ("gpu-without-gpu", lambda w: w.fit("--trainer.accelerator", "gpu"), "gpu"),
    ("max-epochs-0", lambda w: w.fit("--trainer.max_epochs", "0"), "max_epochs 0"),
    ("split-leaves-no-training", _no_training_images, "leaves 0 training"),
    ("lr-negative", lambda w: w.fit("--optimizer.lr", "-1"), "learning rate"),
    ("monitor-typo", lambda w: w.fit("--early_stopping.monitor", "val_los"), "val_los"),
    ("checkpoint-monitor-typo", lambda w: w.fit("--checkpoint.monitor", "acc"), "acc"),
    (
        "batch-not-dividing-processes",
        lambda w: w.fit(
            "--data.batch_size",
            "15",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
        ),
        "batch_size",
    ),
    # config files
    ("config-missing", lambda w: ["fit", "--config", str(w.tmp / "nope.yaml")], "nope.yaml"),
    ("config-yaml-syntax", _yaml_syntax, "bad.yaml"),
    ("config-empty", _empty_config, "empty.yaml"),
    # paths
    ("data-dir-missing", lambda w: [*w.fit(), "--data.data_dir", "/no/such/dir"], "/no/such/dir"),
    ("data-dir-is-file", _data_dir_is_file, "not a folder"),
    ("root-is-file", _root_is_file, "is a file"),
    # data files
    ("label-out-of-range", _corrupt_labels, "train-labels-idx1-ubyte"),
    ("truncated-images", _truncated, "train-images-idx3-ubyte"),
    ("folder-instead-of-file", _dir_for_file, "t10k-labels-idx1-ubyte"),
    ("unknown-dataset", lambda w: w.fit("--data.dataset", "cifar"), "cifar"),
    # checkpoints
    (
        "malicious-ckpt-test",
        lambda w: w.sub("test", "--ckpt_path", w.ckpt("malicious")),
        "refusing to unpickle code",
    ),
    (
        "malicious-ckpt-predict",
        lambda w: w.sub("predict", "--ckpt_path", w.ckpt("malicious")),
        "refusing to unpickle code",
    ),
    (
        "malicious-ckpt-export",
        lambda w: ["export", "--ckpt_path", w.ckpt("malicious")],
        "refusing to unpickle code",
    ),
    ("missing-ckpt", lambda w: w.sub("test", "--ckpt_path", str(w.tmp / "x.ckpt")), "not found"),
    ("corrupt-ckpt", lambda w: w.sub("test", "--ckpt_path", w.ckpt("corrupt")), "corrupt"),
    ("empty-ckpt", lambda w: w.sub("validate", "--ckpt_path", w.ckpt("empty")), "empty.ckpt"),
    (
        "ckpt-without-state",
        lambda w: w.sub("test", "--ckpt_path", w.ckpt("no-state")),
        "state_dict",
    ),
    (
        "other-architecture",
        lambda w: w.sub("test", "--ckpt_path", w.ckpt("other-architecture")),
        "another architecture",
    ),
    ("corrupt-ckpt-images", _bad_images_ckpt, "corrupt"),
    ("flipped-bits-ckpt", lambda w: w.sub("test", "--ckpt_path", w.ckpt("flipped")), "CRC"),
    ("nan-weights-ckpt", lambda w: w.sub("test", "--ckpt_path", w.ckpt("nan")), "non-finite"),
    ("nan-weights-export", lambda w: ["export", "--ckpt_path", w.ckpt("nan")], "non-finite"),
    (
        "weights-only-resumed",
        lambda w: w.fit("--ckpt_path", w.ckpt("weights-only")),
        "weights only",
    ),
    (
        "hparams-not-a-mapping",
        lambda w: w.sub("test", "--ckpt_path", w.ckpt("bad-hparams")),
        "mapping",
    ),
    ("epoch-not-a-count", lambda w: w.sub("test", "--ckpt_path", w.ckpt("bad-epoch")), "count"),
    ("checkpoint-dir-of-another-run", _foreign_checkpoint_dir, "another run"),
    ("model-too-large", lambda w: w.fit("--model.hidden", "1000000000000"), "memory"),
    (
        "path-too-long",
        lambda w: w.fit("--trainer.default_root_dir", str(w.tmp / ("x" * 300))),
        "too long",
    ),
    ("seed-negative", lambda w: w.fit("--seed_everything", "-1"), "seed"),
    ("seed-huge", lambda w: w.fit("--seed_everything", "100000000000000000000"), "seed"),
    # untrained weights are never evaluated silently
    ("test-without-ckpt", lambda w: w.sub("test"), "--ckpt_path"),
    ("validate-without-ckpt", lambda w: w.sub("validate"), "--ckpt_path"),
    ("predict-without-ckpt", lambda w: w.sub("predict"), "--ckpt_path"),
    ("test-best-without-run", lambda w: w.sub("test", "--ckpt_path", "best"), "no finished run"),
    ("test-last-without-run", lambda w: w.sub("test", "--ckpt_path", "last"), "no run"),
    ("fit-last-without-run", lambda w: w.fit("--ckpt_path", "last"), "no run"),
    # one writer per run folder; explicit flags are honoured or refused
    (
        "yaml-alias-bomb",
        lambda w: ["fit", "--config", w.file("b.yaml", ALIAS_BOMB.encode())],
        "expand",
    ),
    ("yaml-self-alias", lambda w: ["fit", "--config", w.file("s.yaml", b"a: &a [*a]\n")], "expand"),
    ("run-folder-locked", _locked_run, "being written by another process"),
    ("finished-run-resumed", _finished_run, "has finished"),
    ("flag-contradicts-checkpoint", _contradicting_flag, "contradicts the checkpoint"),
    # a mode that counts a worse epoch as better
    (
        "checkpoint-mode-backwards",
        lambda w: w.fit("--checkpoint.monitor", "val_accuracy"),
        "with mode 'min', which counts a worse epoch as better; give --checkpoint.mode max",
    ),
    (
        "early-stopping-mode-backwards",
        lambda w: w.fit("--early_stopping.mode", "max"),
        "'val_loss' with mode 'max', which counts a worse epoch as better",
    ),
    # an option of several types: its reason, not only "Given value"
    ("union-precision", lambda w: w.fit("--trainer.precision", "7"), "'7' is not one of 64"),
    ("union-logger", lambda w: w.fit("--trainer.logger", "foo"), "'foo' is not a class name"),
    (
        "nested-lr",
        lambda w: w.fit("--optimizer.lr", "x"),
        "optimizer (Adam).lr: 'x' is not a float",
    ),
    (
        "callback-missing-argument",
        lambda w: w.fit("--trainer.callbacks+", "EarlyStopping"),
        "(EarlyStopping): the following arguments are required: monitor",
    ),
    # export
    (
        "export-missing-ckpt",
        lambda w: ["export", "--ckpt_path", str(w.tmp / "x.ckpt")],
        "not found",
    ),
    ("export-bad-format", lambda w: ["export", "--ckpt_path", "x", "--format", "pdf"], "format"),
]


# A case that holds only on some machines: on one with a GPU, asking for it trains.
NEEDS_NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
PARAMS = [
    pytest.param(*c[1:], id=c[0], marks=NEEDS_NO_GPU if c[0] == "gpu-without-gpu" else ())
    for c in CASES
]


@pytest.mark.parametrize(("make", "words"), PARAMS)
def test_hostile_input_gets_one_line(make, words, tmp_path, capsys, data_dir):
    world = World(tmp_path, data_dir)
    argv = make(world)
    capsys.readouterr()
    before = listing(world.root, world.data)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}"
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("error:") and words in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert listing(world.root, world.data) == before  # nothing created or changed
    assert not world.marker.exists()  # no code ran from a checkpoint


def test_full_disk_while_saving_a_checkpoint(tmp_path, capsys, data_dir, monkeypatch):
    import errno

    from lightning_mnist.run import checkpointing as runfolder

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runfolder, "write_atomic", full)
    world = World(tmp_path, data_dir)
    world.raw()
    argv = world.fit("--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1")
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0], err[-2000:]
    assert "Traceback" not in out + err


def test_keras_reference_bad_label_is_one_line_and_leaves_no_folder(tmp_path, data_dir):
    import subprocess
    import sys

    # Fashion-MNIST has no pinned MD5, so only the label check can catch a bad label.
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    shutil.copytree(data_dir / "MNIST" / "raw", raw)
    labels = raw / "train-labels-idx1-ubyte"
    os.chmod(labels, 0o644)
    data = bytearray(labels.read_bytes())
    data[8 + 5] = 12
    labels.write_bytes(bytes(data))
    out = tmp_path / "keras-run"
    cmd = [sys.executable, "-m", "keras_reference", "--data.data_dir", str(tmp_path / "data")]
    cmd += ["--data.dataset", "fashion_mnist", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(lines) == 1 and "label 12" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_a_diverging_run_stops_on_its_non_finite_loss(tmp_path, capsys, data_dir):
    world = World(tmp_path, data_dir)
    world.raw()
    argv = world.fit("--optimizer.lr", "1e30", "--trainer.limit_train_batches", "5")
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "non-finite in epoch 1 at step" in lines[0], err[-2000:]
    assert "Traceback" not in out + err
    assert not list(world.root.rglob("results.json"))  # no record of a run that diverged


def test_mnist_data_dir_naming_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_bytes(b"x")
    argv = ["fit", "--config", TUTORIAL, "--trainer.default_root_dir", str(tmp_path / "runs")]
    assert main([*argv, "--trainer.accelerator", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1].startswith("error: ") and "is a file" in err
    assert "Traceback" not in out + err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("given", ["missing.png", "notes.txt", "empty-folder"])
def test_predict_with_no_readable_image_says_why(given, tmp_path, capsys, data_dir):
    world = World(tmp_path, data_dir)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty-folder").mkdir()
    ckpt = tmp_path / "trained.ckpt"
    torch.save({"state_dict": MNISTClassifier().state_dict(), "hyper_parameters": {}}, ckpt)
    argv = world.sub("predict", "--ckpt_path", str(ckpt), "--data.images", f"[{tmp_path / given}]")
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no image could be read" in lines[0] and given in lines[0], err
    assert "Traceback" not in out + err


def _without_root_override(cmd: list[str]) -> list[str]:
    """``cmd`` run so that file modes bind: root's access override is dropped by setpriv."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("this test needs setpriv (util-linux) to drop root's file-access override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd]


@pytest.mark.parametrize("fetch", ["true", "false"])
def test_an_unreadable_data_folder_is_one_line(fetch, tmp_path, data_dir):
    import subprocess
    import sys

    world = World(tmp_path, data_dir)
    raw = world.data / "MNIST" / "raw"
    os.chmod(raw, 0)
    try:  # with fetch on, the files are looked for before anything is read
        argv = [*world.fit(), "--data.fetch", fetch]
        cmd = _without_root_override([sys.executable, "-m", "lightning_mnist.cli", *argv])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(raw, 0o755)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert "Permission denied" in lines[0] and str(raw) in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout and not world.root.exists()


def test_a_run_folder_deleted_during_training_is_one_line(tmp_path, capsys, data_dir, monkeypatch):
    from lightning_mnist.run.results import HistoryRecorder

    world = World(tmp_path, data_dir)
    record = HistoryRecorder.on_train_epoch_end

    def then_delete(self, trainer, pl_module):
        record(self, trainer, pl_module)
        shutil.rmtree(world.root)  # another process cleans up the runs while this one trains

    monkeypatch.setattr(HistoryRecorder, "on_train_epoch_end", then_delete)
    world.raw()
    short = ("--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1")
    capsys.readouterr()
    assert main(world.fit("--trainer.max_epochs", "3", *short)) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "the folder was removed" in lines[0], err[-3000:]
    assert str(world.root / "version_0") in lines[0] and "Traceback" not in out + err
    assert not world.root.exists()  # nothing recreated


def test_the_alias_bomb_is_refused_within_a_time_limit(tmp_path):
    import subprocess
    import sys

    bomb = tmp_path / "b.yaml"
    bomb.write_text(ALIAS_BOMB)
    cmd = [sys.executable, "-m", "lightning_mnist.cli", "fit", "--config", str(bomb)]
    # Unguarded, the expansion grows without end (2.7 GB after 20 s): TimeoutExpired fails it.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(lines) == 1 and "expand" in lines[0], done.stderr[-2000:]
