"""One writer per run folder: filelock's OS lock, which a killed process never leaves stale,
beside the folder (``.version_N.lock``), so a new run's folder is made only by its first write."""

from contextlib import ExitStack
from pathlib import Path

from filelock import FileLock, Timeout

from lightning_mnist.errors import UserError


def try_lock(run_dir: Path, stack: ExitStack) -> bool:
    """Take ``run_dir``'s lock for as long as ``stack`` is open; False when another holds it.
    A command that ends without writing the folder removes the lock file (and a root it made)."""
    made_root = not run_dir.parent.exists()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir.parent / f".{run_dir.name}.lock", timeout=0)
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
