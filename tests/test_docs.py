"""The docs cannot go stale: every option they name is accepted by the command they name it
for, and every repository path they name exists.

The docs are README.md, docs/*.md and the comments of the preset YAMLs. What is read is their
code: inline code, code blocks, YAML comments, and the targets of Markdown links.

Options. The commands are discovered, not listed here: the console scripts of pyproject.toml
and ``python -m MODULE`` for this repository's modules, each with the subcommand that follows
it (``lightning-mnist fit``, ``lightning-mnist-data fetch``). An option belongs to the command
invoked last before it in its section; a heading starts a section, whose options belong to
``lightning-mnist fit`` until a command is invoked. A command named alone (``mnist-compare`` in
prose) is not invoked. A command accepts what its own ``--help`` lists, asked in this process;
an option of a class group (``--optimizer.eps``) is looked up in ``--optimizer.help CLASS``, of
the class named last for the group (``--optimizer SGD``), else of the classes the presets give
it. Options of other programs (pip, torchrun, srun, sbatch, ``python -m pytest``) and inside
quoted values (``--lightning_args "..."``) are not checked.

Paths. A link must resolve from its doc's folder. Other paths are checked when they start at a
name the repository has (so run outputs such as ``runs/`` or ``checkpoints/`` and other
projects' sources such as ``keras/src/...`` are not) and git does not ignore them; they may be
cited from their package (``data/module.py``). Placeholders are skipped. Bare file names are
checked for source files only, and dotted names of this repository's packages
(``lightning_mnist.interop.keras_weights``) must name a module, or a name a module defines.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "lightning_mnist/configs").glob("*.yaml")),
]
DEFAULT = ("lightning-mnist", ("fit",))  # the command of options named without one
OTHER_PROGRAMS = r"pip|torchrun|srun|sbatch|#SBATCH"
OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*(?:\.(?:[\w-]+|\*))*")
QUOTED = re.compile(r"(?<!\w)(['\"]).*?\1(?!\w)")
CLASS = re.compile(r"(?:\+?=|\s+)((?:[a-z_][\w]*\.)*[A-Z]\w*)(?![\w.])")  # --optimizer SGD
SUBCOMMAND = re.compile(r"\s+([a-z][\w-]*)\b(?![./])")


# ---------------------------------------------------------------- reading the docs' code


def code_pieces(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each piece of code in order; a heading is ``(line, None)``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".yaml":
        return [
            (n, s.split("#", 1)[1].replace("`", " ")) for n, s in enumerate(lines, 1) if "#" in s
        ]
    pieces: list[tuple[int, str | None]] = []
    fenced, prose, start = False, [], 0

    def flush() -> None:
        text = "\n".join(prose)
        for m in re.finditer(r"`([^`]+)`", text):
            pieces.append((start + text.count("\n", 0, m.start()), m.group(1)))
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            pieces.append((start + text.count("\n", 0, m.start()), "LINK " + m.group(1)))
        prose.clear()

    for n, line in enumerate(lines, 1):
        code = fenced or line.startswith("    ")
        if line.startswith("```"):
            fenced = not fenced
        elif code and pieces and pieces[-1][1] and pieces[-1][1].endswith("\\"):
            pieces[-1] = (pieces[-1][0], pieces[-1][1][:-1] + line)  # a continued command
        elif code:
            flush()
            pieces.append((n, line))
        elif re.match(r"#+ ", line):
            flush()
            pieces.append((n, None))
        else:
            if not prose:
                start = n
            prose.append(line)
            if not line.strip():
                flush()
    flush()
    return sorted(pieces, key=lambda p: p[0])


# ---------------------------------------------------------------- the commands and their --help


@functools.cache
def scripts() -> dict[str, str]:
    """Console script name -> ``module:function``, from pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^"?([\w-]+)"?\s*=\s*"([\w.:]+)"', section, re.M))


