"""The tutorial's ``plot_curve``: one metric, train vs val, per epoch, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_curve(train, val, string1: str, location: str, path: Path, title: str = "") -> Path:
    """Plot ``train`` and ``val`` per epoch as the tutorial does, and save it to ``path``."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, marker="o", markersize=3, label="train")
    ax.plot(epochs, val, marker="o", markersize=3, label="val")
    ax.set_title(f"model {string1}" + (f" ({title})" if title else ""))
    ax.set_ylabel(string1)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc=location)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_history(history: dict[str, list[float]], out_dir: Path, title: str = "") -> list[Path]:
    """``accuracy.png`` and ``loss.png`` from a Keras-style history dict."""
    out_dir = Path(out_dir)
    return [
        plot_curve(
            history["accuracy"],
            history["val_accuracy"],
            "accuracy",
            "lower right",
            out_dir / "accuracy.png",
            title,
        ),
        plot_curve(
            history["loss"], history["val_loss"], "loss", "upper right", out_dir / "loss.png", title
        ),
    ]
