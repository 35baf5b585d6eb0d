"""User mistakes: one base class, shown by every command as one line with exit code 2.

Every error a user can make and fix derives from ``UserError`` (bad data, a bad checkpoint,
an operator that cannot be built, a bad export, a bad image, ...). Any other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path

from lightning_mnist.parser_errors import union_message

# A full disk, a quota, a read-only filesystem, a name too long, a file or folder this user
# may not read or write: the user's to fix, one line.
OS_ERRORS = {
    errno.EACCES: "give this user access or use another path",
    errno.EPERM: "give this user access or use another path",
    errno.ENOSPC: "free space or write elsewhere",
    errno.EDQUOT: "free space or write elsewhere",
    errno.EROFS: "write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter path",
}


class UserError(Exception):
    """A mistake in what the user asked for (a path, a file, a value, a combination)."""


class ConfigError(UserError, ValueError):
    """A configuration value out of its range (raised by the classes the config builds)."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def parser_message(e: BaseException) -> str:
    """The useful line of a jsonargparse error (its first line is often only a preamble)."""
    if (union := union_message(str(e))) is not None:
        return union
    lines = [x.strip(" -") for x in str(e).splitlines() if x.strip(" -")]
    keys = ("No action for key", "Not a valid", "Unrecognized")
    useful = [x for x in lines if any(k in x for k in keys)]
    text = useful[0] if useful else (lines[-1] if lines else type(e).__name__)
    return text if len(lines) < 2 or text == lines[0] else f"{lines[0].rstrip(':')}: {text}"


def os_error_message(e: OSError) -> str | None:
    """The line for a system error the user can mend (None for any other: a bug)."""
    name = str(e.filename or "writing")[:200]
    if e.errno in OS_ERRORS:
        return f"{name}: {e.strerror}; {OS_ERRORS[e.errno]}"
    folder = Path(e.filename).parent if isinstance(e.filename, str) else None
    if e.errno == errno.ENOENT and folder is not None and not folder.exists():
        return one_line(folder_removed(folder))
    return None


def folder_removed(folder: Path) -> UserError:
    """The error for a folder that disappeared while a command wrote into it."""
    return UserError(f"{str(folder)[:200]}: the folder was removed while this command used it")


def report_user_errors(run: Callable[[], int], user_errors: tuple, help_hint: str = "") -> int:
    """Run a command; a user error becomes ``error: <one line>`` on stderr and exit code 2."""
    from jsonargparse import ArgumentError

    try:
        return run()
    except (UserError, *user_errors) as e:
        message = one_line(e)
    except ArgumentError as e:
        message = parser_message(e) + help_hint
    except OSError as e:
        message = os_error_message(e)
        if message is None:
            raise
    except SystemExit as e:  # the argument parser has already printed its error line
        return e.code if isinstance(e.code, int) else 1
    print(f"error: {message}", file=sys.stderr)
    return 2
