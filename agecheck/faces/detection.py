"""Finding faces in a photo: BlazeFace boxes in pixels, best first.

The detector is MediaPipe's BlazeFace: its ``.tflite`` models ship in this package
(``agecheck/faces/blazeface/``, Apache-2.0; ``NOTICE`` there says where they come from), so any
install of agecheck has a working detector, and they run on the LiteRT interpreter
(``ai-edge-litert``, or TensorFlow's own ``tf.lite.Interpreter`` when that is missing). The decoding
below follows MediaPipe's ``face_detection_*_range_common.pbtxt``.

Why BlazeFace: it is a small CNN (128 or 192 px input, 4-8 ms per 640 x 480 frame on one CPU
core here, against about 50 ms for OpenCV's Haar cascade) trained on real camera photos, so it
copes better with turned heads, uneven lighting and cluttered backgrounds. The default variant,
``full_sparse``, also finds the small faces (60-90 px in a 640 x 480 frame) of a customer a metre
or two from a till camera, which the ``short`` variant misses. ``docs/serving.md`` has the
measured numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from agecheck.config import DetectConfig
from agecheck.errors import AgecheckError
from agecheck.faces.box import KEYPOINTS, Box, box_iou
from agecheck.model.runtimes import litert_interpreter

#: BlazeFace variants: input side, anchor layout (strides, anchors per cell), file name.
MODELS: dict[str, tuple[int, tuple[int, ...], int, str]] = {
    # faces within about 2 m of the camera (selfie / till distance)
    "short": (128, (8, 16, 16, 16), 2, "face_detection_short_range.tflite"),
    # faces up to about 5 m away (smaller in the frame), about 2x slower; sparse: the same, pruned
    "full": (192, (4,), 1, "face_detection_full_range.tflite"),
    "full_sparse": (192, (4,), 1, "face_detection_full_range_sparse.tflite"),
}
#: Where the BlazeFace models are (package data, see ``NOTICE`` there).
BLAZEFACE_DIR = Path(__file__).resolve().with_name("blazeface")
#: MediaPipe clips raw scores to this before the sigmoid.
RAW_SCORE_LIMIT = 80.0
#: Tile boxes this close to a tile edge inside the photo (share of the tile's short side) are dropped.
TILE_EDGE_MARGIN = 0.02


def detector_file(model: str) -> Path:
    """The ``.tflite`` file of BlazeFace variant ``model`` (``detect.model``), shipped in this package
    (no download, no other package); ``agecheck export`` copies it beside the exported model."""
    path = BLAZEFACE_DIR / MODELS[model][3]
    if not path.is_file():
        raise AgecheckError(f"the face detector file {path} is missing: reinstall agecheck")
    return path


def _anchors(size: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """Anchor centres (normalized x, y) in the order of the model's outputs (MediaPipe SSD)."""
    centres = []
    for index, stride in enumerate(strides):
        if index and stride == strides[index - 1]:
            continue  # layers of equal stride share one grid with their anchors repeated
        repeats = per_cell * strides.count(stride)
        cells = size // stride
        grid = (np.stack(np.meshgrid(np.arange(cells), np.arange(cells)), -1).reshape(-1, 2) + 0.5) / cells
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: overlapping boxes are averaged by score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept: list[tuple[np.ndarray, float]] = []
    remaining = np.ones(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if not remaining[i]:
            continue
        overlap = remaining & (box_iou(boxes[i], boxes) > iou)
        overlap[i] = True
        weights = scores[overlap]
        kept.append(((boxes[overlap] * weights[:, None]).sum(0) / weights.sum(), float(scores[i])))
        remaining &= ~overlap
    return kept


class FaceDetector:
    """BlazeFace on a LiteRT interpreter; ``detect`` returns face boxes in pixels, best first.

    Not thread-safe (one interpreter): give each thread its own detector, or serialize calls.
    """

    def __init__(self, config: DetectConfig, threads: int = 1) -> None:
        self.config = config
        self.size, strides, per_cell, _ = MODELS[self.config.model]
        self.anchors = _anchors(self.size, strides, per_cell)
        self.interpreter = litert_interpreter(detector_file(self.config.model), threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        # outputs: boxes + keypoints (N x 16) and scores (N x 1); their names differ between models
        outputs = {int(d["shape"][-1]): d["index"] for d in self.interpreter.get_output_details()}
        self.boxes_index, self.scores_index = outputs[16], outputs[1]

    def _letterbox(self, image: Image.Image) -> tuple[np.ndarray, float, int, int]:
        """The image shrunk to fit the input square (padded with zeros), in -1..1."""
        width, height = image.size
        scale = self.size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = np.asarray(image.convert("RGB").resize((new_w, new_h), Image.Resampling.BILINEAR))
        pad_x, pad_y = (self.size - new_w) // 2, (self.size - new_h) // 2
        tensor = np.zeros((self.size, self.size, 3), dtype=np.float32)
        tensor[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = small / 127.5 - 1.0
        return tensor, scale, pad_x, pad_y

    def detect(self, image: Image.Image) -> list[Box]:
        """Faces in ``image`` (any size, RGB), best score first, at most ``max_faces``.

        Where none is found, looks again with a black border of ``retry_padding`` x the long side on
        every side: BlazeFace misses most faces that fill the whole photo (a passport-style crop).
        """
        boxes = self._find(image)
        border = round(self.config.retry_padding * max(image.size))
        if boxes or not border:
            return boxes
        canvas = Image.new("RGB", (image.width + 2 * border, image.height + 2 * border))
        canvas.paste(image.convert("RGB"), (border, border))
        return [_shifted(box, -border) for box in self._find(canvas)]

    def _find(self, image: Image.Image) -> list[Box]:
        """The whole photo, and the tiles of a large one, in one weighted NMS.

        The detector sees a 640 x 480 frame shrunk to 192 px, where a face of 80-110 px is 25-35 px:
        found over a plain wall, but missed beside a large face or busy background. Overlapping tiles
        (``detect.tiles`` per side, each 2/(tiles+1) of the photo) see it 1.5x larger.
        """
        candidates = [self._candidates(image)]
        for left, top, tile in self._tiles(image):
            rows, scores = self._candidates(tile)
            inside = _clear_of_inner_edges(rows, (left, top, *tile.size), image.size)
            candidates.append((rows[inside] + np.tile([left, top], rows.shape[1] // 2), scores[inside]))
        rows = np.concatenate([c[0] for c in candidates])
        scores = np.concatenate([c[1] for c in candidates])
        boxes = []
        for row, score in weighted_nms(rows, scores, self.config.nms_iou):
            x0, y0, x1, y1 = (float(v) for v in row[:4])
            keypoints = tuple((float(x), float(y)) for x, y in zip(row[4::2], row[5::2], strict=True))
            box = Box(x0, y0, x1 - x0, y1 - y0, score, keypoints)
            if box.side >= self.config.min_face:
                boxes.append(box)
        return boxes[: self.config.max_faces]

    def _tiles(self, image: Image.Image) -> Iterator[tuple[int, int, Image.Image]]:
        """``(left, top, tile)`` of the overlapping tiles of a photo at least twice the detector's
        input side (smaller photos are not shrunk enough to lose faces); none with ``tiles`` 1."""
        grid, (width, height) = self.config.tiles, image.size
        if grid < 2 or max(width, height) < 2 * self.size:
            return
        tile_w, tile_h = round(2 * width / (grid + 1)), round(2 * height / (grid + 1))
        for row in range(grid):
            for column in range(grid):
                left, top = round(column * tile_w / 2), round(row * tile_h / 2)
                yield left, top, image.crop((left, top, left + tile_w, top + tile_h))

    def _candidates(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Every anchor's box over ``min_score``: rows ``x0, y0, x1, y1`` then the keypoints' ``x, y``,
        in pixels of ``image``, and their scores."""
        tensor, scale, pad_x, pad_y = self._letterbox(image)
        self.interpreter.set_tensor(self.input_index, tensor[np.newaxis])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.boxes_index)[0]
        logits = np.clip(self.interpreter.get_tensor(self.scores_index)[0, :, 0], -RAW_SCORE_LIMIT, None)
        scores = 1.0 / (1.0 + np.exp(-np.minimum(logits, RAW_SCORE_LIMIT)))
        keep = scores >= self.config.min_score
        anchors = np.tile(self.anchors[keep], len(KEYPOINTS) + 1)  # (x, y) per box centre and keypoint
        points = raw[keep][:, [0, 1, *range(4, 16)]] / self.size + anchors
        half = raw[keep, 2:4] / self.size / 2
        rows = np.concatenate([points[:, :2] - half, points[:, :2] + half, points[:, 2:]], axis=1) * self.size
        rows = (rows - np.tile([pad_x, pad_y], rows.shape[1] // 2)) / scale
        return rows.astype(np.float64), scores[keep].astype(np.float64)


def _clear_of_inner_edges(
    rows: np.ndarray, tile: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """Which boxes (rows of :meth:`FaceDetector._candidates`, tile pixels) keep clear of the tile's
    edges inside the photo: a face cut by such an edge is whole in a neighbouring tile or the photo."""
    left, top, width, height = tile
    margin = TILE_EDGE_MARGIN * min(width, height)
    keep = np.ones(len(rows), dtype=bool)
    if left > 0:
        keep &= rows[:, 0] > margin
    if top > 0:
        keep &= rows[:, 1] > margin
    if left + width < size[0]:
        keep &= rows[:, 2] < width - margin
    if top + height < size[1]:
        keep &= rows[:, 3] < height - margin
    return keep


def _shifted(box: Box, offset: float) -> Box:
    """``box`` with every coordinate moved by ``offset`` pixels in x and y."""
    points = tuple((x + offset, y + offset) for x, y in box.keypoints)
    return Box(box.left + offset, box.top + offset, box.width, box.height, box.score, points)
