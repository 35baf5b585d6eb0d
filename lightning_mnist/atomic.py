"""Files written whole or not at all, and new names that never overwrite, for every writer."""

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

Data = bytes | bytearray | memoryview


def write_atomic(path: Path, data: Data) -> None:
    """Write ``data`` to ``path`` (parents created) through a temp file and a rename."""
    with staged({path: data}):
        pass


@contextmanager
def staged(files: dict[Path, Data]) -> Iterator[dict[Path, Path]]:
    """Write each destination's content to a temp file beside it and yield destination -> temp
    file. All are renamed into place when the block ends normally, else all are removed, so
    the block can check the temp files first and a failed check writes nothing."""
    umask = os.umask(0)  # mkstemp makes 0600; a plain file gets what the umask says
    os.umask(umask)
    temps: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~umask)
        yield dict(temps)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def next_free(path: Path) -> Path:
    """``path`` itself when free, else the first free ``<name>-2``, ``<name>-3``, ... beside it."""
    numbered = (path.with_name(f"{path.name}-{n}") for n in count(2))
    return path if not path.exists() else next(p for p in numbered if not p.exists())


def json_text(data: Any) -> str:
    """Strict JSON (a value that was not measured, or is not finite, is ``null``), indented."""
    return json.dumps(strict(data), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, data: Any) -> Path:
    """``json_text(data)`` into ``path``, atomically."""
    path = Path(path)
    write_atomic(path, json_text(data).encode())
    return path


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, which JSON writes as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value
