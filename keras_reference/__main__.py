"""``python -m keras_reference``: run the tutorial and write a run folder like the port's.

The folder gets ``results.json`` (the shared schema), ``best_model.h5``, ``accuracy.png`` and
``loss.png``. User mistakes (bad data, an --out that already holds results) end with one line
on stderr and exit status 2; nothing already written is touched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

import keras_reference  # noqa: F401  (pins KERAS_BACKEND before keras loads)
from keras_reference.data import FOLDERS, DataError


def parse_args(argv: list[str] | None = None) -> Namespace:
    """Parse the command line; every default is the tutorial's.

    Options ``lightning-mnist`` also has take its names (``--data.data_dir``,
    ``--data.dataset``, ``--trainer.max_epochs``, ``--early_stopping.patience``,
    ``--seed_everything``); the short names are aliases. Long because it is one
    ``add_argument`` per option, each with its help text.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    p = ArgumentParser(
        prog="python -m keras_reference",
        description="Run the Keras MNIST CNN tutorial and write results.json, the best model "
        "and the learning curves into --out.",
    )
    p.add_argument(
        "--data.data_dir",
        "--data-dir",
        dest="data_dir",
        default=os.environ.get("MNIST_DATA_DIR") or "data",
        help="data root holding MNIST/raw (IDX files); when they are absent, "
        "keras.datasets.<dataset>.load_data() downloads them "
        "(default: $MNIST_DATA_DIR, else data)",
    )
    p.add_argument(
        "--data.dataset", "--dataset", dest="dataset", choices=sorted(FOLDERS), default="mnist"
    )
    p.add_argument(
        "--preset",
        choices=("tutorial", "improved"),
        default="tutorial",
        help="the tutorial, or the improved network and recipe (keras_reference/improved.py)",
    )
    p.add_argument(
        "--trainer.max_epochs",
        "--epochs",
        dest="epochs",
        type=int | None,
        help="max epochs; null: the preset's (tutorial 100, improved 15)",
    )
    p.add_argument(
        "--early_stopping.patience",
        "--patience",
        dest="patience",
        type=int | None,
        help="EarlyStopping patience; null: the preset's (tutorial 2, improved 4)",
    )
    p.add_argument(
        "--seed_everything",
        "--seed",
        dest="seed",
        type=int,
        default=0,
        help="keras.utils.set_random_seed",
    )
    p.add_argument("--out", required=True, help="run folder; must not hold a results.json")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="also call tf.config.experimental.enable_op_determinism() (TensorFlow backend)",
    )
    p.add_argument(
        "--jit_compile",
        "--jit-compile",
        action="store_true",
        help="compile the model with XLA (jit_compile=True); the tutorial does not",
    )
    p.add_argument(
        "--verbose",
        choices=["auto", "0", "1", "2"],
        default="auto",
        help="Keras fit/evaluate verbosity; 2 prints one line per epoch",
    )
    args = p.parse_args(argv)
    improved = args.preset == "improved"
    args.epochs = args.epochs if args.epochs is not None else (15 if improved else 100)
    args.patience = args.patience if args.patience is not None else (4 if improved else 2)
    if args.epochs < 1 or args.patience < 0:
        p.error("--trainer.max_epochs must be >= 1 and --early_stopping.patience >= 0")
    args.verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the tutorial from the command line and return the exit status.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    args = parse_args(argv)
    if args.deterministic and os.environ["KERAS_BACKEND"] != "tensorflow":
        backend = os.environ["KERAS_BACKEND"]
        return _fail(f"--deterministic needs KERAS_BACKEND=tensorflow, not {backend}")

    # Imported here so that --help and argument errors do not wait for TensorFlow to load.
    from keras_reference.results import check_out_dir, write_results
    from keras_reference.tutorial import run_tutorial

    existed = Path(args.out).exists()
    try:
        out = check_out_dir(args.out)
        results = run_tutorial(
            data_dir=args.data_dir,
            out=out,
            epochs=args.epochs,
            patience=args.patience,
            seed=args.seed,
            dataset=args.dataset,
            deterministic=args.deterministic,
            verbose=args.verbose,
            jit_compile=True if args.jit_compile else "auto",
            preset=args.preset,
        )
    except (DataError, FileExistsError) as e:
        out_dir = Path(args.out)
        if not existed and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a run that failed before writing anything leaves no folder
        return _fail(str(e))
    path = write_results(out, results)
    print(
        f"wrote {path}: {results['epochs_run']} epochs, best epoch {results['best_epoch']}, "
        f"test accuracy {results['test_accuracy']:.4f}"
    )
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
