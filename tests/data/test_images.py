"""Users' own images, prepared as MNIST was: each step, bad files, folder expansion, and the
DataModule that feeds them to ``predict``. Synthetic images only; the acceptance test on
redrawn MNIST digits is in ``tests/predict/test_predict.py``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_mnist.data.images import (
    ImageError,
    centre_by_mass,
    crop_to_ink,
    expand_inputs,
    fit_box,
    ink_on_black,
    load_grayscale,
    prepare_array,
    prepare_image,
)
from lightning_mnist.data.module import MNISTDataModule


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(a.shape)
    return float((rows * a).sum() / a.sum()), float((cols * a).sum() / a.sum())


def digit_canvas(height: int = 90, width: int = 70, top: int = 10, left: int = 8) -> np.ndarray:
    """A white uint8 page with a black 'L'-shaped stroke (lopsided, so its mass is off-box)."""
    page = np.full((height, width), 255, np.uint8)
    page[top : top + 40, left : left + 6] = 0  # vertical bar
    page[top + 34 : top + 40, left : left + 24] = 0  # foot
    return page


# ---- step 1: grayscale, alpha composited onto white ------------------------------------


def test_transparent_black_becomes_white_page(tmp_path: Path) -> None:
    rgba = np.zeros((30, 40, 4), np.uint8)  # fully transparent *black*: must read as paper
    rgba[10:20, 10:20] = (0, 0, 0, 255)  # opaque black ink
    rgba[10:20, 25:30] = (0, 0, 0, 128)  # half-transparent ink: mid grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    gray = load_grayscale(tmp_path / "a.png")
    assert gray.shape == (30, 40) and gray.dtype == np.uint8
    assert gray[0, 0] == 255 and gray[15, 15] == 0
    assert 120 <= gray[15, 27] <= 135


def test_palette_and_la_transparency(tmp_path: Path) -> None:
    la = Image.new("LA", (10, 10), (0, 0))  # transparent black
    la.putpixel((5, 5), (0, 255))
    la.save(tmp_path / "la.png")
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0, 255, 0, 0])
    p.putpixel((5, 5), 1)
    p.info["transparency"] = 0  # palette index 0 (black) is transparent
    p.save(tmp_path / "p.png", transparency=0)
    for name in ("la.png", "p.png"):
        gray = load_grayscale(tmp_path / name)
        assert gray[0, 0] == 255 and gray[5, 5] < 100, name


def test_sixteen_bit_grayscale_scaled_not_clipped(tmp_path: Path) -> None:
    a = np.full((10, 10), 65535, np.uint16)
    a[4:6, 4:6] = 0
    Image.fromarray(a).save(tmp_path / "16.png")
    gray = load_grayscale(tmp_path / "16.png")
    assert gray[0, 0] == 255 and gray[5, 5] == 0


# ---- step 2: invert a light background -------------------------------------------------


def test_light_background_inverted_dark_kept() -> None:
    light = digit_canvas()
    out = ink_on_black(light)
    assert out[0, 0] == 0 and out[20, 10] == 255
    dark = 255 - light
    assert np.array_equal(ink_on_black(dark), dark)


# ---- step 3: crop to the ink -----------------------------------------------------------


def test_crop_to_ink_box_and_levels() -> None:
    page = np.full((50, 60), 55, np.uint8)  # grey paper after inversion
    page[10:30, 20:25] = 205  # ink
    page[15, 22] = 55  # a hole in the ink: paper level must map to 0
    page[40, 50] = 70  # faint noise, below the ink threshold: must not widen the box
    box = crop_to_ink(page)
    assert box is not None and box.shape == (20, 5)
    assert box.dtype == np.float32 and box.min() == 0.0 and box.max() == 255.0


@pytest.mark.parametrize("noise", [0, 3, 30])
def test_blank_or_noise_only_is_no_ink(noise: int) -> None:
    rng = np.random.default_rng(0)
    page = rng.integers(0, noise + 1, size=(40, 40)).astype(np.uint8)
    assert crop_to_ink(page) is None
    assert prepare_array(255 - page) is None


# ---- step 4: fit into 20x20 keeping the aspect ratio ----------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"), [((100, 50), (20, 10)), ((7, 3), (20, 9)), ((5, 5), (20, 20))]
)
def test_fit_box_keeps_aspect(shape: tuple[int, int], expected: tuple[int, int]) -> None:
    out = fit_box(np.full(shape, 255.0, np.float32))
    assert out.shape == expected
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_fit_box_thin_line_keeps_one_pixel() -> None:
    assert fit_box(np.full((300, 1), 255.0, np.float32)).shape == (20, 1)


# ---- step 5: centre by mass in 28x28 ---------------------------------------------------


def test_centre_by_mass_puts_mass_at_14() -> None:
    digit = np.zeros((20, 12), np.float32)
    digit[:, :4] = 255.0  # an 'L': its centre of mass is low and left in its box
    digit[16:, :] = 255.0
    out = centre_by_mass(digit)
    assert out.shape == (28, 28)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out.sum() == digit.sum()


def test_centre_by_mass_never_drops_ink() -> None:
    digit = np.zeros((20, 20), np.float32)
    digit[0, 0] = 255.0  # all the mass in one corner would need a shift off the field
    out = centre_by_mass(digit)
    assert out.sum() == digit.sum()


# ---- steps 1-6 together -----------------------------------------------------------------


def test_prepare_off_centre_digit_on_transparent_canvas(tmp_path: Path) -> None:
    page = digit_canvas(height=97, width=131, top=50, left=95)  # odd size, far off-centre
    rgba = np.zeros((*page.shape, 4), np.uint8)
    rgba[..., 3] = 255 - page  # black ink on a transparent layer
    Image.fromarray(rgba, "RGBA").save(tmp_path / "digit.png")
    x = prepare_image(tmp_path / "digit.png")
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)
    cy, cx = centre_of_mass(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    rows = np.flatnonzero(x.any(axis=1))
    cols = np.flatnonzero(x.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert height == 20 and width == 12  # 40 x 24 scaled by 20/40


def test_mnist_shaped_digit_is_only_translated() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 9:19] = 255  # a 20x10 bilevel box, already MNIST-sized
    digit[8:20, 12:16] = 0  # a hole, to see that nothing is resampled
    x = prepare_array(digit)
    assert x is not None
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    box = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert np.array_equal(box, digit[4:24, 9:19] / np.float32(255))
    cy, cx = centre_of_mass(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".gif", ".tiff", ".webp"])
def test_supported_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"digit{suffix}"
    Image.fromarray(digit_canvas()).save(path)
    x = prepare_image(path)
    assert x.shape == (28, 28) and x.max() > 0.9


# ---- bad files ----------------------------------------------------------------------------


def huge_png_header(path: Path, side: int = 100_000) -> None:
    """A PNG whose header claims side x side pixels (no pixel data): a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def write_bad_files(d: Path) -> dict[str, str]:
    """Bad inputs, and a word their one-line message must contain."""
    (d / "text.png").write_text("this is not a picture\n")
    (d / "empty.png").write_bytes(b"")
    Image.new("RGB", (50, 40), "white").save(d / "blank.png")
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(d / "clear.png")  # transparent only
    (d / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (d / "notes.txt").write_text("7\n")
    Image.fromarray(digit_canvas()).save(d / "digit.ppm")  # an image, but not a format we take
    huge_png_header(d / "huge.png")
    good = d / "ok.png"
    Image.fromarray(digit_canvas()).save(good)
    (d / "cut.png").write_bytes(good.read_bytes()[:-60])  # truncated pixel data
    return {
        "text.png": "not a valid image",
        "empty.png": "empty file",
        "blank.png": "blank image",
        "clear.png": "blank image",
        "drawing.svg": "not a supported image (.svg)",
        "notes.txt": "not a supported image (.txt)",
        "digit.ppm": "unsupported image format PPM",
        "huge.png": "too large",
        "cut.png": "cannot decode",
    }


def test_each_bad_file_has_a_clear_error(tmp_path: Path) -> None:
    for name, word in write_bad_files(tmp_path).items():
        with pytest.raises(ImageError) as err:
            prepare_image(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(str(tmp_path / name)) and word in msg and "\n" not in msg, msg


def test_decompression_bomb_warning_range_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PIL raises above 2 * MAX_IMAGE_PIXELS and only warns between 1x and 2x; both refused.
    Image.fromarray(digit_canvas(40, 40, 2, 2)).save(tmp_path / "warn.png")  # 1600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large"):
        prepare_image(tmp_path / "warn.png")


def test_folder_expansion_sorted_and_skips_non_images(tmp_path: Path) -> None:
    for name in ("b.png", "A.JPG", "c.webp"):
        Image.fromarray(digit_canvas()).save(tmp_path / name)
    (tmp_path / "README.txt").write_text("skip me")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "empty").mkdir()
    files, failures = expand_inputs([tmp_path, tmp_path / "b.png", tmp_path / "empty"])
    assert [f.name for f in files] == ["A.JPG", "b.png", "c.webp"]
    assert len(failures) == 1 and "no image files" in failures[0][1]


def test_datamodule_prepares_images_for_predict(tmp_path: Path) -> None:
    for name in ("b.png", "a.png"):
        Image.fromarray(digit_canvas()).save(tmp_path / name)
    (tmp_path / "bad.png").write_text("not a picture")
    dm = MNISTDataModule(data_dir=str(tmp_path / "no-data"), images=[str(tmp_path)])
    dm.prepare_data()  # needs no dataset files
    dm.setup("predict")
    x, index = dm.tensors["images"]
    assert [Path(f).name for f in dm.image_files] == ["a.png", "b.png"]
    assert x.shape == (2, 1, 28, 28) and torch.equal(index, torch.arange(2))
    assert torch.equal(x[0, 0], torch.from_numpy(prepare_image(tmp_path / "a.png")))
    assert [Path(f).name for f, _ in dm.image_failures] == ["bad.png"]
    assert len(dm.predict_dataloader()) == 1