def module_entry(module: str) -> str | None:
    """``module:main`` for ``python -m module`` when the module is this repository's."""
    path = ROOT.joinpath(*module.split("."))
    if (path / "__main__.py").is_file():
        return f"{module}.__main__:main"
    return f"{module}:main" if path.with_suffix(".py").is_file() else None


def command_pattern() -> re.Pattern[str]:
    names = "|".join(re.escape(n) for n in sorted(scripts(), key=len, reverse=True))
    return re.compile(
        rf"(?<![\w=.-])(?:[\w./-]*/)?(?P<script>{names})(?![\w-])"
        rf"|(?<![\w-])-m\s+(?P<module>[\w.]+)"
        rf"|(?<![\w/-])(?P<other>{OTHER_PROGRAMS})(?![\w-])"
    )


@functools.cache
def help_text(entry: str, args: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and output of ``entry`` called with ``args``, run in this process."""
    module, name = entry.split(":")
    function = getattr(importlib.import_module(module), name, None)
    if function is None:
        return 1, f"{module} has no {name}(), the entry point pyproject.toml names"
    out = io.StringIO()
    argv, sys.argv = sys.argv, [name, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            takes_args = bool(inspect.signature(function).parameters)
            code = function(list(args)) if takes_args else function()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return (code or 0) if isinstance(code, int | None) else 1, out.getvalue()


def listed(entry: str, args: tuple[str, ...]) -> set[str]:
    """The option names that a ``--help`` screen defines (the start of each options line)."""
    _, text = help_text(entry, args)
    names = set()
    for line in text.splitlines():
        if line.lstrip().startswith("-"):
            names.update(re.findall(r"(?:^|, )(--[\w.+-]+)", line.strip().split("  ")[0]))
    return names


def accepted(entry: str, sub: tuple[str, ...], option: str, classes: dict[str, str]) -> bool:
    """Whether ``--help`` lists ``option``, or the help of its class group (``--optimizer.help
    SGD``) does: of the class the doc named for the group, else of those the presets give it,
    else of the parser's default."""
    options = listed(entry, (*sub, "--help"))
    if option in options:
        return True
    if option.endswith(".*"):
        return any(o.startswith(option[:-1]) for o in options)
    parts = option.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the innermost class group first
        group = ".".join(parts[:i])
        if f"{group}.help" in options:
            named = [classes[group]] if group in classes else preset_classes().get(group, [None])
            return any(
                option in listed(entry, (*sub, f"{group}.help", *([c] if c else []))) for c in named
            )
    return False


@functools.cache
def preset_classes() -> dict[str, list[str]]:
    """``--group`` -> the classes the preset YAMLs give it (``--optimizer``: torch.optim.Adam)."""
    found: dict[str, list[str]] = {}

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            if "class_path" in node:
                found.setdefault(f"--{key}", []).append(node["class_path"])
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)

    for path in DOCS:
        if path.suffix == ".yaml":
            walk(yaml.safe_load(path.read_text(encoding="utf-8")), "")
    return found


def named_options(path: Path):
    """(line, option, command, entry, classes) for each option the doc names for one of our
    commands: ``command`` is its name and subcommand, ``classes`` the class named last for
    each class group (``--optimizer SGD``, ``--optimizer.help Adam``)."""
    pattern = command_pattern()
    for line, text in [(0, None), *code_pieces(path)]:
        if text is None:  # a new section
            command, entry, classes = DEFAULT, scripts()[DEFAULT[0]], {}
            continue
        if text.startswith("LINK "):
            continue
        text = QUOTED.sub(" ", text)
        events = sorted([*pattern.finditer(text), *OPTION.finditer(text)], key=lambda m: m.start())
        for m in events:
            rest = text[m.end() :]
            if m.re is OPTION:
                value = CLASS.match(rest)
                if value:
                    classes[m.group().removesuffix(".help")] = value[1]
                if entry is not None:
                    yield line, m.group(), command, entry, dict(classes)
                continue
            word = None if m["other"] else SUBCOMMAND.match(rest)
            if not (word or OPTION.search(rest)):
                continue  # named, not invoked
            classes = {}
            if m["other"]:
                command, entry = (m["other"], ()), None
            else:
                name = m["script"] or f"python -m {m['module']}"
                entry = scripts()[name] if m["script"] else module_entry(m["module"])
                command = (name, (word[1],) if word else ())


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_in_the_docs_is_accepted_by_its_command(path):
    failures = []
    for line, option, (name, sub), entry, classes in named_options(path):
        if not accepted(entry, sub, option, classes):
            command = " ".join([name, *sub])
            code, screen = help_text(entry, (*sub, "--help"))
            last = (screen.strip().splitlines() or [""])[-1]
            why = f" (`{command} --help` failed: {last})" if code else ""
            failures.append(
                f"{path.relative_to(ROOT)}:{line}: {option} is not an option of `{command}`{why}"
            )
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- paths

