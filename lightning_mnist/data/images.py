"""Users' own image files (``predict --data.images``) as 28x28 digits, prepared as MNIST was.

Inputs are files and folders. A folder contributes its image files (``IMAGE_SUFFIXES``, any
case), sorted by name, not recursive; its other files (notes, hidden files, an earlier
predictions.csv) are skipped. A file named explicitly is always tried, so a wrong one is
reported rather than skipped.

MNIST's digits (LeCun et al., http://yann.lecun.com/exdb/mnist/) are white ink on black,
size-normalised to fit a 20x20 box keeping their aspect ratio (anti-aliasing gives the grey
levels), then placed in a 28x28 field with their centre of mass at its centre: measured on
the training set, row/column index 14.0 +- 0.29. User images are usually the opposite (dark
ink on white paper or a transparent layer), any size, the digit anywhere; ``prepare_image``:

1. open with PIL (decompression-bomb limits kept), grayscale, alpha composited onto white;
2. invert if the background (the median of the border pixels) is light;
3. subtract the background level, stretch the ink to 255, crop to the ink's bounding box;
4. fit into 20x20 keeping the aspect ratio (antialiased resize, long side 20);
5. paste into 28x28 so the centre of mass lands on (14, 14);
6. divide by 255.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lightning_mnist.errors import UserError

# PIL format names we accept, and the file suffixes that go with them. GIF and TIFF may hold
# several frames; the first one is used.
SUPPORTED_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "BMP": (".bmp",)}
SUPPORTED_FORMATS |= {"GIF": (".gif",), "TIFF": (".tif", ".tiff"), "WEBP": (".webp",)}
IMAGE_SUFFIXES: frozenset[str] = frozenset(s for v in SUPPORTED_FORMATS.values() for s in v)

FIELD = 28  # MNIST image side
BOX = 20  # MNIST size-normalisation box
CENTRE = 14.0  # measured MNIST centre of mass (row and column index), see module docstring
# The background is "light" when the median border pixel is above mid-grey.
LIGHT_BACKGROUND = 127
# Ink must stand out from the background by this many grey levels, or the image is blank.
# It is above JPEG noise on a white page (a few levels) and below a faint pencil line.
MIN_CONTRAST = 40
# Pixels above background + this fraction of the ink contrast count as ink for the crop.
# MNIST's box is that of its sharp, bilevel NIST strokes. A user's strokes come blurred
# (camera, JPEG, upscaling) with a faint halo that must not widen the box, so the threshold
# sits between noise and the stroke edge (half contrast); faint strokes still count.
# Measured on 500 MNIST test digits upscaled 2-4x and re-prepared: mean |difference| from
# the originals is 0.027 at 0.25 against 0.029 at 0.1.
INK_FRACTION = 0.25
SUPPORTED_NAMES = ", ".join(SUPPORTED_FORMATS)


class ImageError(UserError):
    """An image file cannot be used; the message names the file and says what is wrong."""


def load_grayscale(path: str | Path) -> np.ndarray:
    """An image file as a uint8 (H, W) grayscale array, any alpha composited onto white;
    ``ImageError`` when it is missing, empty, not a decodable image, of an unsupported format,
    or over PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); pass a PNG or JPEG image")
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse both alike.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                if (fmt := img.format) in SUPPORTED_FORMATS:
                    img.seek(0)
                    return _to_gray(ImageOps.exif_transpose(img))  # phones rotate in EXIF
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                f"{path}: image too large (over {Image.MAX_IMAGE_PIXELS} pixels, PIL's "
                "decompression-bomb limit); scale it down first"
            ) from None
        except Image.UnidentifiedImageError:
            raise ImageError(_unidentified_message(path)) from None
        except Exception as e:  # noqa: BLE001 - decoders raise many types on corrupt files
            raise ImageError(f"{path}: cannot decode image ({e}); re-save it as PNG") from None
    raise ImageError(f"{path}: unsupported image format {fmt}; use one of {SUPPORTED_NAMES}")


def _unidentified_message(path: Path) -> str:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return f"{path}: not a valid image (PIL cannot identify it); re-save it as PNG"
    return f"{path}: not a supported image ({path.suffix or 'no suffix'}); use {SUPPORTED_NAMES}"


