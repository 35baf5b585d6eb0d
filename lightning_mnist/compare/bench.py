"""``mnist-bench``: seconds per tutorial epoch of Keras (as is, with XLA), ``lightning-mnist fit``
(tutorial, fast-cpu presets) and a plain PyTorch loop (stock ops, fused op). Each row is a child
process with every core and the same ``--tune_malloc``; the rows run in turns (A B C ... A B C
...), so that drift in the machine's speed shows as spread between turns, not as a ratio."""

import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from lightning_mnist.atomic import write_atomic, write_json
from lightning_mnist.compare import plain_loop, runners, step_probe
from lightning_mnist.compare.bench_table import NAMES, render_markdown
from lightning_mnist.compare.command import run_command
from lightning_mnist.compare.report import epoch_stats
from lightning_mnist.compare.runners import CompareError
from lightning_mnist.data.catalogue import default_data_dir
from lightning_mnist.presets import preset_path

TRAIN_SAMPLES, VAL_SAMPLES = 48_000, 12_000
Row = Literal["keras", "keras_xla", "lightning", "lightning_fused", "torch", "torch_fused"]
ROWS: tuple[Row, ...] = get_args(Row)
assert set(NAMES) == set(ROWS)


@dataclass(frozen=True)
class Trainer:
    """How long each row trains.

    Args:
        max_epochs: Epochs each row runs (at least 2: the first is warm-up and is not timed).
    """

    max_epochs: int = 4


@dataclass(frozen=True)
class Data:
    """The images every row trains on.

    Args:
        data_dir: Holds MNIST/raw, fetched (verified) if missing; null: $MNIST_DATA_DIR, else data.
    """

    data_dir: str | None = None


TRAINER, DATA = Trainer(), Data()  # the defaults


def mnist_bench(
    trainer: Trainer = TRAINER,
    data: Data = DATA,
    out: str = "reports/bench",
    frameworks: tuple[Row, ...] = ROWS,
    repeats: int = 3,
    tune_malloc: bool = True,
    step_probe_steps: int = 600,
    seed_everything: int = 0,
    probe_seconds: float = 1.0,
    quiet: bool = False,
    command: str = "mnist-bench",
) -> dict[str, Any]:
    """Time tutorial epochs in Keras, Lightning and a plain PyTorch loop, in interleaved turns;
    print a Markdown table and write bench.json and bench.md.

    Args:
        trainer: How long each row trains.
        data: The images every row trains on.
        out: The new folder.
        frameworks: The rows to run, e.g. [keras,lightning]; they run in the table's order.
        repeats: Turns over the rows (at least 1; 3 or more show the spread).
        tune_malloc: The glibc allocator setting for every row (each side's --tune_malloc).
        step_probe_steps: Steps of each per-step probe variant; 0 skips the probe.
        seed_everything: The seed of every row.
        probe_seconds: How long the matmul probe multiplies.
        quiet: Do not echo the children's output.
        command: The command line, recorded in bench.json.
    """
    if trainer.max_epochs < 2 or repeats < 1:
        raise CompareError(
            "--trainer.max_epochs must be >= 2 (the first epoch is warm-up and is not timed) "
            "and --repeats >= 1"
        )
    data_dir = data.data_dir or default_data_dir()
    runners.check_data(data_dir, create=data.data_dir is None)
    runners.refuse_existing(Path(out))
    Path(out).mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run = Run(Path(out), data_dir, trainer.max_epochs, seed_everything, quiet, device, tune_malloc)
    rows = [r for r in ROWS if r in frameworks]
    report = {**bench(run, rows, repeats, probe_seconds, step_probe_steps), "command": command}
    write_json(run.out / "bench.json", report)
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
    tune_malloc: bool = True


