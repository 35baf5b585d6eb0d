"""Build and load ``convpool.cpp`` as a PyTorch operator library, safely and once.

The library is compiled with the system C++ compiler against the installed torch (its headers,
``libc10`` and ``libtorch_cpu``) into a private cache, ``$LIGHTNING_MNIST_CACHE`` or
``~/.cache/lightning_mnist``. Its file name carries a key over everything that changes the
binary: the source, the flags, the compiler and its version, the torch version and C++ ABI,
the Python version, and the CPU's architecture and feature flags (``-march=native`` code runs
only where those match). A changed key is a new file, so a stale build is never loaded.

Before loading, the cache folder and the file must belong to the current user and be writable
by no one else; anything else is refused, since loading a library runs its code.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from lightning_mnist.errors import UserError

SOURCE = Path(__file__).with_name("convpool.cpp")
CACHE_ENV = "LIGHTNING_MNIST_CACHE"


class OpUnavailable(UserError):
    """The fused operator cannot be built or loaded here; the message is one line."""


def cache_dir() -> Path:
    """Where built libraries are kept."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lightning_mnist")


def compiler() -> str:
    """The C++ compiler: ``$CXX``, else ``c++`` or ``g++`` on the PATH."""
    found = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not found:
        raise OpUnavailable("no C++ compiler (c++/g++) found; install one or use conv_pool native")
    return found


def flags() -> list[str]:
    """Compile and link flags for this torch."""
    from torch.utils import cpp_extension

    # GNU mode, as a C build would be: it contracts a*b+c into FMA instructions.
    std = "-std=gnu++20" if torch_version() >= (2, 10) else "-std=gnu++17"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    # at::parallel_for is inline code: in a torch built with OpenMP it is an `omp parallel`
    # region, which needs -fopenmp to run in torch's pool at all (it links the libgomp.so.1
    # that torch has already loaded); elsewhere it calls torch's own native pool.
    parallel = ["-fopenmp"] if torch._C.has_openmp else []
    return [
        *parallel,
        "-O3",
        "-march=native",
        "-shared",
        "-fPIC",
        std,
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *(f"-I{p}" for p in cpp_extension.include_paths()),
        *(f"-L{p}" for p in cpp_extension.library_paths()),
    ]


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


def cpu_features() -> str:
    """The CPU's feature flags (Linux), else the processor name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def build_key(cxx: str, cflags: Sequence[str], source: bytes) -> str:
    """A digest of everything that changes the built binary."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    parts = [
        source,
        " ".join(cflags).encode(),
        cxx.encode(),
        version.stdout.encode(),
        torch.__version__.encode(),
        sys.version.encode(),
        platform.machine().encode(),
        cpu_features().encode(),
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:24]


def check_private(path: Path) -> None:
    """Refuse ``path`` unless the current user owns it and no one else can write to it."""
    st = path.stat()
    if st.st_uid != os.getuid():
        raise OpUnavailable(f"{path} belongs to another user (uid {st.st_uid}); refusing to load")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OpUnavailable(f"{path} is writable by other users; refusing to load")


def build(cache: Path | None = None, cxx: str | None = None) -> Path:
    """The path of the built library, compiling it first when its key is new.

    Raises:
        OpUnavailable: no compiler, a failed build, or a cache another user could write to.
    """
    cache = cache or cache_dir()
    cxx = cxx or compiler()
    cflags = flags()
    source = SOURCE.read_bytes()
    out = cache / f"convpool-{build_key(cxx, cflags, source)}.so"
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OpUnavailable(f"cannot create {cache}: {e.strerror}") from None
    check_private(cache)
    if out.exists():
        check_private(out)
        return out
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".so.tmp")
    os.close(fd)
    cmd = [cxx, *cflags, str(SOURCE), "-lc10", "-ltorch_cpu", "-o", tmp]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise OpUnavailable(f"building the fused conv+pool op failed: {last}")
        os.chmod(tmp, 0o700)
        os.replace(tmp, out)  # atomic: a concurrent build of the same key writes the same bytes
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
