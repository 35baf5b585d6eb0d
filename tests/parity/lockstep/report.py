"""The report folder: ``lockstep.json`` (strict JSON), ``report.md`` and ``lockstep.png``.

Everything here reads the record ``run.lockstep`` returned; nothing retrains.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from lightning_mnist.atomic import staged

from .plot import lockstep_png

CHECKPOINTS = (1, 10, 20, 40, 60, 100, 140, 188, 282, 376)  # steps shown in the table


def environment() -> dict[str, Any]:
    """Package versions and the machine, as every results file records them."""
    import keras
    import tensorflow as tf
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    versions |= {"torch": torch.__version__, "tensorflow": tf.__version__}
    versions["keras"] = keras.__version__
    return {
        "versions": versions,
        "device": f"cpu ({platform.processor() or platform.machine()})",
        "logical_cpus": os.cpu_count(),
    }


def strict(value: Any) -> Any:
    """The value with every non-finite float replaced by None, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def step_rows(steps: dict[str, list]) -> list[str]:
    """Markdown rows: the losses and both pairs' gaps at the checkpoint steps."""
    rows = []
    for n in (n for n in CHECKPOINTS if n <= len(steps["epoch"])):
        i = n - 1
        rows.append(
            f"| {n} | {steps['loss_keras'][i]:.6f} | {steps['loss_torch'][i]:.6f} | "
            f"{steps['rel_dloss_cross'][i]:.1e} | {steps['rel_dloss_yard'][i]:.1e} | "
            f"{steps['rel_dloss_order'][i]:.1e} | {steps['max_dw_cross'][i]:.1e} | "
            f"{steps['max_dw_yard'][i]:.1e} | {steps['max_dw_order'][i]:.1e} |"
        )
    return rows


def epoch_rows(epochs: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: each epoch's test accuracies, agreements and largest |Δw|."""
    rows = []
    for e in epochs:
        acc = e["test_accuracy"]
        rows.append(
            f"| {e['epoch']} | {100 * acc['keras']:.2f} | {100 * acc['torch']:.2f} | "
            f"{100 * acc['yardstick']:.2f} | {100 * acc['reordered']:.2f} | "
            f"{100 * e['agreement_cross']:.2f} | {100 * e['agreement_yard']:.2f} | "
            f"{100 * e['agreement_order']:.2f} | {max(e['max_dw_cross'].values()):.1e} | "
            f"{max(e['max_dw_yard'].values()):.1e} | {max(e['max_dw_order'].values()):.1e} |"
        )
    return rows


def bar_rows(bars: dict[str, Any]) -> list[str]:
    """Markdown rows: each bar, its measured value and the verdict."""
    first = bars["first_steps"]
    verdict = lambda b: "met" if b["passed"] else "**not met**"  # noqa: E731
    rows = [
        f"| first {first['steps']} steps, max relative \\|Δloss\\| | ≤ {first['bar']:.0e} | "
        f"{first['max_rel_dloss_cross']:.1e} (torch threads {first['max_rel_dloss_yard']:.1e}, "
        f"reversed batches {first['max_rel_dloss_order']:.1e}) | {verdict(first)} |"
    ]
    for drift in bars["drift_ratio"]:
        rows.append(
            f"| epoch 1, Keras–torch \\|Δloss\\| / {drift['yardstick']}, worst step | ≤ "
            f"{drift['bar']} | {drift['max_ratio']:.0f} at step {drift['max_ratio_step']} (median "
            f"{drift['median_ratio']:.1f}; {drift['steps_over_bar']} of {drift['steps']} steps "
            f"over) | {verdict(drift)} |"
        )
    for agree in bars["agreement"]:
        rows.append(
            f"| after epoch {agree['epoch']}, test agreement short of {agree['yardstick']} | ≤ "
            f"{agree['bar_pp']} pp | {agree['shortfall_pp']:.2f} pp "
            f"({100 * agree['agreement_cross']:.2f}% vs {100 * agree['agreement_yard']:.2f}%) | "
            f"{verdict(agree)} |"
        )
    return rows


def report_md(record: dict[str, Any], bars: dict[str, Any]) -> str:
    """The short report: the bars, then the steps and epochs behind them."""
    s, env = record["settings"], record["environment"]
    lines = [
        "# Lockstep: Keras and torch, step for step",
        "",
        f"Seed {s['seed']}, {s['epochs']} epochs of the tutorial (batch 256 on "
        f"{s['train_rows']:,} images), the same start, batches and dropout masks. Two "
        f"yardsticks run torch against itself: {s['threads']} threads against "
        f'{s["yardstick_threads"]} ("threads"), and each batch\'s rows in reverse order '
        '("reversed"), which adds the same terms of every batch sum in another order. '
        "Written by `python -m tests.parity.lockstep`; numbers from `lockstep.json`, plot "
        "`lockstep.png`; docs/parity.md #14 reads them.",
        "",
        "| bar | bound | measured | verdict |",
        "|---|---|---|---|",
        *bar_rows(bars),
        "",
        "Where bar 2 is not met, the factor is mostly a head start that Adam's first step "
        "gives the cross-framework pair (every gradient summed in another order), not a faster "
        "growth: docs/parity.md #14.",
        "",
        "| step | loss Keras | loss torch | rel. \\|Δloss\\| Keras–torch | threads | "
        "reversed | max \\|Δw\\| Keras–torch | threads | reversed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *step_rows(record["steps"]),
        "",
        "| epoch | test % Keras | test % torch | threads | reversed | agree % Keras–torch | "
        "threads | reversed | max \\|Δw\\| Keras–torch | threads | reversed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *epoch_rows(record["epochs"]),
        "",
        f"Wall time {record['wall_s']:.0f} s on {env['device']}, {env['logical_cpus']} logical "
        f"CPUs; {', '.join(f'{k} {v}' for k, v in env['versions'].items())}.",
    ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, record: dict[str, Any], bars: dict[str, Any]) -> None:
    """Write the three files into ``out`` together (each complete or not at all)."""
    record = {**record, "bars": bars}
    text = json.dumps(strict(record), indent=1, allow_nan=False) + "\n"
    files = {
        out / "lockstep.json": text.encode(),
        out / "report.md": report_md(record, bars).encode(),
        out / "lockstep.png": lockstep_png(record),
    }
    with staged(files):
        pass
