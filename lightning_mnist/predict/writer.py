"""Write ``predict`` output into the run folder, whole or not at all, never over a file: on the
test set ``predictions.csv``; on your own images (``--data.images``) ``image_predictions.csv``
(or ``.json``), one record of ``FIELDS`` per input, where a file that could not be read has
empty prediction fields and its error."""

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lightning_mnist.atomic import write_atomic
from lightning_mnist.errors import UserError

TOP_K = 3
FIELDS = ("file", "predicted", "probability", "top3", "error")  # of image_predictions.*


class PredictError(UserError):
    """The predictions cannot be written (the output file already exists)."""


@dataclass(frozen=True)
class Prediction:
    """One classified image: its file, most probable class and its probability, and top 3."""

    file: str
    predicted: int
    probability: float
    top3: list[tuple[int, float]]

    def top3_text(self) -> str:
        return " ".join(f"{c}:{p:.4f}" for c, p in self.top3)  # "7:0.9812 1:0.0101 2:0.0003"


def csv_text(header: list[str], rows: list[list]) -> str:
    """CSV text with a header row, ``\\n`` line ends."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def render(rows: list[Prediction], failures: list[tuple[str, str]], suffix: str) -> str:
    """The image predictions file's text: predictions, then ``(input, message)`` failures."""
    if suffix == ".json":
        records = [asdict(r) | {"error": None} for r in rows]
        records += [dict.fromkeys(FIELDS) | {"file": f, "error": m} for f, m in failures]
        return json.dumps(records, indent=2) + "\n"
    lines = [[r.file, r.predicted, f"{r.probability:.6f}", r.top3_text(), ""] for r in rows]
    lines += [[f, "", "", "", m] for f, m in failures]
    return csv_text(list(FIELDS), lines)


def format_table(rows: list[Prediction]) -> str:
    """A short plain-text table: file, predicted class, probability, top 3."""
    width = max([len("file")] + [len(r.file) for r in rows])
    lines = [f"{'file':<{width}}  digit  prob    top3"]
    lines += [
        f"{r.file:<{width}}  {r.predicted:>5}  {r.probability:.4f}  {r.top3_text()}" for r in rows
    ]
    return "\n".join(lines)


def write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; an existing file is refused, never replaced."""
    if path.exists():
        raise PredictError(f"{path}: already exists; choose another output folder or delete it")
    write_atomic(path, text.encode("utf-8"))


def write_test_predictions(path: Path, labels: torch.Tensor, probs: torch.Tensor) -> None:
    """Write ``predictions.csv`` for (N,) labels and (N, classes) probabilities; print a summary."""
    preds = probs.argmax(1)
    header = ["index", "label", "predicted", "probability"]
    header += [f"p{i}" for i in range(probs.shape[1])]
    columns = zip(labels.tolist(), preds.tolist(), probs.tolist(), strict=True)
    rows = [
        [i, label, pred, f"{row[pred]:.6f}", *(f"{p:.6f}" for p in row)]
        for i, (label, pred, row) in enumerate(columns)
    ]
    write_new(path, csv_text(header, rows))
    accuracy = int((preds == labels).sum()) / len(preds)
    print(f"Wrote {len(preds)} predictions to {path} (accuracy {accuracy:.4f})")


def write_image_predictions(
    path: Path, files: list[str], probs: torch.Tensor, failures: list[tuple[str, str]]
) -> None:
    """Write and print the predictions for ``files`` (the rows of ``probs``) and the failures."""
    p, c = probs.topk(min(TOP_K, probs.shape[1]))
    tops = [list(zip(ci, pi, strict=True)) for ci, pi in zip(c.tolist(), p.tolist(), strict=True)]
    rows = [Prediction(f, *top[0], top) for f, top in zip(files, tops, strict=True)]
    write_new(path, render(rows, failures, path.suffix))
    if rows:
        print(format_table(rows))
    for _, message in failures:
        print(f"error: {message}", file=sys.stderr)
    print(f"{len(rows)} predicted, {len(failures)} failed; wrote {path}")


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
            self.failures = list(dm.image_failures)
            self.path = folder / f"image_predictions.{self.image_format}"
            probs = probs if probs is not None else torch.zeros(0, 10)
            write_image_predictions(self.path, dm.image_files, probs, self.failures)
            return
        labels = torch.cat([p["label"] for p in predictions]).cpu()
        rank = "" if trainer.world_size == 1 else f".rank{trainer.global_rank}"
        self.path = folder / f"predictions{rank}.csv"
        write_test_predictions(self.path, labels, probs)
