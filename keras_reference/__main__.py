"""``python -m keras_reference``: run the tutorial and write a run folder like the port's.

The folder gets ``results.json`` (the shared schema), ``best_model.h5``, ``accuracy.png`` and
``loss.png``. User mistakes (bad data, an --out that already holds results) end with one line
on stderr and exit status 2; nothing already written is touched. Options ``lightning-mnist``
also has carry its names; the preset's epochs, patience and batch size come from its YAML.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonargparse import auto_cli
from jsonargparse.typing import NonNegativeInt, PositiveInt

import keras_reference  # noqa: F401  (pins KERAS_BACKEND before keras loads)
from keras_reference.data import DataError
from lightning_mnist.ops.malloc import tune_malloc as tune_process_malloc  # ctypes: no torch
from lightning_mnist.presets import preset_facts  # stdlib + pyyaml: no torch


class UsageError(Exception):
    """Options that cannot run together; the message is one line."""


@dataclass(frozen=True)
class Data:
    """The images.

    Args:
        data_dir: Data root holding MNIST/raw (IDX files); when they are absent,
            keras.datasets.<dataset>.load_data() downloads them; null: $MNIST_DATA_DIR, else
            data.
        dataset: MNIST or Fashion-MNIST.
    """

    data_dir: str | None = None
    dataset: Literal["mnist", "fashion_mnist"] = "mnist"


@dataclass(frozen=True)
class Trainer:
    """How long ``fit`` runs.

    Args:
        max_epochs: Max epochs; null: the preset's.
    """

    max_epochs: PositiveInt | None = None


@dataclass(frozen=True)
class EarlyStopping:
    """EarlyStopping on val_loss.

    Args:
        patience: Epochs without improvement; null: the preset's.
    """

    patience: NonNegativeInt | None = None


DATA, TRAINER, EARLY_STOPPING = Data(), Trainer(), EarlyStopping()  # the defaults


def keras_reference_run(
    out: str,
    data: Data = DATA,
    preset: Literal["tutorial", "improved"] = "tutorial",
    trainer: Trainer = TRAINER,
    early_stopping: EarlyStopping = EARLY_STOPPING,
    seed_everything: int = 0,
    deterministic: bool = False,
    jit_compile: bool = False,
    verbose: Literal["auto", 0, 1, 2] = "auto",
    shuffle: Literal["keras", "seeded"] = "keras",
    save_initial_weights: bool = False,
    tune_malloc: bool = True,
) -> dict[str, Any]:
    """Run the Keras MNIST CNN tutorial; write results.json, the best model and plots to --out.

    Args:
        out: Run folder; must not hold a results.json.
        data: The images.
        preset: The tutorial, or the improved network and recipe (keras_reference/improved.py).
        trainer: How long fit runs.
        early_stopping: EarlyStopping on val_loss.
        seed_everything: keras.utils.set_random_seed.
        deterministic: Also call tf.config.experimental.enable_op_determinism() (TensorFlow
            backend).
        jit_compile: Compile the model with XLA (jit_compile=True); the tutorial does not.
        verbose: Keras fit/evaluate verbosity; 2 prints one line per epoch.
        shuffle: The training order: keras (fit's own shuffle, the tutorial's) or seeded
            (each epoch NumPy's default_rng([seed, epoch]).permutation of the training rows,
            the order lightning-mnist trains in; mnist-compare --paired).
        save_initial_weights: Write the weights before training to
            <out>/initial.weights.h5, for lightning-mnist fit --init_weights
            (mnist-compare --paired).
        tune_malloc: Keep freed memory in the process (glibc mallopt, set before TensorFlow
            loads), as ``lightning-mnist --tune_malloc`` does, so both frameworks run under
            the same process settings; results.json records whether it applied.
    """
    if deterministic and os.environ["KERAS_BACKEND"] != "tensorflow":
        backend = os.environ["KERAS_BACKEND"]
        raise UsageError(f"--deterministic needs KERAS_BACKEND=tensorflow, not {backend}")
    malloc_applied = tune_malloc and tune_process_malloc()  # before TensorFlow allocates
    # Imported here so that --help and argument errors do not wait for TensorFlow to load.
    from keras_reference.results import check_out_dir, write_results
    from keras_reference.tutorial import run_tutorial

    existed = Path(out).exists()
    try:
        results = run_tutorial(
            data_dir=data.data_dir or os.environ.get("MNIST_DATA_DIR") or "data",
            out=check_out_dir(out),
            **_preset_options(preset, trainer, early_stopping),
            seed=seed_everything,
            dataset=data.dataset,
            deterministic=deterministic,
            verbose=verbose,
            jit_compile=True if jit_compile else "auto",
            preset=preset,
            shuffle=shuffle,
            save_initial_weights=save_initial_weights,
        )
    except (DataError, FileExistsError):
        if not existed and Path(out).is_dir() and not any(Path(out).iterdir()):
            Path(out).rmdir()  # a run that failed before writing anything leaves no folder
        raise
    results["tune_malloc"] = malloc_applied
    results["path"] = str(write_results(Path(out), results))  # after the write: not in it
    return results


def _preset_options(preset: str, trainer: Trainer, early_stopping: EarlyStopping) -> dict:
    """``run_tutorial``'s epochs, patience and batch size: the options given, else the preset
    YAML's (the one ``lightning-mnist`` trains with)."""
    facts, patience = preset_facts(preset), early_stopping.patience
    return {
        "epochs": trainer.max_epochs or facts["max_epochs"],
        "patience": facts["patience"] if patience is None else patience,
        "batch_size": facts["batch_size"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the tutorial from the command line and return the exit status.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    try:
        auto_cli(
            keras_reference_run,
            args=argv,
            as_positional=False,
            allow_abbrev=False,
            prog="python -m keras_reference",
        )
    except (DataError, FileExistsError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
