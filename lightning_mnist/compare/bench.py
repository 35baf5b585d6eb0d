"""``mnist-bench``: Keras vs Lightning vs a plain PyTorch loop, per tutorial epoch.

It runs, one after the other and each with every core: the Keras tutorial (a child process),
``lightning-mnist fit`` (a child process) and a plain PyTorch loop with the same kernels (in
this process, ``plain_loop``). Early stopping is off (patience = epochs), so each runs exactly
``--trainer.max_epochs`` epochs.

An epoch is the tutorial's training steps over 48,000 images plus validation over 12,000; both
frameworks time exactly that. Timings use the epochs after the first (warm-up and tracing).
The compute-bound floor counts the training FLOPs only (``train_flops_per_sample``) at the
fp32 matmul rate this machine reaches (``probe_flops``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from lightning_mnist.atomic import write_atomic
from lightning_mnist.compare import plain_loop, runners
from lightning_mnist.compare.command import run_command
from lightning_mnist.compare.markdown import md_table
from lightning_mnist.compare.report import epoch_stats
from lightning_mnist.compare.runners import CompareError
from lightning_mnist.data.catalogue import default_data_dir
from lightning_mnist.presets import preset_facts, preset_path

TRAIN_SAMPLES, VAL_SAMPLES = 48_000, 12_000
# One row each, run in this order: Keras as the tutorial runs it and with XLA, Lightning and a
# plain PyTorch loop each with PyTorch's stock ops and with the opt-in fused operator.
Row = Literal["keras", "keras_xla", "lightning", "lightning_fused", "torch", "torch_fused"]
ROWS: tuple[Row, ...] = get_args(Row)
NAMES = {
    "keras": "Keras (tutorial)",
    "keras_xla": "Keras + XLA (jit_compile=True)",
    "lightning": "Lightning, stock ops",
    "lightning_fused": "Lightning, fast-cpu preset (fused op, malloc setting)",
    "torch": "plain PyTorch loop, stock ops",
    "torch_fused": "plain PyTorch loop, fused op, malloc setting",
}


@dataclass(frozen=True)
class Trainer:
    """How long each row trains.

    Args:
        max_epochs: Epochs each row runs (at least 2: the first is warm-up and is not timed).
    """

    max_epochs: int = 5


@dataclass(frozen=True)
class Data:
    """The images every row trains on.

    Args:
        data_dir: Holds MNIST/raw (IDX files), fetched and verified when missing; null:
            $MNIST_DATA_DIR, else data.
    """

    data_dir: str | None = None


TRAINER, DATA = Trainer(), Data()  # the defaults


def mnist_bench(
    trainer: Trainer = TRAINER,
    data: Data = DATA,
    out: str = "reports/bench",
    frameworks: tuple[Row, ...] = ROWS,
    seed_everything: int = 0,
    probe_seconds: float = 1.0,
    quiet: bool = False,
    command: str = "mnist-bench",
) -> dict[str, Any]:
    """Time tutorial epochs in Keras, Lightning and a plain PyTorch loop, one after the other;
    print a Markdown table and write bench.json and bench.md.

    Args:
        trainer: How long each row trains.
        data: The images every row trains on.
        out: The new folder.
        frameworks: The rows to run, e.g. [keras,lightning]; they run in the table's order.
        seed_everything: The seed of every row.
        probe_seconds: How long the matmul probe multiplies.
        quiet: Do not echo the children's output.
        command: The command line, recorded in bench.json.
    """
    if trainer.max_epochs < 2:
        raise CompareError(
            "--trainer.max_epochs must be >= 2: the first epoch is warm-up and is not timed"
        )
    data_dir = data.data_dir or default_data_dir()
    runners.check_data(data_dir, create=data.data_dir is None)
    runners.refuse_existing(Path(out))
    Path(out).mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run = Run(Path(out), data_dir, trainer.max_epochs, seed_everything, quiet, device)
    report = {**bench(run, [r for r in ROWS if r in frameworks], probe_seconds), "command": command}
    write_atomic(run.out / "bench.json", (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(run.out / "bench.md", render_markdown(report).encode())
    print("\n" + render_markdown(report) + f"\nWrote {run.out / 'bench.json'}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Console script ``mnist-bench``; returns the exit status."""
    return run_command(mnist_bench, "mnist-bench", argv)


@dataclass(frozen=True)
class Run:
    """Where and how every row of one benchmark runs."""

    out: Path
    data_dir: str
    epochs: int
    seed: int
    quiet: bool
    device: torch.device


