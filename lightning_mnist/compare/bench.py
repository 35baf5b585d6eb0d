"""Speed benchmark: Keras vs Lightning vs a plain PyTorch loop, per tutorial epoch.

``python -m lightning_mnist.compare.bench`` (or ``mnist-compare --bench``) runs, one after the other
and each with every core: the Keras tutorial (a child process), ``lightning-mnist fit`` (a
child process) and a plain PyTorch loop with the same kernels (in this process). Early
stopping is off (patience = epochs), so each runs exactly ``--trainer.max_epochs`` epochs.

An epoch is 188 training steps over 48,000 images plus validation over 12,000; both
frameworks time exactly that. Timings use the epochs after the first (warm-up and tracing).
The compute-bound floor counts the training FLOPs only (:func:`train_flops_per_sample`) at
the fp32 matmul rate this machine reaches (:func:`probe_flops`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser, Namespace

from lightning_mnist.compare.report import epoch_stats
from lightning_mnist.compare.runners import (
    CompareError,
    check_data,
    new_out_dir,
    run_keras,
    run_lightning,
)
from lightning_mnist.data.files import default_data_dir
from lightning_mnist.presets import preset_path

TRAIN_SAMPLES, VAL_SAMPLES, BATCH = 48_000, 12_000, 256
# One row each, run in this order: Keras as the tutorial runs it and with XLA, Lightning and a
# plain PyTorch loop each with PyTorch's stock ops and with the opt-in fused operator.
FRAMEWORKS = ("keras", "keras_xla", "lightning", "lightning_fused", "torch", "torch_fused")
NAMES = {
    "keras": "Keras (tutorial)",
    "keras_xla": "Keras + XLA (jit_compile=True)",
    "lightning": "Lightning, stock ops",
    "lightning_fused": "Lightning, fast-cpu preset (fused op, malloc setting)",
    "torch": "plain PyTorch loop, stock ops",
    "torch_fused": "plain PyTorch loop, fused op, malloc setting",
}


def train_flops_per_sample(filters: int = 32, hidden: int = 32, classes: int = 10) -> int:
    """Multiply-add FLOPs (2 per MAC) of one training sample of the tutorial's CNN.

    Forward: conv 26*26*32*9 MACs, dense 13*13*32*32 and 32*10. Backward: the conv needs only
    its weight gradient (its input is the image), the dense layers weight and input
    gradients, so 1x and 2x their forward. Pooling, ReLU, dropout and Adam are memory-bound
    and left out: about 1.82 MFLOP, 87 GFLOP per 48,000-image epoch.

    Args:
        filters: Convolution filters.
        hidden: Hidden dense units.
        classes: Output classes.
    """
    conv = 2 * 26 * 26 * filters * 3 * 3
    dense = 2 * (13 * 13 * filters * hidden + hidden * classes)
    return conv + dense + conv + 2 * dense


def forward_flops_per_sample(filters: int = 32, hidden: int = 32, classes: int = 10) -> int:
    """FLOPs of one forward pass (validation), about 0.74 MFLOP.

    Args:
        filters: Convolution filters.
        hidden: Hidden dense units.
        classes: Output classes.
    """
    return 2 * 26 * 26 * filters * 3 * 3 + 2 * (13 * 13 * filters * hidden + hidden * classes)


def probe_flops(device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """The fp32 FLOP/s of a square matmul on ``device``, repeated for about ``seconds``.

    Args:
        device: Where to multiply.
        size: The matrices' side (2048: 17 GFLOP a product).
        seconds: How long to keep multiplying after one warm-up product.
    """
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return 2 * size**3 * reps / elapsed


def plain_torch_epochs(
    data_dir: str,
    epochs: int,
    seed: int = 0,
    device: torch.device | None = None,
    conv_pool: str = "native",
    malloc: bool = False,
) -> dict[str, list[float]]:
    """Train the tutorial with a bare PyTorch loop and the port's kernels; per-epoch results.

    The same model (TutorialCNN, Keras init, pool before ReLU, channels_last), in-memory
    batches (TensorBatches), Adam(eps=1e-7), 188 steps of 256 and validation under
    inference_mode, with the epoch's loss and accuracy summed on the device as the system does.

    Args:
        data_dir: Holds MNIST/raw.
        epochs: Epochs to run.
        seed: torch.manual_seed and the shuffle seed.
        device: Where to train; None picks CUDA when present, as Lightning's "auto" does.
        conv_pool: The model's conv path, as ``--model.conv_pool``.
        malloc: Apply the opt-in allocator setting, as ``--tune_malloc true``.
    """
    from lightning_mnist.data.batches import TensorBatches
    from lightning_mnist.data.files import load_arrays
    from lightning_mnist.data.module import keras_split, to_tensor
    from lightning_mnist.model import TutorialCNN
    from lightning_mnist.ops.malloc import tune_malloc

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if malloc:
        tune_malloc()
    torch.manual_seed(seed)
    x_all, y_all = to_tensor(*load_arrays(data_dir)[:2])
    train, val = keras_split(len(x_all), 0.2)
    x, y = x_all[: train.stop].to(device), y_all[: train.stop].to(device)
    xv, yv = x_all[val.start :].to(device), y_all[val.start :].to(device)
    model = TutorialCNN(conv_pool=conv_pool).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    now = {"epoch": 0}  # the shuffle order is a function of (seed, epoch), as in the port
    train_batches = TensorBatches(
        x, y, BATCH, shuffle=True, seed=seed, epoch_fn=lambda: now["epoch"]
    )
    val_batches = TensorBatches(xv, yv, BATCH)
    out: dict[str, list[float]] = {"epoch_seconds": [], "val_accuracy": []}
    for epoch in range(epochs):
        now["epoch"] = epoch
        t0 = time.perf_counter()
        _train_epoch(model, opt, train_batches, device)
        val_correct = _count_correct(model, val_batches, device)
        out["val_accuracy"].append(val_correct.item() / len(yv))  # .item() syncs a GPU
        out["epoch_seconds"].append(time.perf_counter() - t0)
    return out


def _train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, batches, device) -> None:
    """One epoch of steps, with the loss and accuracy summed on the device as the system does."""
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
            correct += (
                model(xb.contiguous(memory_format=torch.channels_last)).argmax(1) == yb
            ).sum()
    return correct


def parse_args(argv: list[str] | None = None) -> Namespace:
    """Parse the benchmark's arguments.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    p = ArgumentParser(
        prog="mnist-compare --bench",
        description="Time tutorial epochs in Keras, Lightning and a plain PyTorch loop, one "
        "after the other; print a Markdown table and write bench.json.",
    )
    p.add_argument(
        "--trainer.max_epochs", "--epochs", dest="epochs", type=int, default=5, help="epochs each"
    )
    p.add_argument(
        "--data.data_dir",
        "--data-dir",
        dest="data_dir",
        help="holds MNIST/raw (IDX files), fetched and verified when missing; "
        "null: $MNIST_DATA_DIR, else data",
    )
    p.add_argument("--out", default="reports/bench", help="new folder")
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--seed_everything", "--seed", dest="seed", type=int, default=0)
    p.add_argument(
        "--probe_seconds", "--probe-seconds", type=float, default=1.0, help="matmul probe duration"
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the children's output")
    args = p.parse_args(argv)
    args.default_data_dir = args.data_dir is None
    args.data_dir = args.data_dir or default_data_dir()
    if args.epochs < 2:
        p.error("--trainer.max_epochs must be >= 2: the first epoch is warm-up and is not timed")
    args.frameworks = [f for f in FRAMEWORKS if f in args.frameworks]
    return args


def bench(args: Namespace) -> dict[str, Any]:
    """Run the benchmark, write bench.json and bench.md, and return the bench.json dict.

    Long because it is the benchmark's script read top to bottom: each row runs in turn
    (Keras, Keras with XLA, Lightning stock and fused, the plain loops), then the report.

    Args:
        args: From :func:`parse_args`.
    """
    check_data(args.data_dir, create=args.default_data_dir)
    out = new_out_dir(Path(args.out))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = 8192 if device.type == "cuda" else 2048  # big enough to reach the peak
    flops = probe_flops(device, size, args.probe_seconds)
    epoch_flop = TRAIN_SAMPLES * train_flops_per_sample()
    floor_s = epoch_flop / flops
    print(f"matmul probe: {flops / 1e9:.1f} GFLOP/s ({size}^2 fp32 on {device.type}); ", end="")
    print(f"floor {epoch_flop / 1e9:.1f} GFLOP / epoch = {floor_s:.3f} s")
    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    for fw in args.frameworks:
        r = run_row(fw, out, args, device)
        stats = epoch_stats(r["epoch_seconds"])
        results[fw] = {
            **stats,
            "epoch_seconds": r["epoch_seconds"],
            "samples_per_s": TRAIN_SAMPLES / stats["median"],
            "floor_share": floor_s / stats["median"],
            "device": r.get("device", f"{device.type} (torch {torch.get_num_threads()} threads)"),
        }
        print(f"{NAMES[fw]}: median {stats['median']:.3f} s/epoch", flush=True)
    report = {
        "epochs": args.epochs,
        "train_samples": TRAIN_SAMPLES,
        "val_samples": VAL_SAMPLES,
        "train_flops_per_sample": train_flops_per_sample(),
        "val_flops_per_sample": forward_flops_per_sample(),
        "epoch_train_gflop": epoch_flop / 1e9,
        "probe": {"device": device.type, "size": size, "gflops": flops / 1e9},
        "epoch_floor_s": floor_s,
        "frameworks": results,
        "ratio_lightning_keras": _ratio(results, "lightning", "keras"),
        "ratio_lightning_fused_keras": _ratio(results, "lightning_fused", "keras"),
        "ratio_lightning_fused_keras_xla": _ratio(results, "lightning_fused", "keras_xla"),
        "lightning_overhead_pct": _pct_over(results, "lightning", "torch"),
        "lightning_fused_overhead_pct": _pct_over(results, "lightning_fused", "torch_fused"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "command": " ".join(["python -m lightning_mnist.compare.bench", *args.argv]),
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(render_markdown(report))
    return report


def run_row(fw: str, out: Path, args: Namespace, device: torch.device) -> dict:
    """Run one benchmark row and return its per-epoch results."""
    # Patience = epochs: early stopping can never fire, every row runs all epochs.
    common = (args.data_dir, args.seed, args.epochs, args.epochs, args.quiet)
    fast_cpu = ("--config", str(preset_path("fast-cpu")))  # fused op + allocator setting
    if fw == "keras":
        return run_keras(out / fw, *common)
    if fw == "keras_xla":
        return run_keras(out / fw, *common, extra=("--jit_compile",))
    if fw in ("lightning", "lightning_fused"):
        return run_lightning(out / fw, *common, extra=fast_cpu if fw.endswith("fused") else ())
    fast = fw.endswith("fused")
    conv_pool = "fused" if fast else "native"
    print(f"[{fw}] plain loop ({conv_pool}), {args.epochs} epochs on {device.type}", flush=True)
    r = plain_torch_epochs(args.data_dir, args.epochs, args.seed, device, conv_pool, malloc=fast)
    print(f"[{fw}] val accuracy per epoch: {r['val_accuracy']}")
    return r


def _ratio(results: dict[str, Any], a: str, b: str) -> float | None:
    return results[a]["median"] / results[b]["median"] if {a, b} <= results.keys() else None


def _pct_over(results: dict[str, Any], a: str, b: str) -> float | None:
    ratio = _ratio(results, a, b)
    return None if ratio is None else 100 * (ratio - 1)


def render_markdown(report: dict[str, Any]) -> str:
    """The README's performance table and its notes, from a bench.json dict.

    Args:
        report: From :func:`bench`.
    """
    n = report["epochs"]
    timed = f"epochs 2–{n}" if n > 2 else "epoch 2"
    lines = [
        f"| {n} epochs, {timed} timed | s/epoch median | min | max | train samples/s "
        "| vs Keras | share of compute floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    keras = report["frameworks"].get("keras")
    for fw, r in report["frameworks"].items():
        vs = f"{r['median'] / keras['median']:.2f}" if keras else "–"
        lines.append(
            f"| {NAMES[fw]} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} "
            f"| {r['samples_per_s']:,.0f} | {vs} | {100 * r['floor_share']:.1f}% |"
        )
    p, m = report["probe"], report["machine"]
    notes = [
        "",
        "Ratios of median s/epoch: Lightning stock / Keras "
        f"{_fmt(report.get('ratio_lightning_keras'))}, Lightning fused / Keras "
        f"{_fmt(report.get('ratio_lightning_fused_keras'))}, Lightning fused / Keras + XLA "
        f"{_fmt(report.get('ratio_lightning_fused_keras_xla'))}. Lightning's overhead over the "
        "plain loop with the same ops: stock "
        f"{_fmt(report.get('lightning_overhead_pct'), '{:+.1f}%')}, fused "
        f"{_fmt(report.get('lightning_fused_overhead_pct'), '{:+.1f}%')}.",
        f"An epoch is 188 training steps over {report['train_samples']:,} images plus "
        f"validation over {report['val_samples']:,}; samples/s divides the training images by "
        "that whole time. Compute floor: "
        f"{report['train_flops_per_sample'] / 1e6:.2f} MFLOP per training sample, "
        f"{report['epoch_train_gflop']:.1f} GFLOP per epoch (validation adds "
        f"{report['val_samples'] * report['val_flops_per_sample'] / 1e9:.1f} GFLOP, not counted), "
        f"at {p['gflops']:.1f} GFLOP/s ({p['size']}² fp32 matmul on {p['device']}) = "
        f"{report['epoch_floor_s']:.3f} s.",
        f"Machine: {m['cpu_count']} cores ({m['processor']}), load average "
        f"{m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after. "
        f"Command: `{report['command']}`.",
    ]
    return "\n".join(lines + notes) + "\n"


def _fmt(value: float | None, spec: str = "{:.2f}") -> str:
    return "–" if value is None else spec.format(value)


def main(argv: list[str] | None = None) -> int:
    """``mnist-compare --bench`` (or ``python -m lightning_mnist.compare.bench``); returns the
    exit status.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        report = bench(args)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print()
    print(render_markdown(report), end="")
    print(f"\nWrote {Path(args.out) / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