# Not a repository path: URLs, absolute, home and $VARIABLE paths, placeholders (<dir>, *,
# a component in capitals such as DIR or CKPT, a number N such as version_N).
PLACEHOLDER = re.compile(r"://|^[/~$]|[<>*{}$]|(^|/)[A-Z_]+(/|$)|(?<![A-Za-z0-9])N(?![A-Za-z0-9])")
# A bare file name is checked only for source files; the other bare names are what runs
# write (results.json, metrics.csv, config.yaml, report.md).
SOURCE = re.compile(r"^[\w-]+\.(py|cpp|sh|toml)$")
TOKEN = re.compile(r"[^\s`'\"()\[\],;|]+")


@functools.cache
def repository() -> frozenset[str]:
    """Every file and folder of the working tree that git tracks or would track."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = [f for f in out.splitlines() if (ROOT / f).exists()]
    return frozenset(files + [str(p) for f in files for p in Path(f).parents if str(p) != "."])


def exists(path: str, base: Path = ROOT, tail: bool = True) -> bool:
    """``path`` from ``base`` is in the repository or, with ``tail``, ends a repository path
    (``data/module.py`` for lightning_mnist/data/module.py: docs cite modules from their
    package)."""
    target = (base / path).resolve()
    if target.is_relative_to(ROOT) and str(target.relative_to(ROOT)) in repository():
        return True
    return tail and any(p.endswith("/" + path.rstrip("/")) for p in repository())


def ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def module_exists(dotted: str) -> bool:
    """``package.module.name``: the module is a file here and defines ``name`` (no import)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if source.is_file():
            if i == len(parts):
                return True
            name = re.escape(parts[i])
            defines = rf"^(?:def|class)\s+{name}\b|^{name}\s*[:=]|import.*\b{name}\b"
            return re.search(defines, source.read_text(encoding="utf-8"), re.M) is not None
    return False


def named_paths(path: Path):
    """(line, path, exists) for each repository path the doc names."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    names = {part for p in repository() for part in Path(p).parts}
    for line, text in code_pieces(path):
        if text is None:
            continue
        if text.startswith("LINK "):
            target = text[5:].split("#")[0]
            if target and "://" not in target and not target.startswith("mailto:"):
                yield line, target, exists(target, path.parent, tail=False)
            continue
        for token in TOKEN.findall(text):
            token = token.split("=", 1)[-1].rstrip(".:")
            if token.split(".")[0] in packages and re.fullmatch(r"[\w.]+", token):
                yield line, token, module_exists(token)
            elif token.startswith("-") or PLACEHOLDER.search(token):
                continue
            elif "/" in token and token.split("/")[0] in names or SOURCE.match(token):
                yield line, token, exists(token) or ignored(token)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_in_the_docs_exists(path):
    failures = [
        f"{path.relative_to(ROOT)}:{line}: {name} does not exist"
        for line, name, found in named_paths(path)
        if not found
    ]
    assert not failures, "\n".join(failures)
