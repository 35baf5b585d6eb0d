"""What a finished run measures besides accuracy: test predictions, inference latency, peak
memory and the machine. ``keras_reference.measure`` records the same fields without torch."""

import io
import os
import platform
import re
import resource
import statistics
import sys
import time
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch

from lightning_mnist.atomic import write_atomic

PREDICTIONS_CSV = "test_predictions.csv"
LATENCY_BATCHES = (1, 256)


def write_predictions(path: str | Path, labels, predicted) -> Path:
    """``label,predicted`` per test image, in the test files' order."""
    rows = np.stack([np.asarray(labels, np.int64), np.asarray(predicted, np.int64)], axis=1)
    buffer = io.BytesIO()
    np.savetxt(buffer, rows, fmt="%d", delimiter=",", header="label,predicted", comments="")
    write_atomic(Path(path), buffer.getbuffer())
    return Path(path)


@torch.inference_mode()
def predict_classes(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Argmax class of every image (on the model's device), in eval mode."""
    was_training = model.training
    model.eval()
    out = [model(x[i : i + batch_size]).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.inference_mode()
def latency_ms(
    model: torch.nn.Module, x: torch.Tensor, batches=LATENCY_BATCHES, seconds: float = 0.5
) -> dict[str, float]:
    """Median milliseconds of one forward pass (eval mode) per batch size, after 3 warm-up
    passes, over about ``seconds`` (at least 5 passes), each synchronised on a GPU."""
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    found = {}
    for n in batches:
        xb = x[:n]
        for _ in range(3):
            model(xb)
        sync()
        times: list[float] = []
        end = time.perf_counter() + seconds
        while len(times) < 5 or time.perf_counter() < end:
            t0 = time.perf_counter()
            model(xb)
            sync()
            times.append(time.perf_counter() - t0)
        found[str(n)] = 1000 * statistics.median(times)
    model.train(was_training)
    return found


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else ``platform.processor()``."""
    text = ""
    with suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else (platform.processor() or platform.machine())


def environment(device: torch.device) -> dict[str, object]:
    """The machine and torch's compute settings: CPU, threads, oneDNN, BLAS, GPU."""
    config = torch.__config__.show()
    onednn = re.search(r"(?:oneDNN|MKL-DNN) (v[\d.]+)", config)
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
            **{k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        },
        "onednn": onednn.group(1) if onednn else None,
        "onednn_enabled": torch.backends.mkldnn.is_available(),
        "blas": blas.group(1) if blas else None,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