def bench(
    run: Run, rows: list[str], repeats: int, probe_seconds: float, probe_steps: int = 0
) -> dict[str, Any]:
    """Probe the machine, run ``repeats`` turns of the rows and the step probe; bench.json."""
    size = 8192 if run.device.type == "cuda" else 2048  # big enough to reach the peak
    flops = plain_loop.probe_flops(run.device, size, probe_seconds)
    train_flops = plain_loop.train_flops_per_sample()
    floor_s = TRAIN_SAMPLES * train_flops / flops
    print(f"matmul probe: {flops / 1e9:.1f} GFLOP/s ({size}^2 fp32); floor {floor_s:.3f} s/epoch")
    load_before = os.getloadavg()
    epochs: dict[str, list[list[float]]] = {fw: [] for fw in rows}
    for turn in range(repeats):
        for fw in rows:
            epochs[fw].append(run_row(fw, run, turn)["epoch_seconds"])
            print(f"{NAMES[fw]} (turn {turn + 1}/{repeats}): {epochs[fw][-1]}", flush=True)
    results = {fw: row_result(e, floor_s) for fw, e in epochs.items()}
    probe = step_probe.probe(probe_steps, repeats) if probe_steps else None
    return {
        "train_samples": TRAIN_SAMPLES,
        "val_samples": VAL_SAMPLES,
        "train_flops_per_sample": train_flops,
        "val_flops_per_sample": plain_loop.forward_flops_per_sample(),
        "epoch_train_gflop": TRAIN_SAMPLES * train_flops / 1e9,
        "epochs": run.epochs,
        "repeats": repeats,
        "tune_malloc": run.tune_malloc,
        "probe": {"device": run.device.type, "size": size, "gflops": flops / 1e9},
        "epoch_floor_s": floor_s,
        "frameworks": results,
        "ratios": _ratios(results),
        "step_probe": probe,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    }


def row_result(runs: list[list[float]], floor_s: float) -> dict[str, Any]:
    """The median s/epoch of each turn (epochs after the first), their median, min and max."""
    per_turn = [epoch_stats(e)["median"] for e in runs]
    median = statistics.median(per_turn)
    return {
        "median": median,
        "min": min(per_turn),
        "max": max(per_turn),
        "turn_medians": per_turn,
        "epoch_seconds": runs,
        "samples_per_s": TRAIN_SAMPLES / median,
        "floor_share": floor_s / median,
    }


def run_row(fw: str, run: Run, turn: int) -> dict[str, Any]:
    """Run one row once, in a child process, into ``<out>/<row>/turn<N>``; its results."""
    where = run.out / fw / f"turn{turn + 1}"
    # Patience = epochs: early stopping can never fire, every row runs all epochs.
    common = (run.data_dir, run.seed, run.epochs, run.epochs, run.quiet)
    malloc = ("--tune_malloc", str(run.tune_malloc).lower())
    accel = "gpu" if run.device.type == "cuda" else "cpu"
    if fw.startswith("keras"):
        xla = ("--jit_compile", "true") if fw == "keras_xla" else ()
        return runners.run_keras(where, *common, extra=(*malloc, *xla), accelerator=accel)
    if fw.startswith("lightning"):
        fast_cpu = ("--config", str(preset_path("fast-cpu"))) if fw.endswith("fused") else ()
        return runners.run_lightning(where, *common, extra=(*fast_cpu, *malloc), accelerator=accel)
    conv_pool = "fused" if fw.endswith("fused") else "native"
    args = (run.data_dir, run.epochs, run.seed, conv_pool, run.tune_malloc, accel)
    return plain_loop.run_child(where, *args)


def _ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Median s/epoch ratios (null where a row did not run)."""
    pairs = {
        "lightning_keras": ("lightning", "keras"),
        "lightning_fused_keras": ("lightning_fused", "keras"),
        "lightning_fused_keras_xla": ("lightning_fused", "keras_xla"),
        "lightning_torch": ("lightning", "torch"),
        "lightning_fused_torch_fused": ("lightning_fused", "torch_fused"),
    }
    return {
        k: results[a]["median"] / results[b]["median"] if {a, b} <= results.keys() else None
        for k, (a, b) in pairs.items()
    }


if __name__ == "__main__":
    raise SystemExit(main())
