"""How far float32 rounding can move one training step of the tutorial network, to first order.

The model (Higham & Mary, "A new approach to probabilistic rounding error analysis", SISC
2019): every float32 operation's result carries a relative error δ with |δ| <= u, mean zero
and independent of the others. To first order, the error of any computed value v is then
Σ_k c_k·δ_k over all the roundings k behind it, and Hoeffding's inequality gives
|error| <= λ·u·‖c‖₂ with probability at least 1 - 2·exp(-λ²/2). This module computes, in
float64 from the same weights and batch, an upper bound N(v) >= ‖c‖₂ for the loss and for
every gradient element (called the coefficient norm below), by these rules:

* A sum Σ x_i of n float32 products rounds each product (coefficient x_i) and each partial
  sum s_k (coefficient s_k): its own norm is sqrt(Σ x_i² + Σ s_k²), partial sums taken in
  index order (``own``). A bias is one more term.
* Errors the summands bring from upstream add to that. Where they come from disjoint sets of
  roundings (different images; different conv outputs) their norms add in quadrature;
  where they share roundings (one image's units, which all see its conv outputs), the
  triangle inequality adds them linearly, which can only overstate.
* ReLU and max-pooling select a value without rounding it: its norm passes through.
* Softmax and cross-entropy: the first-order change of p_c is p_c·(dz_c - Σ p_k dz_k); the
  loss of one image changes by Σ_c (p_c - y_c)·dz_c; their own few roundings are counted
  with generous constants (``OWN_CE``, ``OWN_SOFTMAX``).

Nothing here knows either framework's summation order; the index order stands in for it,
which the tests show to be safe with room (the worst element uses 1-10% of its bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_mnist.model import TutorialCNN

OWN_CE = 4  # exp, the 10-term sum, log and the subtraction, each at most |max z| + |loss|
OWN_SOFTMAX = 3  # exp, the sum and the division, each at most p_c


def own(terms: torch.Tensor) -> torch.Tensor:
    """The coefficient norm of a float32 sum's own roundings, over the last axis."""
    return (terms.square().sum(-1) + terms.cumsum(-1).square().sum(-1)).sqrt()


def rss(*parts: torch.Tensor) -> torch.Tensor:
    """Norms of errors from disjoint roundings, added in quadrature."""
    return torch.sqrt(sum(p.square() for p in parts))


@dataclass
class Analysis:
    """The float64 step and the coefficient norms; tensors in torch's layout."""

    loss: torch.Tensor
    loss_norm: torch.Tensor
    grads: dict[str, torch.Tensor]  # the parameter's name -> the exact gradient
    norms: dict[str, torch.Tensor]  # the parameter's name -> its gradient's norms


def analyse(model: TutorialCNN, x: torch.Tensor, y: torch.Tensor) -> Analysis:
    """Run ``model`` (float64, dropout off) forward and backward by hand on the batch."""
    with torch.no_grad():
        f = _forward(model, x, y)
        grads, norms = _backward(model, f)
    return Analysis(f["loss"], f["loss_norm"], grads, norms)