def _to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale uint8 array; transparency is composited onto white (the page a user drew on)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: PIL's convert("L") clips at 255 instead of scaling.
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        return np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
    if "A" in img.getbands() or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grayscale with the ink bright on a dark background, as in MNIST: inverted
    when the border is light."""
    return 255 - gray if _border_median(gray) > LIGHT_BACKGROUND else gray


def _border_median(img: np.ndarray) -> float:
    return float(np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])))


def crop_to_ink(img: np.ndarray) -> np.ndarray | None:
    """uint8 (H, W), ink bright on dark -> float32 (h, w) in [0, 255]: the background level
    removed, the ink stretched to 0..255 and cropped to its box; None when there is no ink."""
    bg, peak = _border_median(img), float(img.max())
    if peak - bg < MIN_CONTRAST:
        return None
    ink = img > bg + INK_FRACTION * (peak - bg)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    # Paper is rarely pure white and pens rarely pure black; MNIST's are 0 and 255.
    return np.clip((box - bg) * (255.0 / (peak - bg)), 0.0, 255.0)


def fit_box(ink: np.ndarray, box: int = BOX) -> np.ndarray:
    """float32 (h, w) in [0, 255] resized so the long side is ``box`` pixels, keeping the
    aspect ratio (antialiased)."""
    h, w = ink.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL takes (width, height)
    # Lanczos in PIL widens its kernel when shrinking, so it antialiases; clip its ringing.
    out = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32))
    out = out.resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 255.0)


def centre_by_mass(digit: np.ndarray, field: int = FIELD, centre: float = CENTRE) -> np.ndarray:
    """``digit`` (h, w at most ``field``) pasted into a ``field`` x ``field`` black square with
    its centre of mass at row and column ``centre``, shifted by whole pixels as in MNIST (and
    clamped so no ink falls off the field, which only matters for very lopsided shapes)."""
    h, w = digit.shape
    mass = float(digit.sum())
    cy = float((digit.sum(axis=1) * np.arange(h)).sum()) / mass
    cx = float((digit.sum(axis=0) * np.arange(w)).sum()) / mass
    # floor(v + 0.5), not round(): Python's round(4.5) == 4 but round(5.5) == 6.
    top = min(max(math.floor(centre - cy + 0.5), 0), field - h)
    left = min(max(math.floor(centre - cx + 0.5), 0), field - w)
    out = np.zeros((field, field), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return out


def prepare_array(gray: np.ndarray) -> np.ndarray | None:
    """Steps 2-6 on a uint8 (H, W) grayscale array, any background; None when it has no ink."""
    ink = crop_to_ink(ink_on_black(gray))
    if ink is None:
        return None
    digit = fit_box(ink)
    if digit.sum() <= 0:  # nothing survived the resize (cannot happen for real ink)
        return None
    return (centre_by_mass(digit) / 255.0).astype(np.float32)


def prepare_image(path: str | Path) -> np.ndarray:
    """An image file of one handwritten digit (any size and background) as an MNIST digit:
    float32 (28, 28) in [0, 1], white ink on black, centred by mass; ``ImageError`` when the
    file is not a usable image, or it is blank."""
    out = prepare_array(load_grayscale(path))
    if out is None:
        raise ImageError(f"{path}: blank image (no ink found); draw a digit on it")
    return out


def expand_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files and folders -> the files to prepare, in input order (folders sorted by
    name), and ``(input, message)`` for each input that failed."""
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [f for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
            found = [f for f in found if f.is_file() and not f.name.startswith(".")]
            if not found:
                suffixes = " ".join(sorted(IMAGE_SUFFIXES))
                failures.append((str(p), f"{p}: folder holds no image files ({suffixes})"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            failures.append((str(p), f"{p}: no such file or folder"))
    return list(dict.fromkeys(files)), failures  # a file given twice (or in a folder) runs once


def load_images(
    paths: Iterable[str | Path],
) -> tuple[list[Path], np.ndarray, list[tuple[str, str]]]:
    """Expand and prepare image files and folders: the good files, their (N, 28, 28) float32
    images in the same order, and ``(input, message)`` for each input that could not be used."""
    files, failures = expand_inputs(paths)
    good: list[Path] = []
    arrays: list[np.ndarray] = []
    for f in files:
        try:
            arrays.append(prepare_image(f))
            good.append(f)
        except ImageError as e:
            failures.append((str(f), str(e)))
    stack = np.stack(arrays) if arrays else np.zeros((0, FIELD, FIELD), np.float32)
    return good, stack, failures
