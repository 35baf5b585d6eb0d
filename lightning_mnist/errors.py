"""User mistakes: one base class, ``UserError``, that every command shows as one line with exit
code 2. Any other exception is a bug and keeps its traceback."""

import errno
import sys
from collections.abc import Callable
from pathlib import Path

from lightning_mnist.parser_errors import parser_message

# A full disk, a quota, a read-only filesystem, a name too long, a file or folder this user
# may not read or write: the user's to fix, one line.
OS_ERRORS = {
    **dict.fromkeys((errno.EACCES, errno.EPERM), "give this user access or use another path"),
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT), "free space or write elsewhere"),
    errno.EROFS: "write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter path",
}


class UserError(Exception):
    """A mistake in what the user asked for (a path, a file, a value, a combination)."""


class ConfigError(UserError, ValueError):
    """A configuration value out of its range (raised by the classes the config builds)."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    return (str(e).strip() or type(e).__name__).splitlines()[0]


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
