"""Write ``predict`` output into the run folder.

- On the test set: ``predictions.csv``, one row per image with its label, the predicted class,
  its probability and all class probabilities.
- On your own images (``--data.images``): ``image_predictions.csv`` (or ``.json``, see
  ``image_format``) with file, class, probability and top 3, and one row per file that could
  not be read; each such file is also reported on stderr.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lightning_mnist.predict.files import format_table, render, top_prediction, write_exclusive


class PredictionCSV(BasePredictionWriter):
    """The prediction writer of ``lightning-mnist predict``.

    Args:
        dirpath: Where to write; None is the run folder (the CLI fills it in).
        image_format: ``csv`` or ``json`` for predictions on ``--data.images``.
    """

    def __init__(self, dirpath: str | None = None, image_format: Literal["csv", "json"] = "csv"):
        super().__init__(write_interval="epoch")
        self.dirpath, self.image_format = dirpath, image_format
        self.path: Path | None = None
        self.failures: list[tuple[str, str]] = []

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        folder = Path(self.dirpath or trainer.log_dir or ".")
        probs = torch.cat([p["probs"] for p in predictions]).cpu() if predictions else None
        dm = trainer.datamodule
        if getattr(dm, "images", None) is not None:
            self._write_images(folder, dm, probs if probs is not None else torch.zeros(0, 10))
            return
        preds = torch.cat([p["pred"] for p in predictions]).cpu()
        labels = torch.cat([p["label"] for p in predictions]).cpu()
        name = (
            "predictions.csv"
            if trainer.world_size == 1
            else f"predictions.rank{trainer.global_rank}.csv"
        )
        self.path = folder / name
        folder.mkdir(parents=True, exist_ok=True)
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

    def _write_images(self, folder: Path, dm, probs: torch.Tensor) -> None:
        rows = [top_prediction(f, p) for f, p in zip(dm.image_files, probs, strict=True)]
        self.failures = list(dm.image_failures)
        self.path = folder / f"image_predictions.{self.image_format}"
        write_exclusive(self.path, render(rows, self.failures, self.path.suffix))
        if rows:
            print(format_table(rows))
        for _, message in self.failures:
            print(f"error: {message}", file=sys.stderr)
        print(f"{len(rows)} predicted, {len(self.failures)} failed; wrote {self.path}")
