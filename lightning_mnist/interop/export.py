"""``lightning-mnist export``: a trained checkpoint as ONNX, TorchScript or an ExportedProgram,
checked against the Lightning model on the MNIST test images before it is kept.

Whatever conv path the checkpoint was trained with, the export uses PyTorch's stock ops (the
weights are the same), so any runtime can load it. The check runs the exported file the way a
user would (onnxruntime for ONNX, ``torch.jit.load`` / ``torch.export.load`` for the others) on
the test images and compares predicted classes and softmax with the model's; a file that fails
the check is not written.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from lightning_mnist.checkpoints import CheckpointError, load_classifier
from lightning_mnist.data.catalogue import DataError, default_data_dir
from lightning_mnist.data.module import to_tensor
from lightning_mnist.data.verify import load_arrays
from lightning_mnist.errors import UserError
from lightning_mnist.network import build_network

Format = Literal["onnx", "torchscript", "exported-program"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
SOFTMAX_ATOL = 1e-5  # the bar for an export: the same as for weights moved between frameworks


class ExportError(UserError):
    """The export cannot be made or does not match the model; one line for the user."""


def stock_model(ckpt_path: str | Path) -> nn.Module:
    """The checkpoint's network on PyTorch's own ops, in eval mode and NCHW layout."""
    system = load_classifier(ckpt_path)
    h = system.hparams
    model = build_network(
        h.arch, h.filters, h.hidden, h.dropout, h.num_classes, False, h.convs, "native"
    )
    model.load_state_dict(system.model.state_dict())
    return model.eval()


def export(model: nn.Module, fmt: Format, out: Path) -> None:
    """Write ``model`` to ``out`` in ``fmt``, with a dynamic batch dimension."""
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch")
    if fmt == "onnx":
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise ExportError(
                "ONNX export needs the [export] extra: pip install '.[export]'"
            ) from None
        program = torch.onnx.export(
            model, (example,), dynamo=True, dynamic_shapes={"x": {0: batch}}, verbose=False
        )
        program.save(str(out))
    elif fmt == "torchscript":
        torch.jit.save(torch.jit.trace(model, example), str(out))
    else:
        program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, str(out))


def run_exported(fmt: Format, path: Path, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Logits of the exported file on ``x``, computed by the runtime that loads it."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        parts = [
            session.run(None, {name: x[i : i + batch].numpy()})[0] for i in range(0, len(x), batch)
        ]
        return torch.from_numpy(np.concatenate(parts))
    module = (
        torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    )
    with torch.no_grad():
        return torch.cat([module(x[i : i + batch]) for i in range(0, len(x), batch)])


def check(model: nn.Module, fmt: Format, path: Path, x: torch.Tensor) -> dict[str, float]:
    """Compare the exported file with ``model`` on ``x``: equal classes and max |Δ softmax|."""
    with torch.no_grad():
        ref = model(x).softmax(1)
    got = run_exported(fmt, path, x).softmax(1)
    return {
        "images": len(x),
        "equal_predictions": int((got.argmax(1) == ref.argmax(1)).sum()),
        "max_abs_softmax_diff": float((got - ref).abs().max()),
    }


def export_checked(
    ckpt_path: str | Path, fmt: Format, out: Path, x: torch.Tensor
) -> dict[str, float]:
    """Export, check on ``x`` and move into ``out`` only when the check passes."""
    if out.exists():
        raise ExportError(f"{out} already exists; choose a new --out")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    model = stock_model(ckpt_path)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        export(model, fmt, tmp)
        report = check(model, fmt, tmp, x)
        if report["equal_predictions"] != len(x) or report["max_abs_softmax_diff"] > SOFTMAX_ATOL:
            raise ExportError(
                f"the {fmt} export disagrees with the model: {report['equal_predictions']}/"
                f"{len(x)} equal predictions, max |Δ softmax| {report['max_abs_softmax_diff']:.2e}"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """``lightning-mnist export --ckpt_path CKPT --format onnx|torchscript|exported-program``."""
    from jsonargparse import ArgumentParser

    p = ArgumentParser(
        exit_on_error=False,  # main() shows a parser error as one line
        prog="lightning-mnist export",
        description="Export a trained checkpoint (stock PyTorch ops) and check the exported "
        "file against the model on the MNIST test images; a file that disagrees is not kept.",
    )
    p.add_argument("--ckpt_path", type=str, required=True, help="a checkpoint written by fit")
    p.add_argument("--format", type=Format, default="onnx", help="what to write")
    p.add_argument("--out", type=str | None, default=None, help="new file (default: beside CKPT)")
    p.add_argument(
        "--data.data_dir",
        type=str | None,
        default=None,
        help="holds MNIST/raw (default: $MNIST_DATA_DIR, else data)",
    )
    p.add_argument("--check_images", type=int, default=10_000, help="test images to check on")
    args = p.parse_args(argv)
    fmt = args.format
    out = Path(args.out) if args.out else Path(args.ckpt_path).with_suffix(SUFFIX[fmt])
    try:
        if args.check_images < 1:
            raise ExportError("--check_images must be at least 1")
        x_test, _ = to_tensor(*load_arrays(args.data.data_dir or default_data_dir())[2:])
        start = time.perf_counter()
        report = export_checked(args.ckpt_path, fmt, out, x_test[: args.check_images])
    except (ExportError, CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.update(format=fmt, file=str(out), seconds=round(time.perf_counter() - start, 2))
    print(json.dumps(report))
    return 0
