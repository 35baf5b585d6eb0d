"""``lightning-mnist export`` on tutorial and improved-preset checkpoints, in all three formats:
the written file, loaded on its own by its runtime, predicts as the checkpoint's model does; a
file that disagrees is never written; the ONNX names and the suffix rules are as docs/export.md
says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import lightning_mnist.interop.export as export_module
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


@pytest.fixture(scope="module")
def tutorial_ckpt(tmp_path_factory) -> Path:
    """A tutorial-network checkpoint, saved as ``improved_ckpt`` is."""
    torch.manual_seed(0)
    model = MNISTClassifier()
    path = tmp_path_factory.mktemp("tutorial") / "tutorial.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def last_json(capsys) -> dict:
    """The JSON line export printed last."""
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def model_logits(ckpt: Path, x: torch.Tensor) -> torch.Tensor:
    """The checkpoint's own model on ``x``: logits."""
    with torch.no_grad():
        return load_classifier(ckpt)(x)


def run_on_its_own(fmt: str, path: Path, x: torch.Tensor) -> torch.Tensor:
    """Logits of the exported file, loaded by its own runtime without lightning_mnist."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["linear_1"], {"x": x.numpy()})[0])  # its names
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


def scaled(logits: torch.Tensor) -> torch.Tensor:
    """Every class kept, the softmax moved well past the 1e-5 bar."""
    return logits * 2


def one_class_moved(logits: torch.Tensor) -> torch.Tensor:
    """The first image's class moved one place over; every other image as it was."""
    logits = logits.clone()
    logits[0] = logits[0].roll(1)
    return logits


@pytest.mark.parametrize(
    ("corrupt", "atol", "equal"),
    [(scaled, export_module.SOFTMAX_ATOL, "1000/1000"), (one_class_moved, math.inf, "999/1000")],
    ids=["softmax", "class"],
)
def test_an_export_that_disagrees_is_not_written(
    tutorial_ckpt, tmp_path, capsys, monkeypatch, corrupt, atol, equal
):
    assert export_module.SOFTMAX_ATOL == 1e-5  # the bar docs/export.md states
    run = export_module.run_exported
    monkeypatch.setattr(export_module, "run_exported", lambda *a, **k: corrupt(run(*a, **k)))
    monkeypatch.setattr(export_module, "SOFTMAX_ATOL", atol)  # inf: only the classes count
    folder = tmp_path / "out"
    folder.mkdir()
    argv = ["export", "--ckpt_path", str(tutorial_ckpt), "--out", str(folder / "m.pt2")]
    assert main([*argv, "--check_images", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export disagrees with the model" in err[0], err
    assert f"{equal} equal predictions" in err[0], err
    assert list(folder.iterdir()) == []  # neither the file nor its temp file is left


def test_the_onnx_file_takes_x_and_gives_linear_1_logits(tutorial_ckpt, tmp_path, capsys):
    """The improved network's names are checked by test_export_of_an_improved_checkpoint."""
    import onnxruntime as ort

    ckpt = tutorial_ckpt
    out = tmp_path / "model.onnx"
    assert main(["export", "--ckpt_path", str(ckpt), "--out", str(out), "--check_images", "0"]) == 0
    assert last_json(capsys)["format"] == "onnx"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "x" and given.type == "tensor(float)"
    assert given.shape[1:] == [1, 28, 28] and isinstance(given.shape[0], str)  # N is dynamic
    assert [o.name for o in session.get_outputs()] == ["linear_1"]
    x = torch.rand(5, 1, 28, 28)
    (got,) = session.run(["linear_1"], {"x": x.numpy()})
    want = model_logits(ckpt, x)
    assert got.shape == (5, 10) and torch.allclose(torch.from_numpy(got), want, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "fmt", "written"),
    [
        ("m.pt", None, "torchscript"),
        ("m.pt2", None, "exported-program"),
        ("m.bin", None, "onnx"),
        ("m.bin", "torchscript", "torchscript"),  # no format's suffix: --format is obeyed
    ],
)
def test_the_out_suffix_alone_chooses_the_format(
    name, fmt, written, tutorial_ckpt, tmp_path, capsys
):
    out = tmp_path / name
    argv = ["export", "--ckpt_path", str(tutorial_ckpt), "--out", str(out), "--check_images", "0"]
    assert main(argv + (["--format", fmt] if fmt else [])) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["format"] == written and report["file"] == str(out)
    said = captured.err.strip().splitlines()  # nothing else: no runtime warning
    notes = ["note: PyTorch deprecates TorchScript"] if written == "torchscript" else []
    assert len(said) == len(notes) and all(map(str.startswith, said, notes)), said
    x = torch.rand(3, 1, 28, 28)
    got = run_on_its_own(written, out, x)  # each runtime loads only its own format
    assert torch.allclose(got, model_logits(tutorial_ckpt, x), atol=1e-5)


@pytest.mark.real_data
def test_the_check_runs_on_all_10000_test_images_by_default(
    tutorial_ckpt, data_dir, tmp_path, capsys, monkeypatch
):
    seen = {}

    def checked(ckpt_path, fmt, out, x) -> dict:
        seen["x"] = x
        return {"images": len(x)}

    monkeypatch.setattr(export_module, "export_checked", checked)
    out = tmp_path / "m.pt2"
    argv = ["export", "--ckpt_path", str(tutorial_ckpt), "--out", str(out)]
    assert main([*argv, "--data.data_dir", str(data_dir)]) == 0
    assert last_json(capsys)["inputs"] == "test images"
    x_test, _ = to_tensor(*load_arrays(data_dir)[2:])
    assert len(x_test) == 10_000 and torch.equal(seen["x"], x_test)
