"""The benchmark's own measures: the plain PyTorch loop Lightning's overhead is read against (a
child process per run, as every row), the tutorial's FLOPs and this machine's fp32 matmul rate."""

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_mnist.presets import preset_facts

# Multiply-add FLOPs (2 per MAC) of one image through the tutorial's CNN: the conv (26x26
# outputs of 32 filters, 3x3 each) and the dense layers (13*13*32 -> 32 -> 10).
CONV_FLOPS = 2 * 26 * 26 * 32 * 3 * 3
DENSE_FLOPS = 2 * (13 * 13 * 32 * 32 + 32 * 10)


def forward_flops_per_sample() -> int:
    """FLOPs of one forward pass (validation), about 0.74 MFLOP."""
    return CONV_FLOPS + DENSE_FLOPS


def train_flops_per_sample() -> int:
    """FLOPs of one training sample: about 1.82 MFLOP, 87 GFLOP per 48,000-image epoch."""
    # Backward: the conv needs only its weight gradient (its input is the image), the dense
    # layers weight and input gradients. Pooling, ReLU, dropout and Adam are memory-bound.
    return CONV_FLOPS + DENSE_FLOPS + CONV_FLOPS + 2 * DENSE_FLOPS


def probe_flops(device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """The fp32 FLOP/s of a ``size``² matmul on ``device``, repeated for about ``seconds``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    reps, t0, elapsed = 0, time.perf_counter(), 0.0
    while reps == 0 or elapsed < seconds:
        a @ b
        reps += 1
        sync()
        elapsed = time.perf_counter() - t0
    return 2 * size**3 * reps / elapsed


def plain_torch_epochs(
    data_dir: str,
    epochs: int,
    seed: int = 0,
    device: torch.device | None = None,
    conv_pool: str = "native",
    malloc: bool = False,
) -> dict[str, list[float]]:
    """Train the tutorial in a bare PyTorch loop with the port's model, batches and Adam; each
    epoch's seconds and validation accuracy. ``device`` None: CUDA when present (as Lightning's
    "auto"); ``conv_pool``: ``--model.conv_pool``; ``malloc``: ``--tune_malloc``."""
    from lightning_mnist.data.batches import TensorBatches
    from lightning_mnist.data.module import keras_split, to_tensor
    from lightning_mnist.data.verify import load_arrays
    from lightning_mnist.network import build_network
    from lightning_mnist.ops.malloc import tune_malloc

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if malloc:
        tune_malloc()
    torch.manual_seed(seed)
    x_all, y_all = to_tensor(*load_arrays(data_dir)[:2])
    train, val = keras_split(len(x_all), 0.2)
    x, y = x_all[: train.stop].to(device), y_all[: train.stop].to(device)
    xv, yv = x_all[val.start :].to(device), y_all[val.start :].to(device)
    model = build_network(conv_pool=conv_pool).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    now = {"epoch": 0}  # the shuffle order is a function of (seed, epoch), as in the port
    batch = preset_facts("tutorial")["batch_size"]
    batches = TensorBatches(x, y, batch, shuffle=True, seed=seed, epoch_fn=lambda: now["epoch"])
    val_batches = TensorBatches(xv, yv, batch)
    out: dict[str, list[float]] = {"epoch_seconds": [], "val_accuracy": []}
    for epoch in range(epochs):
        now["epoch"] = epoch
        t0 = time.perf_counter()
        _train_epoch(model, opt, batches, device)
        val_correct = _count_correct(model, val_batches, device)
        out["val_accuracy"].append(val_correct.item() / len(yv))  # .item() syncs a GPU
        out["epoch_seconds"].append(time.perf_counter() - t0)
    return out


def _train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, batches, device) -> None:
    """One epoch of steps; the loss and accuracy are summed on the device, as the system does."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for xb, yb in batches:
        logits = model(xb.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(yb)
        correct += (logits.argmax(1) == yb).sum()


def _count_correct(model: torch.nn.Module, batches, device) -> torch.Tensor:
    """Correct predictions over ``batches`` under inference mode, as a device tensor."""
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    with torch.inference_mode():
        for xb, yb in batches:
            logits = model(xb.contiguous(memory_format=torch.channels_last))
            correct += (logits.argmax(1) == yb).sum()
    return correct


def run_child(
    run: Path, data_dir: str, epochs: int, seed: int, conv_pool: str, malloc: bool, accel: str
) -> dict[str, list[float]]:
    """``plain_torch_epochs`` in a child process on ``accel`` (``cpu`` hides the GPUs), its output
    in ``run/run.log``; its per-epoch results (``run/results.json``)."""
    from lightning_mnist.compare.runners import PYTHON, stream

    cmd = [*PYTHON, "-m", "lightning_mnist.compare.plain_loop", str(run), data_dir]
    cmd += [str(epochs), str(seed), conv_pool, str(malloc).lower()]
    stream(cmd, f"[plain {conv_pool}] ", run / "run.log", quiet=True, accelerator=accel)
    return json.loads((run / "results.json").read_text())


def main(argv: list[str]) -> int:
    """``RUN DATA_DIR EPOCHS SEED CONV_POOL TUNE_MALLOC``: train, write ``RUN/results.json``."""
    from lightning_mnist.atomic import write_json

    run, data_dir, epochs, seed, conv_pool, malloc = argv
    r = plain_torch_epochs(data_dir, int(epochs), int(seed), None, conv_pool, malloc == "true")
    print(f"val accuracy per epoch: {r['val_accuracy']}")
    write_json(Path(run) / "results.json", r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