def bench(run: Run, rows: list[str], probe_seconds: float) -> dict[str, Any]:
    """Probe the machine, run each row (in the table's order) and return the bench.json dict
    without the command."""
    size = 8192 if run.device.type == "cuda" else 2048  # big enough to reach the peak
    flops = plain_loop.probe_flops(run.device, size, probe_seconds)
    epoch_flop = TRAIN_SAMPLES * plain_loop.train_flops_per_sample()
    floor_s = epoch_flop / flops
    print(f"matmul probe: {flops / 1e9:.1f} GFLOP/s ({size}^2 fp32 on {run.device.type}); ", end="")
    print(f"floor {epoch_flop / 1e9:.1f} GFLOP / epoch = {floor_s:.3f} s")
    load_before, results = os.getloadavg(), {}
    for fw in rows:
        results[fw] = _row_result(run_row(fw, run), floor_s, run.device)
        print(f"{NAMES[fw]}: median {results[fw]['median']:.3f} s/epoch", flush=True)
    return {
        "epochs": run.epochs,
        "train_samples": TRAIN_SAMPLES,
        "val_samples": VAL_SAMPLES,
        "train_flops_per_sample": plain_loop.train_flops_per_sample(),
        "val_flops_per_sample": plain_loop.forward_flops_per_sample(),
        "epoch_train_gflop": epoch_flop / 1e9,
        "probe": {"device": run.device.type, "size": size, "gflops": flops / 1e9},
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
    }


def _row_result(r: dict[str, Any], floor_s: float, device: torch.device) -> dict[str, Any]:
    stats = epoch_stats(r["epoch_seconds"])
    return {
        **stats,
        "epoch_seconds": r["epoch_seconds"],
        "samples_per_s": TRAIN_SAMPLES / stats["median"],
        "floor_share": floor_s / stats["median"],
        "device": r.get("device", f"{device.type} (torch {torch.get_num_threads()} threads)"),
    }


def run_row(fw: str, run: Run) -> dict[str, Any]:
    """Run one benchmark row and return its per-epoch results."""
    # Patience = epochs: early stopping can never fire, every row runs all epochs.
    common = (run.data_dir, run.seed, run.epochs, run.epochs, run.quiet)
    fast_cpu = ("--config", str(preset_path("fast-cpu")))  # fused op + allocator setting
    if fw == "keras":
        return runners.run_keras(run.out / fw, *common)
    if fw == "keras_xla":
        return runners.run_keras(run.out / fw, *common, extra=("--jit_compile", "true"))
    if fw in ("lightning", "lightning_fused"):
        extra = fast_cpu if fw.endswith("fused") else ()
        return runners.run_lightning(run.out / fw, *common, extra=extra)
    fast = fw.endswith("fused")
    conv_pool = "fused" if fast else "native"
    print(f"[{fw}] plain loop ({conv_pool}), {run.epochs} epochs on {run.device.type}", flush=True)
    r = plain_loop.plain_torch_epochs(
        run.data_dir, run.epochs, run.seed, run.device, conv_pool, malloc=fast
    )
    print(f"[{fw}] val accuracy per epoch: {r['val_accuracy']}")
    return r


def _ratio(results: dict[str, Any], a: str, b: str) -> float | None:
    return results[a]["median"] / results[b]["median"] if {a, b} <= results.keys() else None


def _pct_over(results: dict[str, Any], a: str, b: str) -> float | None:
    ratio = _ratio(results, a, b)
    return None if ratio is None else 100 * (ratio - 1)


def render_markdown(report: dict[str, Any]) -> str:
    """The README's performance table and its notes, from a bench.json dict."""
    n = report["epochs"]
    timed = f"epochs 2–{n}" if n > 2 else "epoch 2"
    keras = report["frameworks"].get("keras")
    table = md_table(
        (f"{n} epochs, {timed} timed", "s/epoch median", "min", "max", "train samples/s")
        + ("vs Keras", "share of compute floor"),
        (
            [NAMES[fw], f"{r['median']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}"]
            + [f"{r['samples_per_s']:,.0f}", _fmt(keras and r["median"] / keras["median"])]
            + [f"{100 * r['floor_share']:.1f}%"]
            for fw, r in report["frameworks"].items()
        ),
    )
    steps = -(-report["train_samples"] // preset_facts("tutorial")["batch_size"])  # ceil
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
        f"An epoch is {steps} training steps over {report['train_samples']:,} images plus "
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
    return table + "\n".join(notes) + "\n"


def _fmt(value: float | None, spec: str = "{:.2f}") -> str:
    return "–" if value is None else spec.format(value)


if __name__ == "__main__":
    raise SystemExit(main())
