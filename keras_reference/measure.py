"""What a finished Keras run measures besides accuracy, in the fields the Lightning port
records (``lightning_mnist.run.measure``): test predictions, where the time went, inference
latency, peak memory and the machine. Kept here so the reference runs without torch.
"""

from __future__ import annotations

import io
import os
import platform
import re
import resource
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

from lightning_mnist.atomic import write_atomic  # stdlib only: no torch

PREDICTIONS_CSV = "test_predictions.csv"
LATENCY_BATCHES = (1, 256)


class PhaseTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch (training plus validation), of its validation part, and
    of the checkpoint saving that follows it.

    Put it first in ``callbacks`` and its :attr:`after_checkpoint` right after
    ``ModelCheckpoint``: Keras calls ``on_epoch_end`` in list order, after the validation
    pass, so the epoch time excludes the save and the gap between the two is the save.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self.checkpoint_seconds = 0.0
        self._start = self._val_start = self._epoch_end = 0.0
        self._val = 0.0
        self.after_checkpoint = _Mark(self)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._val = 0.0

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._val_start = time.perf_counter()  # fit's validation pass runs evaluate

    def on_test_end(self, logs: dict | None = None) -> None:
        self._val = time.perf_counter() - self._val_start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_end = time.perf_counter()
        self.epoch_seconds.append(self._epoch_end - self._start)
        self.val_seconds.append(self._val)


class _Mark(keras.callbacks.Callback):
    """Adds the time since the timer's epoch end to its ``checkpoint_seconds``."""

    def __init__(self, timer: PhaseTimer) -> None:
        super().__init__()
        self.timer = timer

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.timer.checkpoint_seconds += time.perf_counter() - self.timer._epoch_end


def write_predictions(path: str | Path, labels, predicted) -> Path:
    """``label,predicted`` per test image, in the test files' order."""
    rows = np.stack([np.asarray(labels, np.int64), np.asarray(predicted, np.int64)], axis=1)
    text = io.StringIO()
    np.savetxt(text, rows, fmt="%d", delimiter=",", header="label,predicted", comments="")
    write_atomic(Path(path), text.getvalue().encode())
    return Path(path)


def latency_ms(model, x: np.ndarray, batches=LATENCY_BATCHES, seconds: float = 0.5) -> dict:
    """Median milliseconds of ``model.predict_on_batch`` (Keras's one-batch inference call)
    per batch size: 3 warm-up calls, then calls timed one by one for about ``seconds``
    (at least 5). The result is a NumPy array, so each call has finished when timed."""
    found = {}
    for n in batches:
        xb = x[:n]
        for _ in range(3):
            model.predict_on_batch(xb)
        times: list[float] = []
        end = time.perf_counter() + seconds
        while len(times) < 5 or time.perf_counter() < end:
            t0 = time.perf_counter()
            model.predict_on_batch(xb)
            times.append(time.perf_counter() - t0)
        found[str(n)] = 1000 * statistics.median(times)
    return found


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``getrusage``'s ru_maxrss)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else (platform.processor() or platform.machine())


def environment() -> dict[str, object]:
    """The machine and the backend's compute settings: CPU, threads, oneDNN, GPU."""
    env: dict[str, object] = {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count()}
    threads = {
        k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS") if k in os.environ
    }
    env["gpu"] = None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # 0 means TensorFlow's default: one thread per logical CPU.
        threads["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        threads["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
        # oneDNN is on by default in x86 Linux builds; TF_ENABLE_ONEDNN_OPTS=0 turns it off.
        flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        default_on = platform.machine() in ("x86_64", "AMD64")
        env["onednn_enabled"] = flag not in ("0", "false", "False") if flag else default_on
        env["blas"] = "Eigen (TensorFlow's CPU kernels)"
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            env["gpu"] = details.get("device_name", gpus[0].name)
    env["threads"] = threads
    return env
