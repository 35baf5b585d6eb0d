"""Does Adam's ε form explain the training-accuracy gap of the paired comparison?

``python benchmarks/adam_form_gap.py [--seeds 5] [--epochs 8] [--out FILE.json]``, from the
repository root (it imports the lockstep harness of ``tests/parity/lockstep``).

Torch only. Per seed, three copies of ``TutorialCNN`` start from the same Glorot weights and
train on the same batches in the same order (``epoch_batches``) with the same dropout masks
(``keep_scale``), as the lockstep harness feeds them:

- ``torch``: ``torch.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-7)``, the preset's optimizer;
- ``keras_form``: Keras's update form (``KerasAdam``: ε added to √v, bias correction in the
  step size), the only difference from ``torch``;
- ``other_masks``: ``torch`` again with dropout masks of another seed: how far two runs of
  one framework drift apart when only the (independent) masks differ, as in the paired
  comparison, where each framework draws its own.

Per epoch it records each copy's training loss and accuracy with dropout on (sample-weighted
means over the epoch, as Keras's History and ``EpochSums`` keep them), the validation accuracy
on rows 48,000-59,999 (dropout off) and fc1's dead units (ReLU output 0 on every validation
image). Not a test: it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_mnist.data.catalogue import default_data_dir  # noqa: E402
from lightning_mnist.data.verify import load_arrays  # noqa: E402
from lightning_mnist.model import TutorialCNN  # noqa: E402
from tests.parity.lockstep.plan import TRAIN_ROWS, epoch_batches, keep_scale  # noqa: E402
from tests.parity.lockstep.torch_side import KerasAdam  # noqa: E402

ARMS = ("torch", "keras_form", "other_masks")
OTHER_MASKS = 1000  # added to the seed of the other_masks arm's masks


class Arm:
    """One copy of the network and its optimizer."""

    def __init__(self, start: dict, name: str) -> None:
        self.model = TutorialCNN()
        self.model.load_state_dict(start)
        params = list(self.model.parameters())
        self.keras = name == "keras_form"
        self.mask_offset = OTHER_MASKS if name == "other_masks" else 0
        self.opt = KerasAdam(params) if self.keras else torch.optim.Adam(params, 1e-3, eps=1e-7)

    def step(self, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> tuple[float, int]:
        """One step; returns the batch's summed loss and its correct predictions."""
        m = self.model.train()
        logits = m.fc2(torch.relu(m.fc1(m.features(x))) * keep)
        loss = F.cross_entropy(logits, y)
        params = list(m.parameters())
        grads = list(torch.autograd.grad(loss, params))
        if self.keras:
            self.opt.step(grads)
        else:
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            self.opt.step()
        return loss.item() * len(y), int((logits.argmax(1) == y).sum())

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """Validation accuracy and the number of fc1 units that are 0 on every image."""
        m = self.model.eval()
        hidden = torch.relu(m.fc1(m.features(x)))
        accuracy = float((m.fc2(hidden).argmax(1) == y).float().mean())
        return accuracy, int((hidden.amax(0) == 0).sum())


def run_seed(seed: int, epochs: int, data: tuple) -> dict:
    """The three arms of one seed, epoch by epoch."""
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(seed)
    start = TutorialCNN(keras_init=True).state_dict()
    arms = {name: Arm(start, name) for name in ARMS}
    record = {name: {"train_acc": [], "train_loss": [], "val_acc": [], "dead": []} for name in arms}
    for epoch in range(epochs):
        sums = {name: [0.0, 0] for name in arms}
        for step, rows in enumerate(epoch_batches(seed, epoch)):
            rows = torch.from_numpy(rows)
            for name, arm in arms.items():
                keep = keep_scale(seed + arm.mask_offset, epoch, step, len(rows))
                loss, correct = arm.step(x_train[rows], y_train[rows], torch.from_numpy(keep))
                sums[name][0] += loss
                sums[name][1] += correct
        for name, arm in arms.items():
            val_acc, dead = arm.evaluate(x_val, y_val)
            rec = record[name]
            rec["train_loss"].append(sums[name][0] / TRAIN_ROWS)
            rec["train_acc"].append(sums[name][1] / TRAIN_ROWS)
            rec["val_acc"].append(val_acc)
            rec["dead"].append(dead)
        print(f"seed {seed} epoch {epoch + 1}: " + summary(record, epoch), flush=True)
    return record


def summary(record: dict, epoch: int) -> str:
    """One epoch's training accuracy, validation accuracy and dead units per arm."""
    return "; ".join(
        f"{n} train {100 * r['train_acc'][epoch]:.2f}% val {100 * r['val_acc'][epoch]:.2f}% "
        f"dead {r['dead'][epoch]}"
        for n, r in record.items()
    )


def load(data_dir: str) -> tuple[torch.Tensor, ...]:
    """The tutorial's preprocessing: float32 / 255, one channel; train and validation rows."""
    x, y, _, _ = load_arrays(data_dir)
    x = torch.from_numpy(x.astype(np.float32) / np.float32(255))[:, None]
    y = torch.from_numpy(y.astype(np.int64))
    return x[:TRAIN_ROWS], y[:TRAIN_ROWS], x[TRAIN_ROWS:], y[TRAIN_ROWS:]


def gaps(records: dict[int, dict], a: str, b: str, key: str) -> list[float]:
    """Per seed, the mean over epochs of ``a - b`` in percentage points."""
    return [100 * float(np.mean(np.subtract(r[a][key], r[b][key]))) for r in records.values()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    data = load(args.data_dir or str(default_data_dir()))
    records = {s: run_seed(s, args.epochs, data) for s in range(args.seeds)}
    for a, b in (("torch", "keras_form"), ("torch", "other_masks")):
        for key in ("train_acc", "val_acc"):
            g = gaps(records, a, b, key)
            print(
                f"{a} - {b}, {key}, mean over epochs per seed (pp): "
                f"{', '.join(f'{v:+.2f}' for v in g)}; mean {np.mean(g):+.2f}"
            )
    if args.out:
        Path(args.out).write_text(json.dumps({"epochs": args.epochs, "seeds": records}, indent=1))


if __name__ == "__main__":
    main()
