"""The torch side: ``TutorialCNN``'s own modules, the shared mask at the dropout point, and
Keras's Adam update written in torch.

Why not ``torch.optim.Adam``: Keras folds the bias correction into the step size and adds ε
to √v, torch adds ε to the bias-corrected √v̂ (docs/parity.md #3). No constant torch ε gives
Keras's step at every t (ε_torch would have to be ε / √(1 - β₂ᵗ)), and with ε = 1e-7 a weight
whose gradient is near √(ε·ε̂) moves up to 0.7·lr differently at the first step
(tests/parity/test_one_step.py). So the harness runs Keras's formula, operation by operation
in float32, and keeps torch's autograd, kernels and modules.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lightning_mnist.interop.keras_weights import (
    keras_layout_state,
    load_keras_state,
    to_keras_layout,
)
from lightning_mnist.model import TutorialCNN


class KerasAdam:
    """Keras 3's ``Adam.update_step`` (keras/src/optimizers/adam.py) in float32 torch ops:
    ``m += (g - m)(1 - β₁)``, ``v += (g² - v)(1 - β₂)``,
    ``w -= m·α / (√v + ε)`` with ``α = lr·√(1 - β₂ᵗ) / (1 - β₁ᵗ)``; Keras's defaults."""

    def __init__(self, params: list[torch.Tensor], lr=1e-3, beta_1=0.9, beta_2=0.999, eps=1e-7):
        f32 = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731  Keras casts to float32
        self.params, self.t = params, 0
        self.lr, self.beta_1, self.beta_2, self.eps = f32(lr), f32(beta_1), f32(beta_2), f32(eps)
        self.one_minus = f32(1 - beta_1), f32(1 - beta_2)  # 1 - β in float64, then float32
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        t = torch.tensor(self.t, dtype=torch.float32)
        alpha = self.lr * torch.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.add_((g - m) * self.one_minus[0])
            v.add_((g.square() - v) * self.one_minus[1])
            p.sub_((m * alpha) / (v.sqrt() + self.eps))


class TorchSide:
    """``TutorialCNN`` from Keras-layout ``start`` weights, stepping with ``threads`` threads;
    ``reverse`` feeds each batch in reverse row order: the same sums, added in another order."""

    def __init__(
        self, start: dict[str, tuple[np.ndarray, ...]], threads: int, reverse: bool = False
    ) -> None:
        self.model = TutorialCNN()
        load_keras_state(self.model, start, source="the Keras start")
        self.threads, self.reverse = threads, reverse
        self.optimizer = KerasAdam(list(self.model.parameters()))

    def hidden(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """fc1's ReLU output times the shared mask: what ``self.model.dropout`` would pass on."""
        return torch.relu(self.model.fc1(self.model.features(x))) * keep

    def step(self, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> float:
        """One training step on images (N, 28, 28), labels (N,) and a mask (N, 32)."""
        loss, grads = self._loss_and_grads(x, y, keep)
        self.optimizer.step(grads)
        return loss.item()

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> tuple:
        torch.set_num_threads(self.threads)  # the yardsticks differ only here
        if self.reverse:  # every gradient is a sum over the batch: its terms come reversed
            x, y, keep = (np.ascontiguousarray(a[::-1]) for a in (x, y, keep))
        self.model.train()
        hidden = self.hidden(torch.from_numpy(x[:, None]), torch.from_numpy(keep))
        loss = F.cross_entropy(self.model.fc2(hidden), torch.from_numpy(y))  # mean, as Keras
        return loss, list(torch.autograd.grad(loss, list(self.model.parameters())))

    def gradients(self, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
        """The step's gradients, without stepping, in Keras layout and order."""
        return [to_keras_layout(g) for g in self._loss_and_grads(x, y, keep)[1]]

    def weights(self) -> dict[str, tuple[np.ndarray, ...]]:
        """The current weights in Keras layout, by layer name."""
        return keras_layout_state(self.model)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes (dropout off) for images (N, 28, 28)."""
        torch.set_num_threads(self.threads)
        self.model.eval()
        chunks = [self.model(torch.from_numpy(c[:, None])) for c in np.array_split(x, 10)]
        return torch.cat(chunks).argmax(dim=1).numpy()
