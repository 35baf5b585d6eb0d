"""What ``predict`` writes: users' images (CSV or JSON, failures included), the test set, the
files' mode, never overwriting; and the acceptance test (``real_data``): briefly trained on
real MNIST, digits redrawn the way users draw them (black ink, white or transparent
background, larger, off-centre) are classified as their 28x28 originals are.

The predictions go through the real path without a Trainer: ``MNISTDataModule`` prepares the
images, the network's softmax scores them (as ``predict_step`` does) and ``PredictionCSV``
writes them.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_mnist.data.images import prepare_image
from lightning_mnist.data.module import MNISTDataModule
from lightning_mnist.data.verify import load_arrays
from lightning_mnist.model import TutorialCNN
from lightning_mnist.predict.writer import PredictError, PredictionCSV


def digit_page(left: int = 8) -> np.ndarray:
    """A white page with a black 'L'-shaped stroke."""
    page = np.full((90, 70), 255, np.uint8)
    page[10:50, left : left + 6] = 0
    page[44:50, left : left + 24] = 0
    return page


@pytest.fixture(scope="module")
def model() -> TutorialCNN:
    torch.manual_seed(0)
    return TutorialCNN().eval()


def predict_images(model, paths, folder: Path, image_format: str = "csv") -> PredictionCSV:
    """Prepare ``paths`` as the DataModule does, score them, write them; the writer."""
    dm = MNISTDataModule(images=[str(p) for p in paths])
    dm.setup("predict")
    x, _ = dm.tensors["images"]
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    writer = PredictionCSV(str(folder), image_format)
    trainer = SimpleNamespace(datamodule=dm, log_dir=None, world_size=1, global_rank=0)
    writer.write_on_epoch_end(trainer, None, [{"probs": probs}], None)
    return writer


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_bad_files_reported_good_files_predicted(tmp_path, model, capsys):
    Image.fromarray(digit_page()).save(tmp_path / "ok.png")
    Image.fromarray(digit_page(20)).save(tmp_path / "ok2.jpg")
    (tmp_path / "text.png").write_text("this is not a picture\n")
    Image.new("RGB", (50, 40), "white").save(tmp_path / "blank.png")
    names = ["text.png", "ok.png", "blank.png", "ok2.jpg", "missing.png"]
    writer = predict_images(model, [tmp_path / n for n in names], tmp_path / "out")
    assert writer.path == tmp_path / "out" / "image_predictions.csv"
    failed = {Path(f).name: m for f, m in writer.failures}
    assert set(failed) == {"text.png", "blank.png", "missing.png"}
    assert "no such file" in failed["missing.png"] and "blank image" in failed["blank.png"]
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 3 and all(x.startswith("error: ") for x in err.splitlines())
    assert out.splitlines()[-1] == f"2 predicted, 3 failed; wrote {writer.path}"
    records = read_csv(writer.path)
    assert [Path(r["file"]).name for r in records[:2]] == ["ok.png", "ok2.jpg"]
    assert [bool(r["error"]) for r in records] == [False, False, True, True, True]


def test_csv_rows_match_model_softmax(tmp_path, model):
    paths = []
    for i, left in enumerate((5, 20, 35)):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray(digit_page(left)).save(paths[-1])
    writer = predict_images(model, paths, tmp_path)
    assert writer.failures == []
    x = torch.from_numpy(np.stack([prepare_image(p) for p in paths])).unsqueeze(1)
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    for rec, p in zip(read_csv(writer.path), probs, strict=True):
        assert int(rec["predicted"]) == int(p.argmax())
        assert float(rec["probability"]) == pytest.approx(float(p.max()), abs=1e-6)
        top = [int(t.split(":")[0]) for t in rec["top3"].split()]
        assert top == p.argsort(descending=True)[:3].tolist()


def test_json_output(tmp_path, model):
    Image.fromarray(digit_page()).save(tmp_path / "d.png")
    (tmp_path / "x.txt").write_text("no")
    writer = predict_images(model, [tmp_path / "d.png", tmp_path / "x.txt"], tmp_path, "json")
    records = json.loads((tmp_path / "image_predictions.json").read_text())
    assert writer.path.suffix == ".json"
    assert records[0]["error"] is None and len(records[0]["top3"]) == 3
    assert records[1]["predicted"] is None and ".txt" in records[1]["error"]


def test_existing_output_never_overwritten(tmp_path, model):
    Image.fromarray(digit_page()).save(tmp_path / "d.png")
    out = tmp_path / "image_predictions.csv"
    out.write_text("precious\n")
    with pytest.raises(PredictError, match="already exists"):
        predict_images(model, [tmp_path / "d.png"], tmp_path)
    assert out.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["d.png", "image_predictions.csv"]  # no temp file


def write_test_set(folder: Path, world_size: int = 1) -> PredictionCSV:
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    writer = PredictionCSV(str(folder))
    trainer = SimpleNamespace(datamodule=None, log_dir=None, world_size=world_size, global_rank=1)
    writer.write_on_epoch_end(trainer, None, [{"probs": probs, "label": torch.tensor([1, 2])}], [])
    return writer


def test_test_set_predictions_csv(tmp_path, capsys):
    rows = read_csv(write_test_set(tmp_path).path)
    assert list(rows[0]) == ["index", "label", "predicted", "probability", "p0", "p1", "p2"]
    assert [(r["label"], r["predicted"], r["probability"]) for r in rows] == [
        ("1", "1", "0.700000"),
        ("2", "0", "0.600000"),
    ]
    assert "(accuracy 0.5000)" in capsys.readouterr().out
    assert write_test_set(tmp_path, world_size=2).path.name == "predictions.rank1.csv"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_umask_mode(tmp_path, model, umask):
    Image.fromarray(digit_page()).save(tmp_path / "d.png")
    old = os.umask(umask)
    try:
        paths = [write_test_set(tmp_path / "test").path]
        for fmt in ("csv", "json"):
            paths.append(predict_images(model, [tmp_path / "d.png"], tmp_path / fmt, fmt).path)
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o666 & ~umask}


def train_quickly(x: np.ndarray, y: np.ndarray, seed: int = 0) -> TutorialCNN:
    """One epoch of the tutorial's recipe (Adam 1e-3, Keras eps 1e-7, batch 256), plain torch."""
    torch.manual_seed(seed)
    model = TutorialCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    xt = torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1)
    yt = torch.from_numpy(y.astype(np.int64))
    order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(seed))
    model.train()
    for i in range(0, len(xt), 256):
        batch = order[i : i + 256]
        loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def as_user_drawing(digit: np.ndarray, k: int, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit redrawn as black ink, 2-4x larger, off-centre on a larger RGBA canvas.

    Three kinds in turn: an opaque white page; ink as alpha on a transparent (black) layer;
    an opaque white sticker on a transparent canvas.
    """
    scale = int(rng.integers(2, 5))
    side = 28 * scale
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    height, width = side + int(rng.integers(16, 120)), side + int(rng.integers(16, 120))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    canvas = np.zeros((height, width, 4), np.uint8)  # transparent black
    patch = canvas[top : top + side, left : left + side]
    if k % 3 == 0:
        canvas[...] = 255
        patch[..., :3] = (255 - ink)[..., None]
    elif k % 3 == 1:
        patch[..., 3] = ink
    else:
        patch[..., :3] = (255 - ink)[..., None]
        patch[..., 3] = 255
    return Image.fromarray(canvas, "RGBA")


@pytest.mark.real_data
def test_redrawn_mnist_digits_predicted_as_originals(tmp_path: Path, data_dir: Path) -> None:
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    model = train_quickly(x_train, y_train)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(x_test), 200, replace=False))
    paths = []
    for k, i in enumerate(sample):
        paths.append(tmp_path / f"{k:03d}_test{i}.png")
        as_user_drawing(x_test[i], k, rng).save(paths[-1])
    writer = predict_images(model, paths, tmp_path)
    assert writer.failures == []
    with torch.no_grad():
        original = model(torch.from_numpy(x_test[sample] / np.float32(255)).unsqueeze(1))
    redrawn = np.array([int(r["predicted"]) for r in read_csv(writer.path)])
    agreement = float((redrawn == original.argmax(1).numpy()).mean())
    accuracy = float((original.argmax(1).numpy() == y_test[sample]).mean())
    print(f"redrawn vs original predictions agree on {agreement:.1%}; accuracy {accuracy:.1%}")
    # A model that learned nothing (one class for all) would agree trivially; one epoch
    # reaches about 94% here.
    assert accuracy >= 0.9
    assert agreement >= 0.95  # measured 99.0% (198 of 200) with seed 0
