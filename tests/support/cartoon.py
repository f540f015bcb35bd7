"""Generated till frames: cartoon faces that BlazeFace finds, with no photo of a real face anywhere.

For what must run without the research photos: the tests, ``benchmarks/latency.py``, and trying
``agecheck predict`` or ``agecheck serve`` on a fresh machine.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKINS = ((224, 172, 140), (200, 150, 110), (150, 105, 75))


def draw_cartoon_face(
    frame: Image.Image, left: int, top: int, size: int, skin: tuple[int, int, int] = SKINS[0]
) -> None:
    """Draw a simple high-contrast face (hair, eyes, brows, nose, mouth, neck) in a size x size box."""
    draw = ImageDraw.Draw(frame)

    def at(x: float, y: float) -> tuple[float, float]:  # drawn on a 200 x 200 grid
        return left + x * size / 200, top + y * size / 200

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [*at(x0, y0), *at(x1, y1)]

    draw.ellipse(box(40, 10, 160, 120), fill=(60, 40, 30))  # hair
    draw.rectangle(box(70, 150, 130, 200), fill=skin)  # neck
    draw.ellipse(box(50, 30, 150, 170), fill=skin)
    for x in (78, 122):
        draw.ellipse(box(x - 11, 78, x + 11, 92), fill=(250, 250, 250))
        draw.ellipse(box(x - 5, 80, x + 5, 90), fill=(40, 30, 30))
        draw.line(box(x - 14, 68, x + 12, 66), fill=(60, 40, 30), width=max(1, size // 50))
    draw.polygon([at(100, 92), at(92, 122), at(108, 122)], fill=(200, 140, 115))  # nose
    draw.ellipse(box(82, 134, 118, 148), fill=(170, 80, 80))


def till_frame(
    faces: list[tuple[int, int, int]], width: int = 640, height: int = 480, seed: int = 0
) -> Image.Image:
    """A camera-like frame (noisy gradient background) with cartoon faces at ``(left, top, size)``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([x * 0.15 + 80, y * 0.15 + 90, np.full_like(x, 100)], -1)
    background = background + rng.normal(0, 8, size=(height, width, 3))
    frame = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    for i, (left, top, size) in enumerate(faces):
        draw_cartoon_face(frame, left, top, size, SKINS[i % len(SKINS)])
    return frame.filter(ImageFilter.GaussianBlur(1.2))
