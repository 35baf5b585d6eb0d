"""``python -m tests.parity.lockstep``: run the lockstep and write its report folder.

Run from the repository root. The folder gets ``lockstep.json``, ``report.md`` and
``lockstep.png``; a bad data dir ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from jsonargparse import auto_cli

from lightning_mnist.data.catalogue import DataError, default_data_dir


def lockstep(
    out: str = "reports/lockstep",
    epochs: int = 2,
    seed: int = 0,
    data_dir: str | None = None,
    threads: int = 2,
    yardstick_threads: int = 1,
) -> None:
    """Train the tutorial network in Keras and in torch in lockstep and write the report.

    Args:
        out: Report folder (created; its three files are replaced).
        epochs: Epochs of 188 steps (batch 256 on 48,000 images).
        seed: Seed of Keras's initial weights, the batch order and the dropout masks.
        data_dir: Data root holding MNIST/raw; fetched and verified when missing;
            null: $MNIST_DATA_DIR, else data.
        threads: torch threads of the torch side compared with Keras.
        yardstick_threads: torch threads of the yardstick run (torch against itself).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's oneDNN/CUDA info lines
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401  before TensorFlow, which breaks a later import of it
    from lightning_mnist.data.fetch import prepare

    from .plan import load_mnist

    root = Path(data_dir or default_data_dir())
    prepare(root)
    data = load_mnist(root)
    from .bars import bars
    from .report import environment, write_report
    from .run import lockstep as run_lockstep

    record = run_lockstep(data, seed, epochs, None, threads, yardstick_threads)
    record["environment"] = environment()
    write_report(Path(out), record, bars(record))
    print(f"wrote {out}/lockstep.json, report.md, lockstep.png")


def main(args: list[str] | None = None) -> None:
    try:
        auto_cli(lockstep, args=args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
