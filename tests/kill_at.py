"""``python tests/kill_at.py WINDOW ARGS...``: run ``lightning-mnist ARGS`` and SIGKILL this
process at one moment after training, as a power cut or the OOM killer would:

- ``test``: in the third batch of the final test;
- ``results``: when results.json is written to its temp file but not yet renamed into place.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from lightning_mnist.cli import main
from lightning_mnist.system import MNISTClassifier


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_in_test() -> None:
    step = MNISTClassifier.test_step

    def test_step(self, batch, batch_idx: int) -> None:
        if batch_idx == 2:
            die()
        step(self, batch, batch_idx)

    MNISTClassifier.test_step = test_step


def kill_at_results() -> None:
    rename = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "results.json":
            die()
        return rename(src, dst, *args, **kwargs)

    os.replace = replace


if __name__ == "__main__":
    {"test": kill_in_test, "results": kill_at_results}[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))
