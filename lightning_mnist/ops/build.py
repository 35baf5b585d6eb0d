"""Build ``convpool.cpp`` with the system C++ compiler against the installed torch into a private
cache, ``$LIGHTNING_MNIST_CACHE`` or ``~/.cache/lightning_mnist``, under a name keyed by all
that changes the binary, so a stale build is never loaded. Loading a library runs its code, so
the cache folder and the file must be the user's own and writable by no one else."""

import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lightning_mnist.errors import UserError

SOURCE = Path(__file__).with_name("convpool.cpp")
CACHE_ENV = "LIGHTNING_MNIST_CACHE"


class OpUnavailable(UserError):
    """The fused operator cannot be built or loaded here."""


def flags() -> list[str]:
    """Compile and link flags for this torch."""
    from torch.utils import cpp_extension

    major, minor = map(int, torch.__version__.split(".")[:2])
    # GNU mode, as a C build would be: it contracts a*b+c into FMA instructions.
    std = "-std=gnu++20" if (major, minor) >= (2, 10) else "-std=gnu++17"
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    # at::parallel_for is inline: in a torch built with OpenMP an `omp parallel` region, which
    # needs -fopenmp (the libgomp torch has loaded) to run in torch's pool; else its own pool.
    parallel = ["-fopenmp"] if torch._C.has_openmp else []
    paths = [f"-I{p}" for p in cpp_extension.include_paths()]
    paths += [f"-L{p}" for p in cpp_extension.library_paths()]
    return [*parallel, "-O3", "-march=native", "-shared", "-fPIC", std, abi, *paths]


def cpu_features() -> str:
    """The CPU's feature flags (Linux), else the processor name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def build_key(cxx: str, cflags: list[str], source: bytes) -> str:
    """A digest of all that changes the binary (``-march=native`` code needs the same CPU)."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    texts = [" ".join(cflags), cxx, version.stdout, torch.__version__, sys.version]
    texts += [platform.machine(), cpu_features()]
    digest = hashlib.sha256()
    for part in [source, *map(str.encode, texts)]:
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
    """The built library's path, compiled first when its key is new, else ``OpUnavailable``."""
    cache = cache or Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lightning_mnist")
    cxx = cxx or os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise OpUnavailable("no C++ compiler (c++/g++) found; install one or use conv_pool native")
    cflags = flags()
    out = cache / f"convpool-{build_key(cxx, cflags, SOURCE.read_bytes())}.so"
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
