"""Why the lockstep's max |Δw| jumps in one step: the first ReLU decision that flips.

``python benchmarks/lockstep_jump.py [--seed 0] [--steps 188] [--out FILE.json]``, from the
repository root (it imports the lockstep harness of ``tests/parity/lockstep``).

Runs the lockstep harness's sides (Keras, torch with 2 threads, torch with 1 thread and
torch with each batch reversed) on the shared batches and masks of the first epoch. For
each pair of the harness (``cross`` Keras-torch, ``yard`` threads, ``order`` reversed) it
finds the first step whose max |Δw| grows more than tenfold and, at that step, from the two
sides' weights before it:

- the weight whose difference jumped, its two gradients, and the second side's gradient at
  the first side's weights (the same weights: rounding only);
- the ReLU and max-pool decisions that differ, recomputed in float64 from each side's weights:
  conv pre-activations of opposite sign, pool windows whose winner changes, fc1
  pre-activations of opposite sign, with the pre-activations of the flipped ones;
- Adam's second moment of that weight and the jump its gradient change predicts,
  α·(1 - β₁)·Δg / (√v + ε), against the jump measured.

Not a test: it prints one block per pair and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_mnist.data.catalogue import default_data_dir  # noqa: E402
from lightning_mnist.interop.keras_weights import to_keras_layout  # noqa: E402
from tests.parity.lockstep.keras_side import KerasSide  # noqa: E402
from tests.parity.lockstep.plan import epoch_batches, keep_scale, load_mnist  # noqa: E402
from tests.parity.lockstep.run import PAIRS, max_dw, sides  # noqa: E402
from tests.parity.lockstep.torch_side import TorchSide  # noqa: E402

JUMP = 10.0  # a step that multiplies max |Δw| by more than this is a jump
NAMES = ("conv.kernel", "conv.bias", "fc1.kernel", "fc1.bias", "fc2.kernel", "fc2.bias")


def decisions(w: dict, x: np.ndarray) -> dict[str, torch.Tensor]:
    """Conv and fc1 pre-activations and the pool winners, in float64, from Keras-layout ``w``."""
    xt = torch.from_numpy(x[:, None]).double()
    kernel = torch.from_numpy(w["conv"][0]).double().permute(3, 2, 0, 1)
    z = F.conv2d(xt, kernel, torch.from_numpy(w["conv"][1]).double())
    pooled, winner = F.max_pool2d(torch.relu(z), 2, return_indices=True)
    flat = pooled.permute(0, 2, 3, 1).flatten(1)  # Keras's NHWC flatten
    h = flat @ torch.from_numpy(w["fc1"][0]).double() + torch.from_numpy(w["fc1"][1]).double()
    return {"conv": z, "winner": winner, "pooled": pooled, "fc1": h}


def pairs_of(za: torch.Tensor, zb: torch.Tensor, where: torch.Tensor) -> list[list[float]]:
    """The first four (a, b) values where ``where`` holds."""
    return [[float(p), float(q)] for p, q in zip(za[where][:4], zb[where][:4], strict=True)]


def masks(a: dict, b: dict) -> dict[str, torch.Tensor]:
    """Where two :func:`decisions` results differ: conv ReLUs, pool winners, fc1 ReLUs."""
    live = (a["pooled"] > 0) | (b["pooled"] > 0)  # a winner matters only where one is positive
    return {
        "conv": (a["conv"] > 0) != (b["conv"] > 0),
        "pool": (a["winner"] != b["winner"]) & live,
        "fc1": (a["fc1"] > 0) != (b["fc1"] > 0),
    }


def flips(a: dict, b: dict) -> dict:
    """The decisions that differ between two :func:`decisions` results, with the
    pre-activations of the first flipped ReLUs."""
    m = masks(a, b)
    return {
        "conv_relu": int(m["conv"].sum()),
        "conv_relu_filters": sorted({int(f) for f in m["conv"].nonzero()[:, 1]}),
        "conv_z": pairs_of(a["conv"], b["conv"], m["conv"]),
        "pool_winner": int(m["pool"].sum()),
        "fc1_relu": int(m["fc1"].sum()),
        "fc1_z": pairs_of(a["fc1"], b["fc1"], m["fc1"]),
    }


def flat_weights(w: dict) -> list[np.ndarray]:
    return [arr for layer in ("conv", "fc1", "fc2") for arr in w[layer]]


def adam_prediction(side: TorchSide, i: int, where: tuple, dg: float) -> dict:
    """Adam's second moment of the weight after this step, and the jump a gradient change
    ``dg`` makes through m alone: α·(1 - β₁)·Δg / (√v + ε), α = lr·√(1 - β₂ᵗ) / (1 - β₁ᵗ)."""
    opt = side.optimizer
    v = float(to_keras_layout(opt.v[i])[where])
    t = opt.t
    alpha = 1e-3 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    return {"adam_t": t, "v": v, "predicted_jump": alpha * 0.1 * abs(dg) / (math.sqrt(v) + 1e-7)}


def fresh(side, weights: dict):
    """A side of the same kind as ``side`` (framework, threads, row order) at ``weights``."""
    if isinstance(side, TorchSide):
        return TorchSide(weights, side.threads, side.reverse)
    return KerasSide(weights)


def jump_record(
    models: dict, pair: str, before: dict, after: dict, batch: tuple, made: dict
) -> dict:
    """What changed at the jump step of ``pair`` (weights ``before`` and ``after`` it; ``made``:
    each model's :func:`decisions` on the batch before it)."""
    a, b = PAIRS[pair]
    d_after = max_dw(after[a], after[b])
    name = max(d_after, key=d_after.get)
    i = NAMES.index(name)
    diff = np.abs(flat_weights(after[a])[i] - flat_weights(after[b])[i])
    where = np.unravel_index(diff.argmax(), diff.shape)
    dw_before = np.abs(flat_weights(before[a])[i] - flat_weights(before[b])[i])[where]
    side_b = models[b]
    ga = fresh(models[a], before[a]).gradients(*batch)
    gb = fresh(side_b, before[b]).gradients(*batch)
    gb_at_a = fresh(side_b, before[a]).gradients(*batch)  # b's arithmetic at a's weights
    same = max(float(np.abs(p - q).max()) for p, q in zip(ga, gb_at_a, strict=True))
    return {
        "weight": name,
        "index": [int(j) for j in where],
        "max_dw_before": max(max_dw(before[a], before[b]).values()),
        "dw_before": float(dw_before),
        "dw_after": float(diff[where]),
        "grad": [float(ga[i][where]), float(gb[i][where])],
        "grad_same_weights_max_diff": same,
        **adam_prediction(side_b, i, where, float(ga[i][where] - gb[i][where])),
        "decisions": flips(made[a], made[b]),
    }


def differing(da: dict, db: dict) -> int:
    """How many ReLU and pool decisions differ between two :func:`decisions` results."""
    return int(sum(m.sum() for m in masks(da, db).values()))


def growth(record: dict, pair: str) -> dict:
    """How max |Δw| grew at the steps where a decision differed, and at the others."""
    dw, n = np.array(record["max_dw"][pair]), np.array(record["decisions_differing"][pair])
    factor = dw[1:] / np.maximum(dw[:-1], 1e-30)
    live = dw[:-1] > 0
    at, off = factor[live & (n[1:] > 0)], factor[live & (n[1:] == 0)]
    first = int(np.argmax(n > 0)) + 1 if n.any() else None
    median = lambda a: float(np.median(a)) if a.size else None  # noqa: E731
    return {
        "first_step_with_a_differing_decision": first,
        "steps_with_one": int((n > 0).sum()),
        "median_growth_at_those_steps": median(at),
        "median_growth_at_the_others": median(off),
        "largest_growth_at_those_steps": float(at.max()) if at.size else None,
        "largest_growth_at_the_others": float(off.max()) if off.size else None,
    }


def run(seed: int, steps: int, data) -> dict:
    """Per step and pair: max |Δw| after the step and the decisions that differed before it
    on its batch; the first jump of each pair, explained."""
    models = sides(seed, threads=2, yardstick_threads=1, reordered=True)
    found: dict[str, dict] = {}
    record = {"max_dw": {p: [] for p in PAIRS}, "decisions_differing": {p: [] for p in PAIRS}}
    for step, rows in enumerate(epoch_batches(seed, 0, len(data.x_train))[:steps]):
        batch = (data.x_train[rows], data.y_train[rows], keep_scale(seed, 0, step, len(rows)))
        before = {name: m.weights() for name, m in models.items()}
        made = {name: decisions(w, batch[0]) for name, w in before.items()}
        for m in models.values():
            m.step(*batch)
        after = {name: m.weights() for name, m in models.items()}
        for pair, (a, b) in PAIRS.items():
            old = max(max_dw(before[a], before[b]).values())
            new = max(max_dw(after[a], after[b]).values())
            record["max_dw"][pair].append(new)
            record["decisions_differing"][pair].append(differing(made[a], made[b]))
            if pair not in found and 0 < old < new / JUMP:
                found[pair] = {
                    "step": step + 1,
                    **jump_record(models, pair, before, after, batch, made),
                }
                print(f"{pair}: step {step + 1}: {json.dumps(found[pair])}", flush=True)
    summary = {pair: growth(record, pair) for pair in PAIRS}
    print(json.dumps(summary, indent=1))
    head = {"seed": seed, "steps_run": step + 1, "jump_factor": JUMP, "jumps": found}
    return {**head, "growth": summary, **record}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=188)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    data = load_mnist(args.data_dir or default_data_dir())
    record = run(args.seed, args.steps, data)
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