def _conv_pool(model: TutorialCNN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Conv (9 taps and the bias), ReLU, 2x2 max-pool and the NHWC flatten."""
    b = x.shape[0]
    w, bias = model.conv.weight.flatten(1), model.conv.bias  # (32, 9)
    cols = F.unfold(x, 3)  # (B, 9, 676): each output's 3x3 window, exact inputs
    z0 = torch.einsum("ck,bkp->bcp", w, cols) + bias[None, :, None]
    terms = torch.einsum("ck,bkp->bcpk", w, cols)
    norm_z0 = own(torch.cat([terms, bias[None, :, None, None].expand(b, -1, 676, 1)], -1))
    pooled, idx = F.max_pool2d(F.relu(z0).view(b, 32, 26, 26), 2, return_indices=True)
    norm_a1 = torch.gather((norm_z0 * (z0 > 0)).view(b, 32, 676), 2, idx.flatten(2))
    a1, norm_a1 = (t.view(b, 32, 13, 13).permute(0, 2, 3, 1).flatten(1) for t in (pooled, norm_a1))
    return {"cols": cols, "z0": z0, "idx": idx.flatten(2), "a1": a1, "norm_a1": norm_a1}


def _forward(model: TutorialCNN, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    f = _conv_pool(model, x)
    a1, norm_a1, b = f["a1"], f["norm_a1"], x.shape[0]
    w1, b1, w2, b2 = model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias
    h = a1 @ w1.T + b1  # each unit's 5408-term sum; the a1 feeding it are disjoint
    own_h = torch.stack([own(torch.cat([a1[i][None] * w1, b1[:, None]], 1)) for i in range(b)])
    norm_h = rss(own_h, (norm_a1.square() @ w1.square().T).sqrt())
    f["act"] = (h > 0).double()
    f["a2"], f["norm_a2"] = h * f["act"], norm_h * f["act"]
    z = f["a2"] @ w2.T + b2  # the 32 units share their image's roundings: linear
    own_z = own(torch.cat([f["a2"][:, None, :] * w2[None], b2[None, :, None].expand(b, -1, 1)], -1))
    f["z"], f["norm_z"] = z, rss(own_z, f["norm_a2"] @ w2.abs().T)
    f["p"], f["onehot"] = torch.softmax(z, 1), F.one_hot(y, 10).double()
    ce = torch.logsumexp(z, 1) - (z * f["onehot"]).sum(1)
    own_ce = OWN_CE * (z.abs().max(1).values + ce.abs())
    norm_ce = rss(((f["p"] - f["onehot"]).abs() * f["norm_z"]).sum(1), own_ce)
    f["loss"] = ce.mean()  # images are disjoint: quadrature; then the mean's own sum and /B
    f["loss_norm"] = rss(own(ce[None] / b)[0], norm_ce.square().sum().sqrt() / b) + f["loss"]
    return f


def _batch_sum(a, norm_a, d, norm_d) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_b d_bj·a_bk and its norms: its own sum over the batch (taken over the terms'
    magnitudes, whose partial sums bound the signed ones), and per image the linear sum of
    both factors' upstream errors (one image's errors may share roundings), in quadrature
    over the images."""
    grad = d.T @ a
    a, d = a.abs(), d.abs()
    upstream = norm_d.square().T @ a.square() + 2 * (norm_d * d).T @ (a * norm_a)
    upstream = upstream + d.square().T @ norm_a.square()
    return grad, rss(own(torch.einsum("bj,bk->jkb", d, a)), upstream.sqrt())


def _backward(model: TutorialCNN, f: dict) -> tuple[dict, dict]:
    b, w1, w2 = f["a1"].shape[0], model.fc1.weight, model.fc2.weight
    p, onehot, norm_z = f["p"], f["onehot"], f["norm_z"]
    norm_p = p * (norm_z + (p * norm_z).sum(1, keepdim=True)) + OWN_SOFTMAX * p
    dz, norm_dz = (p - onehot) / b, (norm_p + 2 * (p - onehot).abs()) / b  # - and /B round
    grads, norms = {}, {}
    grads["fc2.weight"], norms["fc2.weight"] = _batch_sum(f["a2"], f["norm_a2"], dz, norm_dz)
    grads["fc2.bias"], norms["fc2.bias"] = dz.sum(0), rss(own(dz.T), norm_dz.square().sum(0).sqrt())
    own_da2 = own(dz[:, None, :] * w2.T[None])
    dh, norm_dh = (dz @ w2) * f["act"], rss(own_da2, norm_dz @ w2.abs()) * f["act"]
    grads["fc1.weight"], norms["fc1.weight"] = _batch_sum(f["a1"], f["norm_a1"], dh, norm_dh)
    grads["fc1.bias"], norms["fc1.bias"] = dh.sum(0), rss(own(dh.T), norm_dh.square().sum(0).sqrt())
    own_da1 = torch.stack([own(dh[i][None, :] * w1.T) for i in range(b)])
    _conv_grads(f, dh @ w1, rss(own_da1, norm_dh @ w1.abs()), grads, norms)
    return grads, norms


def _conv_grads(f: dict, da1, norm_da1, grads: dict, norms: dict) -> None:
    """The pool hands each a1 gradient to its window's winner where the ReLU lets it through;
    the conv's gradients sum over the batch and the 676 positions (one image's positions
    share roundings: linear; the images: quadrature)."""
    b, cols = da1.shape[0], f["cols"]
    live = (torch.gather(f["z0"], 2, f["idx"]) > 0).double()

    def to_z0(t: torch.Tensor) -> torch.Tensor:  # NHWC (B, 5408) -> the winners in (B, 32, 676)
        t = t.view(b, 13, 13, 32).permute(0, 3, 1, 2).reshape(b, 32, 169)
        return torch.zeros_like(f["z0"]).scatter_(2, f["idx"], t * live)

    dz0, norm_dz0 = to_z0(da1), to_z0(norm_da1)
    upstream = torch.einsum("bcp,bkp->bck", norm_dz0, cols.abs()).square().sum(0).sqrt()
    own_w = own(torch.einsum("bcp,bkp->ckbp", dz0, cols).flatten(2))
    grads["conv.weight"] = torch.einsum("bcp,bkp->ck", dz0, cols).view(-1, 1, 3, 3)
    norms["conv.weight"] = rss(own_w, upstream).view(-1, 1, 3, 3)
    grads["conv.bias"] = dz0.sum((0, 2))
    per_image = norm_dz0.sum(2).square().sum(0).sqrt()
    norms["conv.bias"] = rss(own(dz0.permute(1, 0, 2).flatten(1)), per_image)
