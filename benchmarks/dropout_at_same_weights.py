"""The two frameworks' training-mode (dropout on) loss and accuracy at the same weights.

``python benchmarks/dropout_at_same_weights.py MODEL [--repeats 30] [--images 2048]``

Loads a trained model (a Keras run's ``best_model.h5`` or a Lightning run's ``.ckpt``), moves
its weights into the other framework's network, and
evaluates both with dropout on, each drawing its own masks, on the first training images:
a difference here would be in how dropout or the metric works, not in the training path.
Not a test: it prints means and standard errors.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401  (before tensorflow, or torch segfaults: tests/parity/conftest.py)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lightning_mnist.data.catalogue import DEFAULT_DATA_DIR  # noqa: E402
from lightning_mnist.data.verify import load_arrays  # noqa: E402
from lightning_mnist.interop.keras_weights import (  # noqa: E402
    keras_layout_state,
    load_keras_state,
    read_keras_weights,
)
from lightning_mnist.model import TutorialCNN  # noqa: E402


def mean_se(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.4f}"


def both_models(path: str) -> tuple[keras.Model, torch.nn.Module]:
    """The same weights in both frameworks' tutorial networks."""
    if path.endswith(".ckpt"):
        from keras_reference.model import build_model
        from lightning_mnist.checkpoints import load_classifier

        t_model, k_model = load_classifier(path).model, build_model()
        for name, arrays in keras_layout_state(t_model).items():
            k_model.get_layer(name).set_weights(list(arrays))
        return k_model, t_model
    t_model = TutorialCNN()
    load_keras_state(t_model, read_keras_weights(path))
    return keras.models.load_model(path), t_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--data_dir", default=os.environ.get("MNIST_DATA_DIR", DEFAULT_DATA_DIR))
    a = p.parse_args()
    x_train, y_train, *_ = load_arrays(a.data_dir, "mnist")
    x = (x_train[: a.images].astype("float32") / 255)[..., None]
    y = y_train[: a.images]
    k_model, t_model = both_models(a.model)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).long()
    onehot = keras.utils.to_categorical(y, 10)
    runs: dict[str, list[float]] = {k: [] for k in ("k_loss", "t_loss", "k_acc", "t_acc")}
    t_model.train()
    for _ in range(a.repeats):
        prob = k_model(x, training=True).numpy()
        loss = keras.losses.categorical_crossentropy(onehot, prob).numpy().mean()
        runs["k_loss"].append(float(loss))
        runs["k_acc"].append(float((prob.argmax(1) == y).mean()))
        with torch.no_grad():
            logits = t_model(xt)
        runs["t_loss"].append(float(F.cross_entropy(logits, yt)))
        runs["t_acc"].append(float((logits.argmax(1) == yt).float().mean()))
    print(f"{a.images} training images, {a.repeats} dropout draws each (mean ± standard error)")
    print(f"loss      Keras {mean_se(runs['k_loss'])}  torch {mean_se(runs['t_loss'])}")
    print(f"accuracy  Keras {mean_se(runs['k_acc'])}  torch {mean_se(runs['t_acc'])}")


if __name__ == "__main__":
    main()
