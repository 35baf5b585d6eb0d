"""The lockstep loop: three models from one start, one shared plan, and the record.

``keras`` is the Keras side; ``torch`` the torch side with ``threads`` threads. Two yardsticks
differ from ``torch`` only in summation order: ``yardstick`` runs with ``yardstick_threads``
(the yardstick the bars were set against), ``reordered`` adds each batch's terms in reverse
row order. Every step records the losses, |Δloss| and its relative value, and max |Δw| over
all weights, for Keras against torch ("cross") and torch against each yardstick ("yard",
"order"); every epoch records max |Δw| per weight tensor, each test accuracy and the test-set
agreements.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from .keras_side import KerasSide, keras_start
from .plan import Mnist, epoch_batches, keep_scale
from .torch_side import TorchSide

Weights = dict[str, tuple[np.ndarray, ...]]
TENSORS = ("kernel", "bias")
PAIRS = {
    "cross": ("keras", "torch"),
    "yard": ("torch", "yardstick"),
    "order": ("torch", "reordered"),
}


def max_dw(a: Weights, b: Weights) -> dict[str, float]:
    """max |a - b| for each weight tensor, named ``layer.kernel`` / ``layer.bias``."""
    return {
        f"{layer}.{TENSORS[i]}": float(np.abs(x - y).max())
        for layer in a
        for i, (x, y) in enumerate(zip(a[layer], b[layer], strict=True))
    }


def loss_gap(a: float, b: float) -> tuple[float, float]:
    """|a - b| and its value relative to |a|."""
    return abs(a - b), abs(a - b) / abs(a)


def sides(seed: int, threads: int, yardstick_threads: int, reordered: bool) -> dict[str, Any]:
    """The models, all from Keras's initial weights for ``seed``."""
    start = keras_start(seed)
    models = {
        "keras": KerasSide(start),
        "torch": TorchSide(start, threads),
        "yardstick": TorchSide(start, yardstick_threads),
    }
    if reordered:
        models["reordered"] = TorchSide(start, threads, reverse=True)
    return models


def pairs(models: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The pairs whose two models are both there."""
    return {k: (a, b) for k, (a, b) in PAIRS.items() if a in models and b in models}


def record_step(steps: dict[str, list], models: dict[str, Any], losses: dict[str, float]) -> None:
    """Append one step's losses and gaps to the columns of ``steps``."""
    weights = {name: m.weights() for name, m in models.items()}
    for name, loss in losses.items():
        steps[f"loss_{name}"].append(loss)
    for pair, (a, b) in pairs(models).items():
        gap, rel = loss_gap(losses[a], losses[b])
        steps[f"dloss_{pair}"].append(gap)
        steps[f"rel_dloss_{pair}"].append(rel)
        steps[f"max_dw_{pair}"].append(max(max_dw(weights[a], weights[b]).values()))


def record_epoch(models: dict[str, Any], data: Mnist) -> dict[str, Any]:
    """Max |Δw| per tensor, test accuracy of each model, and the test-set agreements."""
    pred = {name: m.predict(data.x_test) for name, m in models.items()}
    w = {name: m.weights() for name, m in models.items()}
    record: dict[str, Any] = {
        "test_accuracy": {k: float((p == data.y_test).mean()) for k, p in pred.items()}
    }
    for pair, (a, b) in pairs(models).items():
        record[f"max_dw_{pair}"] = max_dw(w[a], w[b])
        record[f"agreement_{pair}"] = float((pred[a] == pred[b]).mean())
    return record


def lockstep(
    data: Mnist,
    seed: int = 0,
    epochs: int = 2,
    max_steps: int | None = None,
    threads: int = 2,
    yardstick_threads: int = 1,
    reordered: bool = True,
) -> dict[str, Any]:
    """Train the models in lockstep for ``epochs`` (or ``max_steps`` steps in all) and return
    the record: ``steps`` (columns, one value per step), ``epochs`` (one dict each).
    ``reordered`` False leaves out the reversed-batch yardstick (the CI test does)."""
    models = sides(seed, threads, yardstick_threads, reordered)
    steps: dict[str, list] = defaultdict(list)
    epoch_records, started, done = [], time.perf_counter(), 0
    for epoch in range(epochs):
        for step, rows in enumerate(epoch_batches(seed, epoch, len(data.x_train))):
            if max_steps is not None and done == max_steps:
                break
            x, y, keep = (
                data.x_train[rows],
                data.y_train[rows],
                keep_scale(seed, epoch, step, len(rows)),
            )
            losses = {name: m.step(x, y, keep) for name, m in models.items()}
            record_step(steps, models, losses)
            steps["epoch"].append(epoch)
            done += 1
        epoch_records.append({"epoch": epoch + 1, "steps": done, **record_epoch(models, data)})
    settings = {"seed": seed, "epochs": epochs, "threads": threads}
    settings |= {"yardstick_threads": yardstick_threads, "train_rows": len(data.x_train)}
    wall = time.perf_counter() - started
    return {"settings": settings, "steps": dict(steps), "epochs": epoch_records, "wall_s": wall}
