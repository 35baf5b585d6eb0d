"""A fused Conv2D(1 -> C, 3x3) + MaxPool(2x2) + ReLU for the CPU, as a small C kernel.

On the CPU this network is memory-bound on one tensor: the convolution's output
(256 x 32 x 26 x 26 floats, 22 MB a batch), which the convolution writes, pooling
reads, pooling's backward zero-fills and scatters into, and the convolution's
backward reads again. The kernel in ``kernels/convpool.c`` never stores it: the
forward keeps the pooled value and which of the 4 window positions held the max
(the first on ties, as TensorFlow's pooling gradient); the backward sends each
pooled gradient to that position and sums the weight and bias gradients directly.

The kernel is compiled once per machine with the system C compiler (``cc``, about
0.5 s) into ``~/.cache/lightning_mnist`` and loaded with ctypes after torch. It is
built with OpenMP and links ``libgomp.so.1`` by name, which resolves to the runtime
torch has already loaded: the kernel runs in torch's own thread pool (a second pool
would spin against torch's on the same cores). Without a compiler, ``available()`` is
False and the model uses PyTorch's own conv and pool.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("kernels") / "convpool.c"
MAX_CHANNELS = 512  # MAXC in convpool.c
CACHE = Path(os.environ.get("LIGHTNING_MNIST_CACHE", Path.home() / ".cache" / "lightning_mnist"))


def _build(out: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise OSError("no C compiler (cc/gcc) found")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
    os.close(fd)
    base = [cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
    try:
        try:
            subprocess.run([*base, "-fopenmp"], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP: one thread
            subprocess.run(base, check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)  # atomic: parallel DDP processes may build at once
    finally:
        Path(tmp).unlink(missing_ok=True)


@cache
def _library() -> ctypes.CDLL | None:
    # -march=native code is for this CPU only, so the cache key includes the machine.
    key = hashlib.sha256(
        SOURCE.read_bytes() + platform.node().encode() + platform.machine().encode()
    ).hexdigest()[:16]
    path = CACHE / f"convpool-{key}.so"
    try:
        if not path.is_file():
            _build(path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("fused conv+pool kernel unavailable (%s); using PyTorch's conv and pool", e)
        return None
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.convpool_forward.argtypes = [ptr] * 5 + [i64] * 5
    lib.convpool_backward.argtypes = [ptr] * 5 + [i64] * 5
    return lib


def available() -> bool:
    """Whether the compiled kernel can be used on this machine."""
    return _library() is not None


def supports(x: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether ``conv`` on ``x`` (then a 2x2 max-pool) can run on the fused kernel."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not x.requires_grad
        and conv.in_channels == 1
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.out_channels <= MAX_CHANNELS
        and available()
    )


def _threads(n: int) -> int:
    return max(1, min(torch.get_num_threads(), n))


class ConvPoolReLU(torch.autograd.Function):
    """``relu(max_pool2d(conv2d(x, w, b), 2))`` in channels-last layout (N, PH, PW, C)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        lib = _library()
        n, _, h, w = x.shape
        c = weight.shape[0]
        x = x.contiguous()
        wt = weight.detach().reshape(c, 9).t().contiguous()  # (9, C): taps x channels
        b = bias.detach().contiguous()
        out = x.new_empty(n, (h - 2) // 2, (w - 2) // 2, c)
        idx = torch.empty(out.shape, dtype=torch.uint8)
        ptrs = (x.data_ptr(), wt.data_ptr(), b.data_ptr(), out.data_ptr(), idx.data_ptr())
        lib.convpool_forward(*ptrs, n, _threads(n), h, w, c)
        ctx.save_for_backward(x, idx)
        ctx.channels = c
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        lib = _library()
        x, idx = ctx.saved_tensors
        n, _, h, w = x.shape
        c = ctx.channels
        g = grad.contiguous()
        k = _threads(n)
        # One row of partial sums per thread, added up here in a fixed order: deterministic.
        dwt = torch.zeros(k, 9, c, dtype=torch.float64)
        db = torch.zeros(k, c, dtype=torch.float64)
        lib.convpool_backward(
            x.data_ptr(), g.data_ptr(), idx.data_ptr(), dwt.data_ptr(), db.data_ptr(), n, k, h, w, c
        )
        grad_w = dwt.sum(0).t().reshape(c, 1, 3, 3).to(grad.dtype)
        return None, grad_w, db.sum(0).to(grad.dtype)
