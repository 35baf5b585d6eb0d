"""A typed, documented function as a console command: jsonargparse builds the options from its
signature and ``Args:`` docstring; a user error ends as one line with exit status 2."""

import inspect
import shlex
import sys
from collections.abc import Callable
from typing import Any

from jsonargparse import ArgumentParser

from lightning_mnist.errors import report_user_errors


def run_command(command: Callable[..., Any], prog: str, argv: list[str] | None = None) -> int:
    """Parse ``argv`` (None: ``sys.argv``), call ``command`` with it and ``command=`` the command
    line; return the exit status (an interrupt: 130, with how to ``--resume`` where it can)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    about = (inspect.getdoc(command) or "").split("\n\nArgs:")[0]
    parser = ArgumentParser(prog=prog, description=about, exit_on_error=False, allow_abbrev=False)
    parser.add_function_arguments(command, as_group=False, skip={"command"}, sub_configs=True)

    def run() -> int:
        options = parser.instantiate(parser.parse_args(argv))
        try:
            command(**options, command=shlex.join([prog, *argv]))
        except KeyboardInterrupt:
            hint = f"; continue with: {prog} --resume true --out {options.out}"
            print("\ninterrupted" + (hint if "resume" in options else ""), file=sys.stderr)
            return 130
        return 0

    return report_user_errors(run, ())
