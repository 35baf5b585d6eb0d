"""Shared fixtures: the real data dir (fails loudly when it cannot be had) and tiny IDX files.

The helpers themselves live in ``tests/helpers.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Under pytest-xdist (`make test` runs the suite on up to 4 workers), each worker and the
# commands its tests start get an equal share of the cores, set before torch or TensorFlow
# loads: workers whose thread pools each spread over every core slow each other down. An
# OMP_NUM_THREADS of the user's own turns this off.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
OUTER_THREAD_ENV = {name: os.environ.get(name) for name in THREAD_VARS}
THREAD_SHARE: str | None = None  # the threads each worker gets; None: left alone
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1 and OUTER_THREAD_ENV["OMP_NUM_THREADS"] is None:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    THREAD_SHARE = str(max(1, (_cores or 1) // _workers))
    for _name in THREAD_VARS:
        os.environ.setdefault(_name, THREAD_SHARE)

# TensorFlow >= 2.20 loads its LLVM globally; importing triton (which torch and lightning
# pull in lazily) after it segfaults. Import triton first, whatever subset of tests runs.
with contextlib.suppress(ImportError):
    import triton  # noqa: F401

# The fused operator builds into a folder of this run's own, not the user's ~/.cache: no state
# carries between runs (child processes inherit it).
if "LIGHTNING_MNIST_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="lightning-mnist-ops-")
    os.environ["LIGHTNING_MNIST_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import torch  # noqa: E402
from helpers import RealDataMissing, resolve_real_data, write_tiny_idx  # noqa: E402

SESSION_THREADS = torch.get_num_threads()  # before any test or fixture changed it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, saying so, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu); torch sees none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """After every test torch runs on the session's thread count again (``--num_threads`` and
    the lockstep harness's fixtures set it in this process): no test's numbers depend on the
    tests before it."""
    yield
    torch.set_num_threads(SESSION_THREADS)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST files ($MNIST_DATA_DIR, else data/ fetched once through the verified
    chain); a test that needs them FAILS (never skips) when they cannot be had."""
    try:
        return resolve_real_data()
    except RealDataMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    return write_tiny_idx(tmp_path / "tiny")
