"""User mistakes: one base class, shown by every command as one line with exit code 2.

Every error a user can make and fix derives from ``UserError`` (bad data, a bad checkpoint,
an operator that cannot be built, a bad export, a bad image, ...). Any other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

# A full disk, a quota, a read-only filesystem, a name too long: the user's to fix, one line.
DISK_ERRORS = {
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
    lines = [x.strip(" -") for x in str(e).splitlines() if x.strip(" -")]
    keys = ("No action for key", "Not a valid", "Unrecognized")
    useful = [x for x in lines if any(k in x for k in keys)]
    text = useful[0] if useful else (lines[-1] if lines else type(e).__name__)
    return text if len(lines) < 2 or text == lines[0] else f"{lines[0].rstrip(':')}: {text}"


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
        if e.errno not in DISK_ERRORS:
            raise
        message = f"{str(e.filename or 'writing')[:200]}: {e.strerror}; {DISK_ERRORS[e.errno]}"
    except SystemExit as e:  # the argument parser has already printed its error line
        return e.code if isinstance(e.code, int) else 1
    print(f"error: {message}", file=sys.stderr)
    return 2
