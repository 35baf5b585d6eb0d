"""One argument-parsing style: every command's options that ``lightning-mnist`` also has carry
its names (``--data.data_dir``, ``--trainer.max_epochs`` ...), and the earlier dashed names
still parse as aliases to the same value."""

from __future__ import annotations

import re

import pytest

from lightning_mnist.cli import cli_main
from lightning_mnist.compare import bench
from lightning_mnist.compare.cli import parse_args as compare_args
from lightning_mnist.data import fetch

OPTION = re.compile(r"(?<![\w-])--[a-z][\w.-]*\w")


def help_options(capsys, call) -> set[str]:
    with pytest.raises(SystemExit) as exit_:
        call(["--help"])
    assert exit_.value.code == 0
    return set(OPTION.findall(capsys.readouterr().out))


@pytest.fixture(scope="module")
def main_options() -> set[str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    return set(OPTION.findall(out.getvalue()))


def keras_args(argv):
    from keras_reference.__main__ import parse_args

    return parse_args(argv)


COMMANDS = {
    "mnist-compare": compare_args,
    "mnist-compare --bench": bench.parse_args,
    "lightning-mnist-data": fetch.main,
    "python -m keras_reference": keras_args,
}


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_options_have_the_main_cli_names(name, capsys, main_options):
    options = help_options(capsys, COMMANDS[name])
    dotted = {o for o in options if "." in o}
    assert dotted, f"{name} shares no option with lightning-mnist"
    # A subclass group (--early_stopping) lists its own --<group>.help, not each argument.
    unknown = {o for o in dotted - main_options if f"{o.split('.')[0]}.help" not in main_options}
    assert not unknown, f"{name}: {sorted(unknown)} not in lightning-mnist fit --help"
    # A dashed name is only ever an alias of an underscore or dotted one.
    for dashed in (o for o in options if "-" in o[2:]):
        twin = dashed[2:].replace("-", "_")
        assert any(o[2:].endswith(twin) for o in options - {dashed}), dashed


def test_aliases_reach_the_same_value():
    new = compare_args(
        [
            "--data.data_dir",
            "D",
            "--data.dataset",
            "fashion_mnist",
            "--trainer.max_epochs",
            "3",
            "--early_stopping.patience",
            "1",
            "--trainer.accelerator",
            "gpu",
            "--seeds_list",
            "4",
            "2",
            "--target_accuracy",
            "0.9",
            "--lightning_args",
            "--x 1",
            "--report_only",
        ]
    )
    old = compare_args(
        [
            "--data-dir",
            "D",
            "--dataset",
            "fashion_mnist",
            "--epochs",
            "3",
            "--patience",
            "1",
            "--accelerator",
            "gpu",
            "--seeds-list",
            "4",
            "2",
            "--target-accuracy",
            "0.9",
            "--lightning-args",
            "--x 1",
            "--report-only",
        ]
    )
    keys = (
        "data_dir",
        "dataset",
        "epochs",
        "patience",
        "accelerator",
        "seeds",
        "target_accuracy",
        "lightning_args",
        "report_only",
    )
    got = {k: getattr(new, k) for k in keys}
    assert got == {k: getattr(old, k) for k in keys}
    assert got == {
        "data_dir": "D",
        "dataset": "fashion_mnist",
        "epochs": 3,
        "patience": 1,
        "accelerator": "gpu",
        "seeds": [2, 4],
        "target_accuracy": 0.9,
        "lightning_args": "--x 1",
        "report_only": True,
    }
    bench_args = bench.parse_args(["--trainer.max_epochs", "3", "--data.data_dir", "D"])
    assert (bench_args.epochs, bench_args.data_dir) == (3, "D")
