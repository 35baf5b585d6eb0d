"""``lightning-mnist export``: a checkpoint as ONNX, TorchScript or an ExportedProgram on stock
PyTorch ops, whatever conv path trained it. The file is run by its own runtime on the test
images and kept only when its classes and softmax match the model's."""

import json
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import auto_cli

from lightning_mnist.atomic import staged
from lightning_mnist.checkpoints import load_classifier
from lightning_mnist.data.catalogue import DataError
from lightning_mnist.data.cli import DataOptions
from lightning_mnist.data.module import to_tensor
from lightning_mnist.data.verify import load_arrays
from lightning_mnist.errors import UserError, one_line, report_user_errors
from lightning_mnist.network import build_network

Format = Literal["onnx", "torchscript", "exported-program"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
RANDOM_IMAGES = 1_000  # --check_images 0: inputs that need no dataset
SOFTMAX_ATOL = 1e-5  # the bar for an export: the same as for weights moved between frameworks


class ExportError(UserError):
    """The export cannot be made or does not match the model."""


def export(model: torch.nn.Module, fmt: Format, out: Path) -> None:
    """Write ``model`` to ``out`` in ``fmt``, with a dynamic batch dimension."""
    example, dynamic = torch.zeros(2, 1, 28, 28), {"x": {0: torch.export.Dim("batch")}}
    if fmt == "onnx":
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise ExportError(
                "ONNX export needs the [export] extra: pip install '.[export]'"
            ) from None
        torch.onnx.export(
            model, (example,), dynamo=True, dynamic_shapes=dynamic, verbose=False
        ).save(str(out))
    elif fmt == "torchscript":
        print(
            "note: PyTorch deprecates TorchScript; --format exported-program is its successor",
            file=sys.stderr,
        )
        with _quiet_jit():
            torch.jit.save(torch.jit.trace(model, example), str(out))
    else:
        program = torch.export.export(model, (example,), dynamic_shapes=dynamic)
        with out.open("wb") as f:  # a file object: torch warns on a path not ending in .pt2
            torch.export.save(program, f)


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """torch.jit's four deprecation notices, said once, in the project's own line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def run_exported(fmt: Format, path: Path, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Logits of the exported file on ``x``, computed by the runtime that loads it."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(part: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: part.numpy()})[0])

    elif fmt == "torchscript":
        with _quiet_jit():
            run = torch.jit.load(str(path))
    else:
        with path.open("rb") as f:  # the staged temp file's name does not end in .pt2
            run = torch.export.load(f).module()
    with torch.no_grad():
        return torch.cat([run(part) for part in x.split(batch)])


def export_checked(ckpt_path: str | Path, fmt: Format, out: Path, x: torch.Tensor) -> dict:
    """Export, compare with the model on ``x`` and move into ``out`` only when they agree."""
    if out.exists():
        raise ExportError(f"{out} already exists; choose a new --out")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    system = load_classifier(ckpt_path)  # its network, rebuilt on PyTorch's own ops (NCHW)
    h = system.hparams
    model = build_network(h.arch, h.filters, h.hidden, h.dropout, h.num_classes, False, h.convs)
    model.load_state_dict(system.model.state_dict())
    model.eval()
    with staged({out: b""}) as temps:  # renamed into place only when the block ends normally
        export(model, fmt, temps[out])
        with torch.no_grad():
            ref = model(x).softmax(1)
        got = run_exported(fmt, temps[out], x).softmax(1)
        equal, diff = int((got.argmax(1) == ref.argmax(1)).sum()), float((got - ref).abs().max())
        if equal != len(x) or not diff <= SOFTMAX_ATOL:  # NaN fails too
            raise ExportError(
                f"the {fmt} export disagrees with the model: {equal}/{len(x)} equal "
                f"predictions, max |Δ softmax| {diff:.2e}"
            )
    return {"images": len(x), "equal_predictions": equal, "max_abs_softmax_diff": diff}


def export_command(
    ckpt_path: str,
    data: DataOptions,
    format: Format | None = None,
    out: str | None = None,
    check_images: int = 10_000,
) -> int:
    """Export a trained checkpoint on stock PyTorch ops, checked against the model.

    Args:
        ckpt_path: A checkpoint written by fit.
        data: Where the test images are (their files are checked as on every load).
        format: What to write; null: what --out's suffix says (.onnx, .pt, .pt2), else onnx.
        out: New file (default: beside ckpt_path, with the format's suffix).
        check_images: Test images to check on; 0: 1,000 seeded random images instead.
    """
    if check_images < 0:
        raise ExportError("--check_images must be 0 (random images) or more")
    suffix = Path(out).suffix if out else ""
    format = format or next((f for f, s in SUFFIX.items() if s == suffix), "onnx")
    if suffix in SUFFIX.values() and suffix != SUFFIX[format]:
        raise ExportError(f"--out {out} has the suffix of another format than --format {format}")
    path = Path(out) if out else Path(ckpt_path).with_suffix(SUFFIX[format])
    x = check_inputs(data, check_images)
    start = time.perf_counter()
    report = export_checked(ckpt_path, format, path, x)
    report.update(inputs="test images" if check_images else "random images", format=format)
    report.update(file=str(path), seconds=round(time.perf_counter() - start, 2))
    print(json.dumps(report))
    return 0


def check_inputs(data: DataOptions, check_images: int) -> torch.Tensor:
    """The first ``check_images`` test images, or 1,000 seeded uniform ones in [0, 1]."""
    if check_images == 0:
        return torch.rand(RANDOM_IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    try:
        x_test, _ = to_tensor(*load_arrays(data.data_dir, data.dataset)[2:])
    except DataError as e:
        raise ExportError(f"{one_line(e)} (--check_images 0 checks on random images)") from e
    return x_test[:check_images]


def main(argv: list[str] | None = None) -> int:
    """``lightning-mnist export --ckpt_path CKPT --format onnx|torchscript|exported-program``."""
    prog = "lightning-mnist export"
    run = partial(
        auto_cli, export_command, argv, as_positional=False, exit_on_error=False, allow_abbrev=False
    )
    return report_user_errors(lambda: run(prog=prog), (), f" (see `{prog} --help`)")
