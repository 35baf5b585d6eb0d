"""``lockstep.png``: |Δloss| and max |Δw| against the step, log scale, both pairs."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PAIRS = (
    ("cross", "Keras vs torch", "tab:red"),
    ("yard", "torch vs torch: 2 vs 1 threads", "tab:blue"),
    ("order", "torch vs torch: batch rows reversed", "tab:green"),
)


def _panel(ax, steps: dict[str, list], key: str, ylabel: str) -> None:
    x = np.arange(1, len(steps["epoch"]) + 1)
    for pair, label, color in PAIRS:
        y = np.asarray(steps[f"{key}_{pair}"], dtype=float)
        # Exact zeros (bit-identical values) have no place on a log axis: they are gaps.
        ax.semilogy(x, np.where(y > 0, y, np.nan), color=color, lw=1, label=label)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    for boundary in np.flatnonzero(np.diff(steps["epoch"])) + 1.5:
        ax.axvline(boundary, color="gray", ls="--", lw=0.8)


def lockstep_png(record: dict[str, Any]) -> bytes:
    """The figure as PNG bytes: relative |Δloss| above, max |Δw| below, against the step."""
    steps = record["steps"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    _panel(top, steps, "rel_dloss", "relative |Δloss|")
    _panel(bottom, steps, "max_dw", "max |Δw| (all weights)")
    top.legend(loc="upper left")
    top.set_title("Lockstep: same start, batches and dropout masks (gaps: exactly equal)")
    bottom.set_xlabel("training step (batch 256)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
