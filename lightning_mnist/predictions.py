"""Write ``predict`` output: one CSV row per test image with class and probabilities."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionCSV(BasePredictionWriter):
    """Write ``predictions.csv`` (index, label, predicted, probability, p0..p9)."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.path: Path | None = None

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        preds = torch.cat([p["pred"] for p in predictions]).cpu()
        probs = torch.cat([p["probs"] for p in predictions]).cpu()
        labels = torch.cat([p["label"] for p in predictions]).cpu()
        name = (
            "predictions.csv"
            if trainer.world_size == 1
            else f"predictions.rank{trainer.global_rank}.csv"
        )
        self.path = Path(trainer.log_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["index", "label", "predicted", "probability"]
                + [f"p{i}" for i in range(probs.shape[1])]
            )
            for i, (label, pred, row) in enumerate(
                zip(labels.tolist(), preds.tolist(), probs.tolist(), strict=True)
            ):
                w.writerow([i, label, pred, f"{row[pred]:.6f}"] + [f"{p:.6f}" for p in row])
        correct = int((preds == labels).sum())
        print(
            f"Wrote {len(preds)} predictions to {self.path} (accuracy {correct / len(preds):.4f})"
        )
