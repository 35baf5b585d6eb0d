"""Users' own image files (``predict --data.images``) prepared as MNIST's digits were.

MNIST's digits (LeCun et al., http://yann.lecun.com/exdb/mnist/) are white ink on black,
size-normalised into a 20x20 box keeping their aspect ratio, then placed in a 28x28 field with
their centre of mass at its centre (measured on the training set: row/column 14.0 +- 0.29).
User images are usually dark ink on light paper, any size, the digit anywhere: ``prepare_image``
inverts, crops, fits and centres them the same way.
"""

import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lightning_mnist.errors import UserError

# PIL format names we accept and their file suffixes; of a GIF or TIFF the first frame is used.
SUPPORTED_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "BMP": (".bmp",)}
SUPPORTED_FORMATS |= {"GIF": (".gif",), "TIFF": (".tif", ".tiff"), "WEBP": (".webp",)}
IMAGE_SUFFIXES: frozenset[str] = frozenset(s for v in SUPPORTED_FORMATS.values() for s in v)
SUPPORTED_NAMES = ", ".join(SUPPORTED_FORMATS)
Failures = list[tuple[str, str]]  # (input, message) for each input that could not be used

FIELD = 28  # MNIST image side
BOX = 20  # MNIST size-normalisation box
CENTRE = 14.0  # measured MNIST centre of mass (row and column index)
LIGHT_BACKGROUND = 127  # the background is light when its median border pixel is above this
# Ink must stand out from the background by this many grey levels, or the image is blank:
# above JPEG noise on a white page, below a faint pencil line.
MIN_CONTRAST = 40
# Pixels above background + this share of the ink contrast are ink for the crop: MNIST's box
# is that of sharp strokes, and a user's blurred ones have a halo that must not widen it. Mean
# |difference| on 500 MNIST test digits upscaled 2-4x and re-prepared: 0.027 at 0.25, 0.029 at 0.1.
INK_FRACTION = 0.25


class ImageError(UserError):
    """An image file cannot be used; the message names the file and says what is wrong."""


def load_grayscale(path: str | Path) -> np.ndarray:
    """An image file as a uint8 (H, W) grayscale array, any alpha composited onto white;
    ``ImageError`` when it is missing, empty, undecodable, unsupported or too large."""
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
    """Grayscale uint8; transparency is composited onto white (the page a user drew on)."""
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
    """uint8 (H, W) with the ink bright on dark, as in MNIST: inverted when the border is light."""
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
    """float32 (h, w) in [0, 255] resized, antialiased, to a long side of ``box`` pixels."""
    h, w = ink.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL takes (width, height)
    # Lanczos in PIL widens its kernel when shrinking, so it antialiases; clip its ringing.
    out = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32))
    out = out.resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 255.0)


def centre_by_mass(digit: np.ndarray, field: int = FIELD, centre: float = CENTRE) -> np.ndarray:
    """``digit`` (h, w at most ``field``) pasted into a black ``field`` x ``field`` square with
    its centre of mass at (``centre``, ``centre``), shifted by whole pixels as in MNIST and
    clamped so that no ink falls off."""
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
    """A uint8 (H, W) grayscale array, any background, as an MNIST digit; None with no ink."""
    ink = crop_to_ink(ink_on_black(gray))
    if ink is None:
        return None
    digit = fit_box(ink)
    if digit.sum() <= 0:  # nothing survived the resize (cannot happen for real ink)
        return None
    return (centre_by_mass(digit) / 255.0).astype(np.float32)


def prepare_image(path: str | Path) -> np.ndarray:
    """An image file of one digit as an MNIST digit: float32 (28, 28) in [0, 1], white ink on
    black, centred by mass; ``ImageError`` when it is not a usable image, or blank."""
    out = prepare_array(load_grayscale(path))
    if out is None:
        raise ImageError(f"{path}: blank image (no ink found); draw a digit on it")
    return out


def expand_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], Failures]:
    """Image files and folders -> the files to prepare, in input order, and the inputs that
    failed. A folder gives its image files (not hidden ones) sorted by name, not recursively;
    a file named explicitly is always tried, so a wrong one is reported rather than skipped."""
    files: list[Path] = []
    failures: Failures = []
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


def load_images(paths: Iterable[str | Path]) -> tuple[list[Path], np.ndarray, Failures]:
    """The good files of ``expand_inputs(paths)``, their (N, 28, 28) float32 images, and the
    inputs that could not be used."""
    files, failures = expand_inputs(paths)
    good, arrays = [], []
    for f in files:
        try:
            arrays.append(prepare_image(f))
            good.append(f)
        except ImageError as e:
            failures.append((str(f), str(e)))
    stack = np.stack(arrays) if arrays else np.zeros((0, FIELD, FIELD), np.float32)
    return good, stack, failures
