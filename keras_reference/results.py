"""What a run records: per-epoch times, the best epoch, versions, device and ``results.json``.

The file has the same schema as the Lightning port's, so the comparison reads both alike.
"""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lightning_mnist.atomic import write_json  # stdlib only: no torch

RESULTS_NAME = "results.json"


def versions() -> dict[str, str]:
    """Return the Python, NumPy, Keras and backend package versions of this run."""
    found = {"python": platform.python_version(), "numpy": np.__version__}
    backend = keras.backend.backend()
    for package in ("keras", backend, "h5py", "matplotlib"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def device_name() -> str:
    """Describe where Keras computes, e.g. ``"cpu (tensorflow, 2 cores)"``."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"gpu ({backend}, {details.get('device_name', gpus[0].name)})"
    return f"cpu ({backend}, {os.cpu_count()} cores, {platform.machine()})"


def check_out_dir(out_dir: str | Path) -> Path:
    """Create the run folder, refusing (FileExistsError, one line) one that already holds a
    results.json, so a finished run is never overwritten."""
    out = Path(out_dir)
    if (out / RESULTS_NAME).exists():
        raise FileExistsError(f"{out / RESULTS_NAME} exists; choose a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_results(out_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` (the shared schema) whole or not at all (the port's writer)."""
    path = Path(out_dir) / RESULTS_NAME
    write_json(path, results)
    return path
