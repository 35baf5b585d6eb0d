"""The tutorial's ``plot_curve``: one metric, train vs val, per epoch, saved as PNG."""

import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lightning_mnist.atomic import write_atomic  # noqa: E402


def plot_curve(train, val, string1: str, location: str, path: Path, title: str = "") -> Path:
    """Plot ``train`` and ``val`` per epoch as the tutorial does, and save it to ``path``."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    epochs = range(1, len(train) + 1)
    size = 3 if len(train) > 1 else 6
    for values, label in ((train, "train"), (val, "val")):
        if np.isfinite(np.asarray(values, dtype=float)).any():  # none without validation
            ax.plot(epochs, values, marker="o", markersize=size, label=label)
    heading = f"model {string1}" + (f" ({title})" if title else "")
    ax.set(title=heading, ylabel=string1, xlabel="epoch", xlim=(0.5, len(train) + 0.5))
    # Whole epochs, and a one-epoch run shows its point.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc=location)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    write_atomic(path, png.getvalue())  # no half picture
    return path


def plot_history(history: dict[str, list[float]], out_dir: Path, title: str = "") -> list[Path]:
    """``accuracy.png`` and ``loss.png`` from a Keras-style history dict."""
    out_dir = Path(out_dir)
    curves = (("accuracy", "lower right"), ("loss", "upper right"))
    return [
        plot_curve(history[k], history[f"val_{k}"], k, where, out_dir / f"{k}.png", title)
        for k, where in curves
    ]
