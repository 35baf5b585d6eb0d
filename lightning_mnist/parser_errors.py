"""The one useful line of a jsonargparse error. An option that takes several types (a Union such
as ``--trainer.precision`` or ``--optimizer``) fails as a tree of the types tried; the line keeps
the option, the value given and the innermost reason, or the types the option would take."""

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
    if named := re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", kind):
        return f"{'an' if named.group(1)[0] in 'aeiou' else 'a'} {named.group(1)}"
    return kind


def _where(text: str) -> str:
    """``option (Class).its.argument``: the first option named, its class, the nested keys."""
    keys = KEY.findall(text)
    classes = [f" ({c.rsplit('.', 1)[-1]})" for c in CLASS.findall(text)]
    return "".join(keys[:1] + classes[:1]) + "".join(f".{k}" for k in keys[1:])


def parser_message(e: BaseException) -> str:
    """``OPTION: REASON`` from a jsonargparse error."""
    text = str(e)
    # The block of the last option named: a class's argument is nested in its option's.
    inner = text[max((m.start() for m in KEY.finditer(text)), default=0) :]
    where = _where(text)
    lines = [x.strip(" -") for x in inner.splitlines()]
    direct = next((x for x in lines if any(k in x for k in DIRECT)), None)
    if direct and (where or "arguments are required" in direct):
        return f"{where}: {direct}" if where else direct
    kinds = [k for k in EXPECTED.findall(inner) if not any(t in k for t in TRIED_ON_ALL)]
    given = GIVEN.search(inner)
    if kinds and given is not None:
        expected = ", or ".join(dict.fromkeys(_expected(k) for k in kinds))
        return f"{where}: {given.group(1)[:120]!r} is not {expected}"
    # Not a Union's tree; its first line is often only a preamble.
    lines = [x.strip(" -") for x in text.splitlines() if x.strip(" -")]
    useful = [x for x in lines if any(k in x for k in DIRECT[:3])]
    text = useful[0] if useful else (lines[-1] if lines else type(e).__name__)
    return text if len(lines) < 2 or text == lines[0] else f"{lines[0].rstrip(':')}: {text}"


def argument_hint(args: list[str], subcommands: tuple[str, ...]) -> str:
    """What follows a parser error: why a checkpoint may cause it, and where help is (the
    subcommand's help when ``args`` start with one of ``subcommands``, else the command's)."""
    hint = ""
    if "--ckpt_path" in args:
        hint = " (a --ckpt_path checkpoint's saved hyper-parameters are options too)"
    sub = args[:1] if args[:1] and args[0] in subcommands else []
    return f"{hint} (see `{' '.join(['lightning-mnist', *sub])} --help`)"
