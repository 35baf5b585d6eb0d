"""Classify image files of handwritten digits with a trained model; write a CSV or JSON.

Inputs are files and folders. A folder contributes its image files (suffixes in
``IMAGE_SUFFIXES``, case-insensitive), sorted by name, not recursive; other files in it
(notes, hidden files, an earlier predictions.csv) are skipped without comment. A file named
explicitly is always tried, so a wrong one is reported rather than skipped.

Output (chosen by the suffix of ``out_path``), one record per input file, failures included:

- ``.csv``: columns ``file, predicted, probability, top3, error``; ``top3`` reads
  ``"7:0.9812 1:0.0101 2:0.0003"``; a failed file has empty prediction fields and the error.
- ``.json``: a list of ``{"file", "predicted", "probability", "top3": [[class, p], ...],
  "error"}``, with ``null`` prediction fields for a failed file.

An existing output file is never overwritten: ``predict_files`` refuses before predicting.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_mnist.predict.images import IMAGE_SUFFIXES, ImageError, prepare_image

TOP_K = 3
OUTPUT_SUFFIXES = (".csv", ".json")


class PredictError(Exception):
    """The prediction as a whole cannot run (bad output path); one line for the user."""


@dataclass(frozen=True)
class Prediction:
    """One classified image.

    Args:
        file: The image file, as found from the inputs.
        predicted: The most probable class.
        probability: Its softmax probability.
        top3: The three most probable ``(class, probability)`` pairs, most probable first.
    """

    file: str
    predicted: int
    probability: float
    top3: list[tuple[int, float]]

    def top3_text(self) -> str:
        return " ".join(f"{c}:{p:.4f}" for c, p in self.top3)


def expand_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to classify, in input order (folders sorted by name), and inputs that failed.

    Args:
        paths: Image files and folders of image files.
    """
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                failures.append((str(p), f"{p}: folder holds no image files ({_suffixes()})"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            failures.append((str(p), f"{p}: no such file or folder"))
    unique = list(dict.fromkeys(files))  # a file given twice (or file + its folder) runs once
    return unique, failures


def _suffixes() -> str:
    return " ".join(sorted(IMAGE_SUFFIXES))


def classify(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities (N, classes) for prepared images (N, 28, 28) in [0, 1].

    Args:
        model: Returns logits for (N, 1, 28, 28) float32 input (``TutorialCNN``).
        images: float32 (N, 28, 28).
        batch_size: Images per forward pass.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()  # dropout off
    try:
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(images[i : i + batch_size]).unsqueeze(1).to(device)
                # The model returns logits (docs/parity.md #6); softmax only here, for reporting.
                out.append(torch.softmax(model(x).float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def check_output_path(out_path: str | Path) -> Path:
    """The output path, validated: a .csv or .json file that does not exist yet.

    Args:
        out_path: Where the predictions will be written.

    Raises:
        PredictError: Wrong suffix, or the file already exists.
    """
    out = Path(out_path)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PredictError(f"{out}: output must end in .csv or .json")
    if out.exists():
        raise PredictError(f"{out}: already exists; choose another output file or delete it")
    return out


def prepare_files(
    paths: Iterable[str | Path],
) -> tuple[list[Path], np.ndarray, list[tuple[str, str]]]:
    """Expand and prepare image inputs: the good files, their (N, 28, 28) float32 images in
    the same order, and ``(input, message)`` for each input that could not be used."""
    files, failures = expand_inputs(paths)
    good: list[Path] = []
    arrays: list[np.ndarray] = []
    for f in files:
        try:
            arrays.append(prepare_image(f))
            good.append(f)
        except ImageError as e:
            failures.append((str(f), str(e)))
    stack = np.stack(arrays) if arrays else np.zeros((0, 28, 28), np.float32)
    return good, stack, failures


def predict_files(
    model: nn.Module,
    paths: Sequence[str | Path],
    out_path: str | Path,
    batch_size: int = 256,
    echo: bool = True,
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Classify image files and folders, write the predictions file and print a table.

    Bad inputs do not stop the others: each is reported in ``failures`` (and in the
    output file, with its error) while the good images are still classified.

    Args:
        model: The digit classifier; it returns logits for (N, 1, 28, 28) float32 input.
        paths: Image files and folders of images (see the module docstring).
        out_path: A new ``.csv`` or ``.json`` file; an existing file is never overwritten.
        batch_size: Images per forward pass.
        echo: Print the table and a summary to stdout and one ``error:`` line per failure
            to stderr.

    Returns:
        The predictions in input order, and ``(input, message)`` for each input that failed.

    Raises:
        PredictError: ``out_path`` has a wrong suffix or exists (checked before any work).
    """
    out = check_output_path(out_path)
    good, stack, failures = prepare_files(paths)
    probs = classify(model, stack, batch_size)
    rows = [top_prediction(str(f), p) for f, p in zip(good, probs, strict=True)]
    write_exclusive(out, render(rows, failures, out.suffix.lower()))
    if echo:
        print(format_table(rows))
        for _, msg in failures:
            print(f"error: {msg}", file=sys.stderr)
        print(f"{len(rows)} predicted, {len(failures)} failed; wrote {out}")
    return rows, failures


def top_prediction(file: str, probs: torch.Tensor) -> Prediction:
    p, c = torch.topk(probs, min(TOP_K, probs.numel()))
    top = [(int(ci), float(pi)) for ci, pi in zip(c, p, strict=True)]
    return Prediction(file, top[0][0], top[0][1], top)


def render(rows: list[Prediction], failures: list[tuple[str, str]], suffix: str) -> str:
    """The output file's text: CSV (``suffix == ".csv"``) or JSON, predictions then failures.

    Args:
        rows: The predictions.
        failures: ``(input, message)`` pairs.
        suffix: ``".csv"`` or ``".json"``.
    """
    if suffix == ".json":
        records = [
            {
                "file": r.file,
                "predicted": r.predicted,
                "probability": r.probability,
                "top3": [list(t) for t in r.top3],
                "error": None,
            }
            for r in rows
        ]
        records += [
            {"file": f, "predicted": None, "probability": None, "top3": None, "error": m}
            for f, m in failures
        ]
        return json.dumps(records, indent=2) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "predicted", "probability", "top3", "error"])
    w.writerows([r.file, r.predicted, f"{r.probability:.6f}", r.top3_text(), ""] for r in rows)
    w.writerows([f, "", "", "", m] for f, m in failures)
    return buf.getvalue()


def format_table(rows: list[Prediction]) -> str:
    """A short plain-text table: file, predicted class, probability, top 3.

    Args:
        rows: The predictions.
    """
    width = max([len("file")] + [len(r.file) for r in rows])
    lines = [f"{'file':<{width}}  digit  prob    top3"]
    lines += [
        f"{r.file:<{width}}  {r.predicted:>5}  {r.probability:.4f}  {r.top3_text()}" for r in rows
    ]
    return "\n".join(lines)


def write_exclusive(path: Path, text: str) -> None:
    """Write atomically (temp file + hard link), failing rather than replacing an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # unlike os.replace, fails if path appeared meanwhile
        except FileExistsError:
            raise PredictError(f"{path}: already exists; choose another output file") from None
        except OSError:  # a filesystem without hard links: exclusive create instead
            with open(path, "x", encoding="utf-8", newline="") as f:
                f.write(text)
    finally:
        Path(tmp).unlink(missing_ok=True)
