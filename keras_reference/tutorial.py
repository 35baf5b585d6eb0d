"""The tutorial's code, in the tutorial's order and with its names (``docs/tutorial.md``).

Steps 1-10 below are the tutorial's; lines marked ``# not in the tutorial`` are additions: a
seed, timers and the measurements of ``measure.py``, a run folder instead of the working
directory, ``savefig`` instead of ``plt.show()`` and the returned results. Step 1 reads the
same IDX files as the port and calls the tutorial's ``mnist.load_data()`` only when they are
absent. The tutorial also fits once without callbacks before the fit with callbacks; this
runs only the fit with callbacks, whose best model it evaluates.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_reference import improved, measure
from keras_reference.data import load_data
from keras_reference.model import build_model
from keras_reference.order import seeded_dataset
from keras_reference.results import device_name, versions
from lightning_mnist.run import plots  # matplotlib only (PNG files, no window): no torch
from lightning_mnist.run.history import HISTORY_KEYS, best_epoch  # stdlib only: no torch

# Keras 3 still saves and loads `.h5` (its legacy HDF5 format), so the tutorial's file name
# stays. Keras logs a deprecation warning on every save (every better epoch); it is shown once.
BEST_MODEL_NAME = "best_model.h5"
INITIAL_WEIGHTS_NAME = "initial.weights.h5"  # --save_initial_weights: the untrained weights
VALIDATION_SPLIT = 0.2  # the tutorial's validation_split
NUM_CLASSES = 10  # the tutorial's num_classes


def plot_curve(
    train: list[float], val: list[float], string1: str, location: str, out: Path
) -> None:
    """The tutorial's plot_curve: ``train`` and ``val`` per epoch, titled with ``string1``
    (e.g. ``"Accuracy"``), the legend at ``location``; it saves ``<string1 lower-cased>.png``
    into the run folder ``out`` (not in the tutorial, which calls ``plt.show()``). Drawn by the
    port's own plot_curve, so the two frameworks' pictures read alike and a one-epoch run
    shows its point."""
    plots.plot_curve(train, val, string1, location, out / f"{string1.lower()}.png")


def run_tutorial(
    data_dir: str | Path | None,
    out: Path,
    epochs: int,
    patience: int,
    batch_size: int,
    seed: int = 0,
    dataset: str = "mnist",
    deterministic: bool = False,
    verbose: str | int = "auto",
    jit_compile: bool | str = "auto",
    preset: str = "tutorial",
    shuffle: str = "keras",
    save_initial_weights: bool = False,
) -> dict[str, Any]:
    """Run the tutorial and return its results (the shared results.json schema).

    The tutorial's steps in its order, so that it reads side by side with it: 1-4 (load,
    reshape, one-hot, scale) in :func:`prepare_data`, 5-6 (build, compile) here, 7 (fit with
    the two callbacks) in :func:`fit_with_callbacks`, 8-10 (plot, load the best model,
    evaluate) here. Each addition is marked ``# not in the tutorial``.

    Args:
        data_dir: The data root holding ``MNIST/raw``; None uses ``keras.datasets`` directly.
        out: An existing run folder for the best model and the two plots.
        epochs: ``fit``'s epochs (the tutorial's 100; early stopping ends the run sooner).
        patience: ``EarlyStopping``'s patience in epochs.
        batch_size: ``fit``'s batch size (the tutorial's 256).
        seed: Seeds Python, NumPy and the backend through ``keras.utils.set_random_seed``.
        dataset: ``"mnist"`` or ``"fashion_mnist"``.
        deterministic: Also make TF's ops deterministic (slower; TensorFlow backend only).
        verbose: ``fit``/``evaluate``'s verbose: ``"auto"``, 0, 1 or 2.
        jit_compile: ``compile``'s XLA switch (the tutorial's ``"auto"``, or ``True``).
        preset: ``tutorial``, or ``improved``: the network, augmentation and learning-rate
            schedule of ``improved.py`` in the same steps.
        shuffle: ``keras`` (``fit``'s own shuffle, the tutorial's) or ``seeded`` (each epoch
            in ``order.epoch_order(seed, epoch)``, the port's order).
        save_initial_weights: Write the untrained weights to ``INITIAL_WEIGHTS_NAME`` in
            ``out`` before fitting.
    """
    keras.utils.set_random_seed(seed)  # not in the tutorial: Python, NumPy and backend seeds
    if deterministic:  # not in the tutorial
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    _log_h5_warning_once()
    times = {"data_started_at": time.time()}  # not in the tutorial
    (x_train, y_train), (x_test, y_test) = prepare_data(data_dir, dataset, times)  # 1.-4.

    # 5.-6. The Sequential CNN, compiled with categorical_crossentropy, adam and accuracy
    # (model.py; it notes the Keras 3 names of the tutorial's Keras 1/2 imports).
    if preset == "improved":  # not in the tutorial
        model = improved.build_improved_model(NUM_CLASSES, jit_compile=jit_compile)
    else:
        model = build_model(NUM_CLASSES, jit_compile)
    if save_initial_weights:  # not in the tutorial: the start a paired port run loads
        model.save_weights(out / INITIAL_WEIGHTS_NAME)

    # 7. Fit, keeping the best model by val_loss and stopping early.
    train = fit_data(x_train, y_train, batch_size, shuffle, seed)
    history, timer = fit_with_callbacks(model, train, out, epochs, patience, verbose, preset, times)

    # 8. The learning curves.
    plot_curve(
        history.history["accuracy"], history.history["val_accuracy"], "Accuracy", "lower right", out
    )
    plot_curve(history.history["loss"], history.history["val_loss"], "Loss", "upper right", out)

    # 9. Load the best model; the epochs after it, where val_loss rose again, are dropped.
    model = keras.models.load_model(out / BEST_MODEL_NAME)

    # 10. Evaluate it on the test set.
    test_t0 = time.perf_counter()  # not in the tutorial
    loss, acc = model.evaluate(x_test, y_test, verbose=verbose)
    times["test"] = time.perf_counter() - test_t0  # not in the tutorial
    print("Testing Accuracy: ", round(acc * 100, 2))
    print("Testing Loss: ", round(loss, 2))

    facts = {"dataset": dataset, "seed": seed, "jit_compile": jit_compile, "preset": preset}
    facts |= {"shuffle": shuffle, "initial_weights": save_initial_weights}
    return _results(model, history, timer, (x_test, y_test, loss, acc), out, times, facts)


def prepare_data(data_dir: str | Path | None, dataset: str, times: dict[str, float]) -> tuple:
    """Steps 1-4: the train and test images, channels-last and scaled, with one-hot labels;
    ``times["data"]`` gets the seconds they took (not in the tutorial)."""
    data_t0 = time.perf_counter()  # not in the tutorial
    # 1. Load MNIST: 60,000 train and 10,000 test images, uint8 28x28 (from the IDX files, or
    # the tutorial's `mnist.load_data()` when they are absent).
    (x_train, y_train), (x_test, y_test) = load_data(data_dir, dataset)
    # 2. Add the channel axis (Keras is channels-last): (60000, 28, 28) -> (60000, 28, 28, 1).
    x_train = np.expand_dims(x_train, axis=-1)
    x_test = np.expand_dims(x_test, axis=-1)
    # 3. One-hot labels, as categorical_crossentropy expects.
    y_train = keras.utils.to_categorical(y_train, NUM_CLASSES)
    y_test = keras.utils.to_categorical(y_test, NUM_CLASSES)
    # 4. Scale the pixels to [0, 1].
    x_train = x_train.astype("float32")
    x_test = x_test.astype("float32")
    x_train /= 255
    x_test /= 255
    times["data"] = time.perf_counter() - data_t0  # not in the tutorial
    return (x_train, y_train), (x_test, y_test)


def fit_data(x_train: Any, y_train: Any, batch_size: int, shuffle: str, seed: int) -> dict:
    """``fit``'s data arguments: the tutorial's arrays with ``validation_split``, or (not in the
    tutorial) for ``shuffle="seeded"`` the same split made here, the training rows fed in
    the seeded order (``order.py``) and the validation rows as ``validation_data``."""
    if shuffle == "keras":
        common = {"x": x_train, "y": y_train, "validation_split": VALIDATION_SPLIT}
        return {**common, "batch_size": batch_size}
    split_at = int(len(x_train) * (1.0 - VALIDATION_SPLIT))  # Keras's train_validation_split
    dataset, steps = seeded_dataset(x_train[:split_at], y_train[:split_at], batch_size, seed)
    return {
        "x": dataset,
        "shuffle": False,  # the dataset is in the seeded order already (Keras would warn)
        "steps_per_epoch": steps,
        "validation_data": (x_train[split_at:], y_train[split_at:]),
        "validation_batch_size": batch_size,
    }


def fit_with_callbacks(
    model: Any, train: dict[str, Any], out: Path, epochs: int, patience: int,
    verbose: str | int, preset: str, times: dict[str, float],
) -> tuple[Any, measure.PhaseTimer]:  # fmt: skip
    """Step 7: the history and the timer of the fit; ``times["fit"]`` gets its seconds.
    ``train``: :func:`fit_data`'s arguments."""
    # 7. Fit: the last 20% of x_train validates (Keras slices before shuffling), batches of 256
    # (the preset's batch size); keep the best model by val_loss and stop when val_loss has not
    # improved for `patience`.
    best_model_path = out / BEST_MODEL_NAME  # not in the tutorial: in the run folder
    timer = measure.PhaseTimer()  # not in the tutorial
    my_callbacks = [
        timer,  # first, so it times train + val without the checkpoint save
        keras.callbacks.ModelCheckpoint(filepath=str(best_model_path), save_best_only=True),
        timer.after_checkpoint,  # not in the tutorial: times the save just before it
        keras.callbacks.EarlyStopping(patience=patience),
    ]
    if preset == "improved":  # not in the tutorial
        my_callbacks.append(keras.callbacks.LearningRateScheduler(improved.schedule))
    start = time.perf_counter()
    history = model.fit(
        **train,  # x_train, y_train, validation_split=0.2, batch_size=256 (fit_data)
        epochs=epochs,
        callbacks=my_callbacks,
        verbose=verbose,
    )
    times["fit"] = time.perf_counter() - start
    return history, timer


def _results(
    model: Any, history: Any, timer: measure.PhaseTimer, test: tuple, out: Path,
    times: dict[str, float], facts: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Not in the tutorial: the shared results.json schema, with the best model's test
    predictions (written into ``out``), latency and memory. ``test``: x_test, y_test and the
    test loss and accuracy; ``facts``: dataset, seed, jit_compile and preset."""
    x_test, y_test, loss, acc = test
    hist = {k: [float(v) for v in history.history[k]] for k in HISTORY_KEYS}
    predicted = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
    measure.write_predictions(out / measure.PREDICTIONS_CSV, y_test.argmax(axis=1), predicted)
    epochs_total, val_total = sum(timer.epoch_seconds), sum(timer.val_seconds)
    timing = {
        "data_started_at": times["data_started_at"],
        "data": times["data"],
        "train": epochs_total - val_total,
        "validation": val_total,
        "checkpoint": timer.checkpoint_seconds,
        "fit_other": times["fit"] - epochs_total - timer.checkpoint_seconds,
        "test": times["test"],
    }
    return {
        "framework": "keras",
        "dataset": facts["dataset"],
        "seed": facts["seed"],
        "epochs_run": len(hist["loss"]),
        "best_epoch": best_epoch(hist["val_loss"]),
        "history": hist,
        "epoch_seconds": timer.epoch_seconds,
        "fit_seconds": times["fit"],
        "test_loss": float(loss),
        "test_accuracy": float(acc),
        "test_samples": len(x_test),
        "params": model.count_params(),
        "best_model": BEST_MODEL_NAME,
        "jit_compile": facts["jit_compile"],
        "preset": facts["preset"],
        "shuffle": facts["shuffle"],
        "initial_weights": INITIAL_WEIGHTS_NAME if facts["initial_weights"] else None,
        "device": device_name(),
        "versions": versions(),
        "timing": timing,
        "test_predictions": measure.PREDICTIONS_CSV,
        "inference_ms": measure.latency_ms(model, x_test),
        "peak_rss_mb": measure.peak_rss_mb(),
        "environment": measure.environment(),
    }


class _OnceFilter(logging.Filter):
    """Drops Keras's "HDF5 is legacy" warning after its first appearance."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "saving your model as an HDF5 file" not in record.getMessage():
            return True
        first, self.seen = not self.seen, True
        return first


def _log_h5_warning_once() -> None:
    """Let Keras's "HDF5 is legacy" warning through once instead of on every better epoch."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _OnceFilter) for f in absl_logger.filters):
        absl_logger.addFilter(_OnceFilter())
