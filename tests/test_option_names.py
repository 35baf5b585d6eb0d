"""One argument-parsing style: every command's options that ``lightning-mnist`` also has carry
its names (``--data.data_dir``, ``--trainer.max_epochs`` ...), and no command has dashed names
(the project was never released, so there are no earlier names to keep as aliases)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from lightning_mnist.cli import cli_main
from lightning_mnist.compare import bench
from lightning_mnist.compare import cli as compare
from lightning_mnist.data import cli as data_cli

OPTION = re.compile(r"(?<![\w-])--[a-z][\w.-]*\w")


def help_options(call, argv: list[str]) -> set[str]:
    """The options a command's ``--help`` names; the help exits (or returns) with status 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            status = call(argv)
        except SystemExit as e:
            status = e.code
    assert status == 0, out.getvalue()
    return set(OPTION.findall(out.getvalue()))


@pytest.fixture(scope="module")
def main_options() -> set[str]:
    return help_options(cli_main, ["fit", "--help"])


def keras_main(argv):
    from keras_reference.__main__ import main

    return main(argv)


COMMANDS = {
    "mnist-compare": (compare.main, ["--help"]),
    "mnist-bench": (bench.main, ["--help"]),
    "lightning-mnist-data fetch": (data_cli.main, ["fetch", "--help"]),
    "python -m keras_reference": (keras_main, ["--help"]),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_options_have_the_main_cli_names(name, main_options):
    options = help_options(*COMMANDS[name])
    dotted = {o for o in options if "." in o}
    assert dotted, f"{name} shares no option with lightning-mnist"
    # A subclass group (--early_stopping) lists its own --<group>.help, not each argument.
    unknown = {o for o in dotted - main_options if f"{o.split('.')[0]}.help" not in main_options}
    assert not unknown, f"{name}: {sorted(unknown)} not in lightning-mnist fit --help"
    assert not [o for o in options if "-" in o[2:]], f"{name} has dashed option names"


def test_options_reach_the_command(monkeypatch, tmp_path):
    plans, runs = [], []
    monkeypatch.setattr(compare, "compare", lambda plan: plans.append(plan) or {})
    monkeypatch.setattr(compare, "summary_line", lambda report: "")
    argv = ["--data.data_dir", "D", "--data.dataset", "fashion_mnist"]
    argv += ["--trainer.max_epochs", "3", "--early_stopping.patience", "1"]
    argv += ["--trainer.accelerator", "gpu", "--seeds_list", "[4,2]", "--target_accuracy", "0.9"]
    argv += ["--lightning_args", "--x 1", "--report_only", "true"]
    assert compare.main(argv) == 0
    (p,) = plans
    got = (p.data_dir, p.data.dataset, p.epochs, p.patience, p.accelerator, p.seeds)
    assert got == ("D", "fashion_mnist", 3, 1, "gpu", [2, 4])
    assert (p.target_accuracy, p.lightning_args, p.report_only) == (0.9, "--x 1", True)
    assert p.command == shlex.join(["mnist-compare", *argv])
    # The preset's facts fill what is not given (configs/improved.yaml: 15 epochs, patience 4).
    assert compare.main(["--preset", "improved"]) == 0
    assert (plans[1].epochs, plans[1].patience, plans[1].config) == (15, 4, "improved")
    # The dashed names of earlier versions are gone: one line, exit status 2.
    assert compare.main(["--data-dir", "D"]) == 2

    monkeypatch.setattr(bench, "bench", lambda run, rows, *probes: runs.append((run, rows)) or {})
    monkeypatch.setattr(bench.runners, "check_data", lambda data_dir, create=False: None)
    monkeypatch.setattr(bench, "render_markdown", lambda report: "")
    argv = ["--trainer.max_epochs", "3", "--data.data_dir", "D", "--frameworks", "[torch,keras]"]
    argv += ["--out", str(tmp_path / "bench"), "--tune_malloc", "false"]
    assert bench.main(argv) == 0
    (run, rows) = runs[0]
    assert (run.epochs, run.data_dir, rows, run.tune_malloc) == (3, "D", ["keras", "torch"], False)
