"""``lightning-mnist export`` on an improved-preset checkpoint, in all three formats: checked as
the tutorial's are, and the written file, loaded on its own by its runtime, predicts as the
checkpoint's model does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_mnist.checkpoints import load_classifier
from lightning_mnist.cli import main
from lightning_mnist.data.module import to_tensor
from lightning_mnist.data.verify import load_arrays
from lightning_mnist.system import MNISTClassifier

IMAGES = 300


@pytest.fixture(scope="module")
def improved_ckpt(tmp_path_factory) -> Path:
    """An improved-preset checkpoint (model.arch improved, model.convs [1, 2, 2]) holding what
    Lightning saves: the state_dict and the saved hyper-parameters."""
    torch.manual_seed(0)
    model = MNISTClassifier(arch="improved", convs=(1, 2, 2))
    path = tmp_path_factory.mktemp("improved") / "improved.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def run_on_its_own(fmt: str, path: Path, x: torch.Tensor) -> torch.Tensor:
    """Logits of the exported file, loaded by its own runtime without lightning_mnist."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    module = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path))
    with torch.no_grad():
        return (module if fmt == "torchscript" else module.module())(x)


@pytest.mark.real_data
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
def test_export_of_an_improved_checkpoint(improved_ckpt, data_dir, tmp_path, fmt, capsys):
    out = tmp_path / f"improved.{fmt}"
    args = ["export", "--ckpt_path", str(improved_ckpt), "--format", fmt, "--out", str(out)]
    args += ["--data.data_dir", str(data_dir), "--check_images", str(IMAGES)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == IMAGES and report["equal_predictions"] == IMAGES
    assert report["max_abs_softmax_diff"] <= 1e-5 and out.is_file()
    assert main(args) == 2  # an existing file is never overwritten
    assert "already exists" in capsys.readouterr().err

    x, _ = to_tensor(*load_arrays(data_dir)[2:])
    x = x[:IMAGES]
    with torch.no_grad():
        want = load_classifier(improved_ckpt)(x).softmax(1)
    got = run_on_its_own(fmt, out, x).softmax(1)
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert float((got - want).abs().max()) <= 1e-5  # the export bar, SOFTMAX_ATOL


def test_export_help_lists_its_options(capsys):
    assert main(["export", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--ckpt_path", "--format", "--out", "--data.data_dir", "--check_images"):
        assert option in text


@pytest.mark.real_data
def test_the_out_suffix_chooses_the_format_and_a_contradiction_is_refused(
    improved_ckpt, data_dir, tmp_path, capsys
):
    out = tmp_path / "model.pt2"
    base = ["export", "--ckpt_path", str(improved_ckpt), "--data.data_dir", str(data_dir)]
    base += ["--check_images", "20"]
    assert main([*base, "--out", str(out), "--format", "onnx"]) == 2
    assert "suffix" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["format"] == (
        "exported-program"
    )
    torch.export.load(str(out))  # an ExportedProgram, not an ONNX file under that name


def test_export_without_the_dataset(improved_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "no-data"))
    out = tmp_path / "model.pt2"
    argv = ["export", "--ckpt_path", str(improved_ckpt), "--out", str(out)]
    assert main(argv) == 2  # the test images are missing: one line naming the way out
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--check_images 0 checks on random images" in err[0], err
    assert not out.exists()
    assert main([*argv, "--check_images", "0"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["inputs"] == "random images" and report["equal_predictions"] == 1000
    x = torch.rand(64, 1, 28, 28)
    expected = load_classifier(improved_ckpt)(x)
    assert torch.allclose(run_on_its_own("exported-program", out, x), expected, atol=1e-5)
    assert not (tmp_path / "no-data").exists()  # nothing fetched or created
