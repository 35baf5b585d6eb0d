"""The mistakes a user can make and fix, as exception types the CLI shows as one line.

Only these (and the data and checkpoint errors, which subclass or sit beside them) become
``error: ...`` with exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for (a path, a run to resume, a combination)."""


class ConfigError(UserError, ValueError):
    """A configuration value out of its range (raised by the classes the config builds)."""
