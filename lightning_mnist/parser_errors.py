"""The one useful line of a jsonargparse error.

jsonargparse explains an option that takes several types (a Union: ``--trainer.precision``,
``--trainer.logger``, ``--optimizer``) as a tree: one branch per type tried, each with its own
reason, and a class's own arguments nested inside. The line keeps the option, the value
given and the reason: the innermost one, or the types the option would take.
"""

from __future__ import annotations

import re

KEY = re.compile(r'Parser key "([^"]+)":')
CLASS = re.compile(r"Problem with given class_path '([^']+)':")
GIVEN = re.compile(r"^\s*Given value: (.*)$", re.M)
EXPECTED = re.compile(r"^\s*- Expected a (.*)$", re.M)
# What the parser tries on every value (a file to read, nothing at all): no reason of its own.
TRIED_ON_ALL = ("NoneType", "path but", "collections.abc.Iterable")
DIRECT = ("No action for key", "Not a valid", "Unrecognized", "arguments are required")


def _expected(kind: str) -> str:
    """``typing.Literal[1, 'a']`` -> ``one of 1, 'a'``; ``<class 'float'>`` -> ``a float``."""
    if kind.startswith("typing.Literal["):
        return "one of " + kind[len("typing.Literal[") : -1]
    if kind.startswith("dot import path string"):
        return "a class name or class path"
    named = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", kind)
    if named is None:
        return kind
    return f"{'an' if named.group(1)[0] in 'aeiou' else 'a'} {named.group(1)}"


def _innermost(text: str) -> str:
    """The block of the last option named: a class's argument is nested in its option's."""
    starts = [m.start() for m in KEY.finditer(text)]
    return text[starts[-1] :] if starts else text


def _where(text: str) -> str:
    keys = KEY.findall(text)
    classes = [c.rsplit(".", 1)[-1] for c in CLASS.findall(text)]
    where = keys[0] if keys else ""
    if len(keys) > 1:
        where += f" ({classes[0]}).{'.'.join(keys[1:])}" if classes else "." + ".".join(keys[1:])
    elif classes:
        where += f" ({classes[0]})"
    return where


def union_message(text: str) -> str | None:
    """``OPTION: REASON`` for a Union's error tree (None when the text is not one)."""
    inner = _innermost(text)
    where = _where(text)
    lines = [x.strip(" -") for x in inner.splitlines()]
    direct = next((x for x in lines if any(k in x for k in DIRECT)), None)
    if direct and (where or "arguments are required" in direct):
        return f"{where}: {direct}" if where else direct
    kinds = [k for k in EXPECTED.findall(inner) if not any(t in k for t in TRIED_ON_ALL)]
    given = GIVEN.search(inner)
    if not kinds or given is None:
        return None
    expected = ", or ".join(dict.fromkeys(_expected(k) for k in kinds))
    return f"{where}: {given.group(1)[:120]!r} is not {expected}"


def argument_hint(args: list[str], subcommands: tuple[str, ...]) -> str:
    """What follows a parser error: why a checkpoint may cause it, and where help is (the
    subcommand's help when ``args`` start with one of ``subcommands``, else the command's)."""
    hint = ""
    if "--ckpt_path" in args:
        hint = " (a --ckpt_path checkpoint's saved hyper-parameters are options too)"
    sub = args[:1] if args[:1] and args[0] in subcommands else []
    return f"{hint} (see `{' '.join(['lightning-mnist', *sub])} --help`)"
