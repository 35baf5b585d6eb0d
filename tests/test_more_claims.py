"""Smaller promises of the docs, each checked where it is made: plots with a gap at null
values, ``--num_threads``, the model summary, the port without TensorFlow, the DDP preset, the
parser's own callback defaults and the reason a gpu test is skipped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import DDP, REPO, TUTORIAL, cli_args

from lightning_mnist.cli import cli_main
from lightning_mnist.data import catalogue
from lightning_mnist.data.catalogue import make_spec


def test_the_plots_leave_a_gap_at_null_values(tmp_path, monkeypatch):
    # docs/usage.md: "the plots leave a gap there" (an epoch without a measured value).
    from lightning_mnist.run import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    history = {"accuracy": [0.9, None, 0.8], "val_accuracy": [0.95, None, 0.9]}
    history |= {"loss": [0.3, None, 0.2], "val_loss": [0.2, None, 0.25]}
    plots.plot_history(history, tmp_path)
    assert len(figures) == 2
    for figure in figures:
        (ax,) = figure.axes
        assert len(ax.lines) == 2
        for line in ax.lines:
            assert list(line.get_xdata(orig=False)) == [1, 2, 3]  # the epoch is not dropped
            y = np.asarray(line.get_ydata(orig=False), dtype=float)
            assert np.isnan(y[1]) and np.isfinite(y[[0, 2]]).all()  # nor filled in


def test_num_threads_sets_torchs_threads(tmp_path):
    # docs/parity.md: `--num_threads N` sets torch's threads (conftest restores them after).
    wanted = torch.get_num_threads() + 1
    args = ["--config", TUTORIAL, "--trainer.accelerator", "cpu"]
    cli_main(
        [*args, "--trainer.default_root_dir", str(tmp_path), "--num_threads", str(wanted)],
        run=False,
    )
    assert torch.get_num_threads() == wanted


def summary_rows(text: str) -> tuple[str, list[list[str]]]:
    """The header and the rows of the printed model summary table, each cell whole (a cell
    wrapped onto more lines is joined again)."""
    lines = [line.replace("│", "|").replace("┃", "|") for line in text.splitlines()]
    header = next(line for line in lines if "Params" in line and "Name" in line)
    rows: list[list[str]] = []
    for line in lines[lines.index(header) + 1 :]:
        if not line.startswith("|"):
            if line.strip() and not line.strip("─━┡┩╇-+= "):
                continue  # the rule under the header
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] or not rows:
            rows.append(cells)
        else:  # the same row, wrapped
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return header, rows


def test_the_model_summary_shows_the_network_as_one_row(
    tiny_idx_dir, tmp_path, monkeypatch, capsys
):
    # docs/usage.md: one row with its parameters, FLOPs and input and output shapes.
    monkeypatch.setitem(catalogue.DATASETS, "mnist", make_spec("mnist", "MNIST", 64, 32))
    args = cli_args(tiny_idx_dir, tmp_path, "--trainer.fast_dev_run", "true")
    cli_main(["fit", *args, "--data.batch_size", "8"])
    header, rows = summary_rows(capsys.readouterr().out)
    assert all(name in header for name in ("FLOPs", "In sizes", "Out sizes")), header
    assert len(rows) == 1, rows
    cells = rows[0]
    assert "TutorialCNN" in cells and "173 K" in cells, cells
    assert "[1, 1, 28, 28]" in cells and "[1, 10]" in cells, cells


BLOCK_TENSORFLOW = """
import importlib.machinery
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras")


class Blocked:
    # As if TensorFlow and Keras could not be imported: an import of them fails as a missing
    # module would (a probe with importlib.util.find_spec still gets an answer, as torch asks).
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        raise ModuleNotFoundError(f"No module named {module.__name__!r}")


sys.meta_path.insert(0, Blocked())
from lightning_mnist.cli import cli_main

cli = cli_main(sys.argv[1:], run=False)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("built", type(cli.model.model).__name__, type(cli.trainer).__name__, loaded)
"""


def test_the_port_imports_and_builds_without_tensorflow(tmp_path):
    # README.md: a user who wants only the port can skip TensorFlow.
    args = ["--config", TUTORIAL, "--trainer.accelerator", "cpu"]
    args += ["--trainer.default_root_dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCK_TENSORFLOW), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built TutorialCNN Trainer []" in done.stdout, done.stdout


def test_the_ddp_preset_sets_the_strategy_and_every_device():
    # docs/gpus.md: configs/ddp.yaml sets `strategy: ddp` and `devices: auto`.
    trainer = yaml.safe_load(Path(DDP).read_text())["trainer"]
    assert trainer["strategy"] == "ddp" and trainer["devices"] == "auto"


def test_the_parser_has_the_tutorials_callbacks_without_a_config(capsys):
    # docs/parity.md #7: without --config the parser's defaults are the tutorial's callbacks.
    with pytest.raises(SystemExit) as done:
        cli_main(["fit", "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    stop = config["early_stopping"]
    assert stop["class_path"].endswith("EarlyStopping")
    assert (stop["init_args"]["monitor"], stop["init_args"]["mode"]) == ("val_loss", "min")
    assert stop["init_args"]["patience"] == 2
    keep = config["checkpoint"]["init_args"]
    assert (keep["monitor"], keep["mode"], keep["save_top_k"]) == ("val_loss", "min", 1)
    assert keep["save_last"] is True


class _Item:
    def __init__(self, keywords: dict) -> None:
        self.keywords = keywords
        self.markers: list = []

    def add_marker(self, marker) -> None:
        self.markers.append(marker)


def test_gpu_tests_are_skipped_saying_so_without_cuda(request, monkeypatch):
    # README.md: tests marked gpu are skipped, saying so, where torch sees no CUDA device.
    conftest = Path(__file__).with_name("conftest.py")
    (plugin,) = [
        p
        for p in request.config.pluginmanager.get_plugins()
        if getattr(p, "__file__", None) and Path(p.__file__) == conftest
    ]
    gpu, cpu = _Item({"gpu": True}), _Item({})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plugin.pytest_collection_modifyitems(request.config, [gpu, cpu])
    (marker,) = gpu.markers
    assert marker.mark.name == "skip" and "needs a CUDA GPU" in marker.mark.kwargs["reason"]
    assert cpu.markers == []
    gpu.markers.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    plugin.pytest_collection_modifyitems(request.config, [gpu])
    assert gpu.markers == []  # where there is a GPU they run
