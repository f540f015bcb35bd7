"""Decoding and normalizing photos: EXIF orientation, colour mode, integrity and size checks."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from agecheck.config import PhotoLimits

#: Decompression bombs are refused by :func:`check_size` from the header, before any pixel is decoded,
#: under the caller's ``max_pixels``, and reported as ``too_large`` with their size. PIL's own guard
#: stays as a backstop, far above any ``max_pixels`` so that ours speaks first (it raises at twice this).
Image.MAX_IMAGE_PIXELS = 1_000_000_000
#: The only decoders that see a photo. Some others (ICO, ICNS) decode embedded images while merely
#: opening the file, before its size can be checked.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class NormalizedPhoto:
    """An upright RGB photo and what was done to get it."""

    image: Image.Image
    original_mode: str
    original_format: str
    exif_orientation: int
    grayscale: bool
    pixel_hash: str


class PhotoRejected(Exception):
    """A photo that cannot be used; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_size(width: int, height: int, limits: PhotoLimits) -> None:
    """Refuse, from the header's size alone, bombs (``too_large``), slivers and strips."""
    if width * height > limits.max_pixels:
        raise PhotoRejected(
            "too_large", f"{width}x{height} = {width * height:,} pixels > {limits.max_pixels:,}"
        )
    if min(width, height) < limits.min_side:
        raise PhotoRejected("too_small", f"{width}x{height} < {limits.min_side} px")
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect:
        raise PhotoRejected("bad_aspect", f"{width}x{height}: {aspect:.1f}:1 > {limits.max_aspect:g}:1")


def open_photo(data: bytes, limits: PhotoLimits, formats: tuple[str, ...] = PHOTO_FORMATS) -> Image.Image:
    """Open ``data`` (its header only: no pixel decoded yet) with ``formats``' decoders alone, and
    refuse it by its size. Unreadable headers raise Pillow's own errors, for the caller to name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise PhotoRejected("not_an_image", f"not a readable {', '.join(formats)} image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise PhotoRejected("too_large", str(err)) from None
    check_size(*image.size, limits)
    return image


def _open_checked(data: bytes, limits: PhotoLimits) -> Image.Image:
    """Open and fully decode ``data``, enforcing the size limits before decoding pixels."""
    if len(data) == 0:
        raise PhotoRejected("empty_file")
    if len(data) > limits.max_bytes:
        raise PhotoRejected("too_large", f"{len(data)} bytes > {limits.max_bytes}")
    try:
        image = open_photo(data, limits)
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoRejected("corrupt", str(err)) from None
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels are composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def is_grayscale(image: Image.Image, original_mode: str) -> bool:
    """True for single-channel modes and for colour photos whose channels are all equal."""
    if original_mode in GRAYSCALE_MODES:
        return True
    array = np.asarray(image)
    return bool(np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]))


def normalize_photo(data: bytes, limits: PhotoLimits, max_side: int = 0) -> NormalizedPhoto:
    """Decode ``data`` and return it upright, in RGB, optionally shrunk to ``max_side`` pixels.

    Raises :class:`PhotoRejected` when the photo is unusable.
    """
    image = _open_checked(data, limits)
    original_mode, original_format = image.mode, image.format or "unknown"
    try:
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, not fatal
        orientation = 1
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception as err:  # noqa: BLE001 - Pillow raises several types for broken EXIF
        raise PhotoRejected("corrupt", f"EXIF orientation could not be applied: {err}") from None
    rgb = _to_rgb(upright)
    if max_side and max(rgb.size) > max_side:
        rgb = ImageOps.contain(rgb, (max_side, max_side), Image.Resampling.LANCZOS)
    pixel_hash = hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()
    return NormalizedPhoto(
        image=rgb,
        original_mode=original_mode,
        original_format=original_format,
        exif_orientation=orientation if orientation in range(1, 9) else 1,
        grayscale=is_grayscale(rgb, original_mode),
        pixel_hash=pixel_hash,
    )


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """Encode an RGB image as a baseline JPEG without metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def read_photo(path: str | Path, limits: PhotoLimits) -> Image.Image:
    """Read a photo from disk as an upright RGB image (raises :class:`PhotoRejected`)."""
    path = Path(path)
    if not path.exists():
        raise PhotoRejected("file_missing", str(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PhotoRejected("unreadable", str(err)) from None
    return normalize_photo(data, limits).image


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop ``image`` to a square and resize it to ``size`` x ``size``: uint8 HxWx3."""
    image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def mirror(images: np.ndarray) -> np.ndarray:
    """Left-right mirror images of a batch N x H x W x C (a view, no copy)."""
    return images[:, :, ::-1]
