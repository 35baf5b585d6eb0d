"""The fused Conv2D(1 -> C, 3x3) + MaxPool(2x2) + ReLU as a registered PyTorch operator.

On the CPU the tutorial's network is memory-bound on the 22 MB conv output of each batch, which
``convpool.cpp`` never stores: it keeps each pooled max and its window position (the first on
ties, as TensorFlow's pooling gradient), where the backward sends the gradient.
"""

import logging
from functools import cache

import torch

from lightning_mnist.model import TutorialCNN
from lightning_mnist.ops.build import OpUnavailable, build

log = logging.getLogger(__name__)
MAX_CHANNELS = 512  # MAXC in convpool.cpp


@cache
def load() -> None:
    """Build (once per key) and load the library and register its kernels, else OpUnavailable."""
    path = build()
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError) as e:
        raise OpUnavailable(f"cannot load {path}: {str(e).splitlines()[0]}") from None
    fwd = "lightning_mnist::convpool_relu_fwd"

    @torch.library.register_fake(fwd)
    def _fwd_fake(x, weight, bias):
        n, _, h, w = x.shape
        shape = (n, (h - 2) // 2, (w - 2) // 2, weight.shape[0])
        return x.new_empty(shape), x.new_empty(shape, dtype=torch.uint8)

    @torch.library.register_fake("lightning_mnist::convpool_relu_bwd")
    def _bwd_fake(grad, x, idx):
        c = idx.shape[-1]
        return grad.new_empty((c, 1, 3, 3)), grad.new_empty((c,))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[1])  # the image and the max positions

    def backward(ctx, grad_out, _grad_idx):
        if ctx.needs_input_grad[0]:
            raise RuntimeError("the fused conv+pool op has no gradient for its input image")
        x, idx = ctx.saved_tensors
        grad_w, grad_b = torch.ops.lightning_mnist.convpool_relu_bwd(grad_out, x, idx)
        return None, grad_w, grad_b

    torch.library.register_autograd(fwd, backward, setup_context=setup_context)


def available() -> bool:
    """Whether the fused operator is loaded or can be (a warning says why not)."""
    try:
        load()
    except OpUnavailable as e:
        log.warning("fused conv+pool op unavailable (%s); using PyTorch's conv and pool", e)
        return False
    return True


def supports(x: torch.Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether ``conv`` on ``x`` (then a 2x2 max-pool) can run on the fused operator."""
    geometry = (conv.in_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    fits = geometry == (1, (3, 3), (1, 1), (0, 0), (1, 1)) and conv.out_channels <= MAX_CHANNELS
    return fits and x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad


def conv_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(conv2d(x, weight, bias), 2))`` in channels-last layout (N, PH, PW, C)."""
    return torch.ops.lightning_mnist.convpool_relu_fwd(x, weight, bias)[0]


class FusedTutorialCNN(TutorialCNN):
    """``TutorialCNN`` with Conv + MaxPool + ReLU on the fused operator where it covers the
    input; the same parameters, names and maths, so its checkpoints are the stock network's."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if not supports(x, self.conv):
            return super().features(x)
        # Conv + pool + ReLU in one operator, already NHWC: (N, 1, 28, 28) -> (N, 13, 13, 32)
        return conv_pool_relu(x, self.conv.weight, self.conv.bias).flatten(1)
