"""``lightning-mnist fit --init_weights PATH``: a Keras weights file (read with h5py) replaces
the initialisation before training; mnist-compare --paired passes Keras's initial weights."""

from __future__ import annotations

import pytest
import torch
from helpers import cli_args

import lightning_mnist.cli as cli_module
from lightning_mnist.cli import cli_main, main
from lightning_mnist.interop.keras_weights import export_keras_weights
from lightning_mnist.model import TutorialCNN


@pytest.fixture
def keras_file(tmp_path):
    """A Keras 3 weights file of a tutorial network whose every tensor is random."""
    source = TutorialCNN()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_(0.0, 0.1)
    return source, export_keras_weights(source, tmp_path / "start.weights.h5")


@pytest.mark.real_data
def test_init_weights_reaches_the_network_before_training(
    data_dir, tmp_path, keras_file, monkeypatch
):
    source, path = keras_file
    started = {}
    real = cli_module.start_from_keras

    def spy(network, given):
        real(network, given)
        started.update(path=given, state={k: v.clone() for k, v in network.state_dict().items()})

    monkeypatch.setattr(cli_module, "start_from_keras", spy)
    args = ["--trainer.fast_dev_run", "true", "--init_weights", str(path)]
    cli = cli_main(["fit", *cli_args(data_dir, tmp_path / "runs", *args)])
    assert cli.trainer.state.finished and started["path"] == str(path)
    for name, tensor in source.state_dict().items():
        assert torch.equal(started["state"][name], tensor), name
    # One training step moved the weights on from the start.
    assert not torch.equal(cli.model.model.fc1.weight.detach(), source.fc1.weight)


@pytest.mark.real_data
def test_without_init_weights_nothing_is_loaded(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_module, "start_from_keras", lambda *a: pytest.fail("called"))
    args = cli_args(data_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true")
    assert cli_main(["fit", *args]).trainer.state.finished


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--init_weights", "missing.weights.h5"), "no such Keras file"),
        (("--init_weights", "{file}", "--model.arch", "improved"), "for the tutorial network only"),
        (("--init_weights", "{file}", "--ckpt_path", "last"), "starts a new fit"),
    ],
)
@pytest.mark.real_data
def test_init_weights_mistakes_are_one_line(data_dir, tmp_path, keras_file, capsys, extra, message):
    extra = tuple(str(keras_file[1]) if e == "{file}" else e for e in extra)
    args = cli_args(data_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true", *extra)
    assert main(["fit", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.real_data
def test_init_weights_is_fit_only(data_dir, tmp_path, keras_file, capsys):
    args = cli_args(data_dir, tmp_path / "runs", "--init_weights", str(keras_file[1]))
    assert main(["validate", *args]) == 2
    assert "only fit" in capsys.readouterr().err
