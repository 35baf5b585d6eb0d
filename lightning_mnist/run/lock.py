"""One writer per run folder: an OS file lock beside it (``.version_N.lock``).

The lock is filelock's: the operating system holds it for the process and releases it when
the process ends however it ends, so a killed run never leaves a stale lock behind. It sits
beside the run folder, not inside, so that a new run's folder does not exist before its
first write.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from filelock import FileLock, Timeout

from lightning_mnist.errors import UserError


def lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.lock"


def try_lock(run_dir: Path, stack: ExitStack) -> bool:
    """Take ``run_dir``'s lock for as long as ``stack`` is open; False when another holds it.

    When the command ends without having written the run folder, the lock file (and a run
    root this made, left empty) is removed again, so a refused or failed command leaves
    nothing behind.
    """
    made_root = not run_dir.parent.exists()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(run_dir), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    stack.callback(_release, lock, run_dir, made_root)
    return True


def _release(lock: FileLock, run_dir: Path, made_root: bool) -> None:
    if not run_dir.exists():  # removed while still held: no one can take it in between
        Path(lock.lock_file).unlink(missing_ok=True)
    lock.release()
    root = run_dir.parent
    if made_root and root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def lock_or_refuse(run_dir: Path, stack: ExitStack) -> None:
    """Take ``run_dir``'s lock, or refuse in one line when another process writes it."""
    if not try_lock(run_dir, stack):
        raise UserError(
            f"run folder {run_dir} is being written by another process; wait for it to end "
            "or choose another --trainer.default_root_dir"
        )
