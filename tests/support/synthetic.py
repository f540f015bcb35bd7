"""Generated photos and photo folders for the tests (no real faces anywhere)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.cartoon import SKINS, draw_cartoon_face, till_frame  # noqa: F401 - for the tests

RNG = np.random.default_rng(0)


def face_like(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """A colourful RGB picture (gradient + noise + an ellipse), distinct for each seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), np.full_like(x, 128)], -1)
    noisy = base + rng.normal(0, 25, size=(height, width, 3))
    inside = ((x - width / 2) / (width / 3)) ** 2 + ((y - height / 2) / (height / 2.5)) ** 2 < 1
    noisy[inside] = noisy[inside] * 0.5 + np.array([220, 180, 150]) * 0.5
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's front)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(seed: int = 1) -> bytes:
    """A 80x40 stored picture tagged orientation 6: it should display as 40x80 (portrait)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(face_like(80, 40, seed), exif=exif.tobytes())


def write_source(folder: Path, photos: dict[str, bytes], label_lines: list[str], header: str = "") -> Path:
    """Create ``folder/final_files/*`` and ``folder/labels.csv``."""
    (folder / "final_files").mkdir(parents=True, exist_ok=True)
    for name, data in photos.items():
        (folder / "final_files" / name).write_bytes(data)
    text = (header or "file_name,real_age,gender") + "\n" + "\n".join(label_lines) + "\n"
    (folder / "labels.csv").write_text(text, encoding="utf-8")
    return folder


def messy_photos() -> tuple[dict[str, bytes], list[str]]:
    """Photos and label rows covering every validation rule; see EXPECTED_* below."""
    dup = jpeg_bytes(face_like(seed=7))
    conflict = png_bytes(face_like(seed=8))
    gray = face_like(seed=9).convert("L")
    good = jpeg_bytes(face_like(seed=10))
    photos = {
        "ok.jpg": good,
        "age_float.jpg": jpeg_bytes(face_like(seed=11)),
        "rotated.jpg": exif_rotated_jpeg(),
        "gray_l.jpg": jpeg_bytes(gray),
        "gray_rgb.jpg": jpeg_bytes(face_like(seed=21).convert("L").convert("RGB")),
        "cmyk.jpg": jpeg_bytes(face_like(seed=12).convert("CMYK")),
        "rgba.png": png_bytes(face_like(seed=13).convert("RGBA")),
        "palette.png": png_bytes(face_like(seed=14).convert("P")),
        "truncated.jpg": jpeg_bytes(face_like(128, 128, seed=15))[:1500],
        "tiny.jpg": jpeg_bytes(face_like(12, 12, seed=16)),
        "text.jpg": b"this is not a photo\n",
        "strip.jpg": jpeg_bytes(face_like(2000, 60, seed=22)),
        "bomb.png": png_bomb(30000, 30000),
        "dup_a.jpg": dup,
        "dup_b.jpg": dup,
        "conflict_a.png": conflict,
        "conflict_b.png": conflict,
        "unlabelled.jpg": jpeg_bytes(face_like(seed=17)),
        "bad_age.jpg": jpeg_bytes(face_like(seed=18)),
        "twice_same.jpg": jpeg_bytes(face_like(seed=19)),
        "twice_diff.jpg": jpeg_bytes(face_like(seed=20)),
    }
    rows = [
        "ok.jpg,30,female",
        "age_float.jpg,25.0,male",
        "rotated.jpg,41,male",
        "gray_l.jpg,8,female",
        "gray_rgb.jpg,70,male",
        "cmyk.jpg,17,female",
        "rgba.png,22,male",
        "palette.png,55,female",
        "truncated.jpg,33,male",
        "tiny.jpg,44,male",
        "text.jpg,50,female",
        "strip.jpg,30,male",
        "bomb.png,30,male",
        "dup_a.jpg,19,male",
        "dup_b.jpg,19,male",
        "conflict_a.png,20,female",
        "conflict_b.png,60,female",
        "bad_age.jpg,-3,male",
        "missing.jpg,35,male",
        "empty_age.jpg,,male",
        "half.jpg,25.5,male",
        "word.jpg,abc,male",
        "old.jpg,200,male",
        "../escape.jpg,30,male",
        "/etc/passwd,30,male",
        "twice_same.jpg,12,female",
        "twice_same.jpg,12,female",
        "twice_diff.jpg,12,female",
        "twice_diff.jpg,13,female",
    ]
    return photos, rows


EXPECTED_USABLE = {
    "ok.jpg",
    "age_float.jpg",
    "rotated.jpg",
    "gray_l.jpg",
    "gray_rgb.jpg",
    "cmyk.jpg",
    "rgba.png",
    "palette.png",
    "dup_a.jpg",
    "twice_same.jpg",
}
EXPECTED_PHOTO_REASONS = {
    "truncated.jpg": "corrupt",
    "tiny.jpg": "too_small",
    "text.jpg": "not_an_image",
    "strip.jpg": "bad_aspect",
    "bomb.png": "too_large",
    "dup_b.jpg": "duplicate_photo",
    "conflict_a.png": "conflicting_duplicate_photos",
    "conflict_b.png": "conflicting_duplicate_photos",
    "unlabelled.jpg": "no_label",
    "bad_age.jpg": "no_valid_label",
    "twice_diff.jpg": "no_valid_label",
}
EXPECTED_ROW_REASONS = {
    "bad_age.jpg": {"age_out_of_range"},
    "missing.jpg": {"file_missing"},
    "empty_age.jpg": {"age_missing"},
    "half.jpg": {"age_not_whole_number"},
    "word.jpg": {"age_not_whole_number"},
    "old.jpg": {"age_out_of_range"},
    "../escape.jpg": {"unsafe_file_name"},
    "/etc/passwd": {"unsafe_file_name"},
    "twice_same.jpg": {"duplicate_label_row"},
    "twice_diff.jpg": {"conflicting_label_rows"},
    "truncated.jpg": {"photo_rejected"},
    "tiny.jpg": {"photo_rejected"},
    "text.jpg": {"photo_rejected"},
    "strip.jpg": {"photo_rejected"},
    "bomb.png": {"photo_rejected"},
    "dup_b.jpg": {"photo_rejected"},
    "conflict_a.png": {"photo_rejected"},
    "conflict_b.png": {"photo_rejected"},
}
