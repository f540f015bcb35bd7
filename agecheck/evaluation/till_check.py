"""The test photos as the till sees them: whole photos and synthetic till frames through :class:`Till`.

The number in the metrics should be the number a store gets. Each photo goes through the exact path of
``agecheck predict`` (find the faces, align the best one, estimate); a photo where no face is found is
still counted, estimated on its centre square, so every photo counts.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from agecheck.config import Params
from agecheck.data.images import read_photo
from agecheck.faces.alignment import face_input
from agecheck.faces.box import Box
from agecheck.faces.table import split_photos
from agecheck.model.age_model import AgeModel
from agecheck.till.pipeline import Till

FRAME_SIZE = (640, 480)
#: Side of the face box in a synthetic frame, pixels (a customer 0.5 to 2 m from a till camera).
FACE_SIDE = (80, 220)
FRAME_JPEG_QUALITY = 85
#: A detected box is the known face when they overlap by this much (intersection over union).
MATCH_IOU = 0.3


def _the_face(boxes: list[Box], truth: Box | None) -> int | None:
    """Index of the face to judge: the best one, or with ``truth`` (where the face is known to be) the
    box that overlaps it most, if by at least :data:`MATCH_IOU` (a box around someone else, even one
    that contains the face, is not the face); None when there is none."""
    if truth is None:
        return 0 if boxes else None
    overlaps = [(b.iou(truth), i) for i, b in enumerate(boxes)]
    best = max(overlaps, default=(0.0, None))
    return best[1] if best[0] >= MATCH_IOU else None


def till_ages(
    till: Till, photos: Iterable[tuple[Image.Image, Box | None]], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(face found, estimated age) per ``(photo, its face's box or None)``: the face found there (or
    the best face), or the photo's centre square when none is found, so every photo counts."""
    found, crops = [], []
    for photo, truth in photos:
        faces = till.crops(photo)
        index = _the_face(faces.boxes, truth)
        found.append(index is not None)
        if index is None:  # nothing found there: the centre square, without detecting a second time
            crops.append(face_input(photo, None, till.align, till.model.input_size)[np.newaxis])
        else:
            crops.append(faces.arrays[index : index + 1])
    ages = till.model.predict(np.concatenate(crops), batch_size) if crops else np.zeros(0)
    return np.array(found, dtype=bool), np.asarray(ages, dtype=float).reshape(-1)


def till_frame(
    photo: Image.Image, face: Box | None, background: Image.Image, rng: np.random.Generator
) -> tuple[Image.Image, Box]:
    """``photo`` scaled so its face box side is 80-220 px, at a random place in a 640x480 frame over
    a blurred ``background`` (another photo, whose own face the detector may find too), re-encoded as
    a JPEG like a camera frame; and where the pasted face is in the frame (the whole pasted photo
    when ``face`` is None)."""
    side = face.side if face is not None else min(photo.size)
    scale = rng.uniform(*FACE_SIDE) / side
    width, height = (max(1, round(s * scale)) for s in photo.size)
    if max(width / FRAME_SIZE[0], height / FRAME_SIZE[1]) > 1:  # a photo larger than the frame: fit it
        fit = min(FRAME_SIZE[0] / width, FRAME_SIZE[1] / height)
        width, height = max(1, int(width * fit)), max(1, int(height * fit))
    frame = background.convert("RGB").resize(FRAME_SIZE, Image.Resampling.BILINEAR)
    frame = frame.filter(ImageFilter.GaussianBlur(8))
    left = int(rng.integers(0, FRAME_SIZE[0] - width + 1))
    top = int(rng.integers(0, FRAME_SIZE[1] - height + 1))
    frame.paste(photo.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), (left, top))
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", quality=FRAME_JPEG_QUALITY)
    sx, sy = width / photo.width, height / photo.height
    known = face if face is not None else Box(0.0, 0.0, photo.width, photo.height, 1.0)
    where = Box(left + known.left * sx, top + known.top * sy, known.width * sx, known.height * sy, 1.0)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), where


def till_summary(
    table: pd.DataFrame, found: np.ndarray, ages: np.ndarray, crop_ages: np.ndarray
) -> dict[str, Any]:
    """Faces found, and MAE through the till beside MAE on the pipeline's crops, overall and per source."""
    result = table[["source", "age"]].assign(found=found, till=ages, crops=crop_ages)

    def summary(rows: pd.DataFrame) -> dict[str, Any]:
        return {
            "photos": len(rows),
            "faces_found": round(float(rows["found"].mean()), 4),
            "mae": round(float((rows["till"] - rows["age"]).abs().mean()), 3),
            "mae_crops": round(float((rows["crops"] - rows["age"]).abs().mean()), 3),
        }

    out = summary(result)
    if result["source"].nunique() > 1:
        out["by_source"] = {name: summary(rows) for name, rows in result.groupby("source")}
    return out


def till_metrics(
    model: AgeModel, params: Params, table: pd.DataFrame, faces: dict[str, Box | None], shards: Path
) -> dict[str, Any]:
    """Whole photos and till frames of a split's photos through the till, beside their crops' MAE.

    ``table`` is the split's table with the crops' estimates in ``predicted``; ``evaluate.*`` says
    where the whole photos are and whether to make frames (backgrounds: other photos of ``table``).
    """
    cfg, till, out = params.evaluate, Till.from_params(model, params), {}
    crop_ages = table.set_index("id")["predicted"]
    if cfg.whole_photos:
        rows, paths = whole_photos(table[table["source"] == cfg.whole_source], Path(cfg.whole_photos))
        print(f"evaluate: {len(rows)} whole {cfg.whole_source} photos through the till")
        found, ages = till_ages(
            till, ((read_photo(p, params.validate_), None) for p in paths), cfg.batch_size
        )
        out["whole_photos"] = till_summary(rows, found, ages, crop_ages.loc[rows["id"]].to_numpy())
    if cfg.frames:
        print(f"evaluate: {len(table)} photos in synthetic till frames")
        by_member = dict(split_photos(table, shards))
        rng = np.random.default_rng(cfg.seed)
        members = list(table["member"])
        backgrounds = rng.permutation(len(members))
        frames = (
            till_frame(by_member[m], faces[m], by_member[members[backgrounds[i]]], rng)
            for i, m in enumerate(members)
        )
        found, ages = till_ages(till, frames, cfg.batch_size)
        out["frames"] = till_summary(table, found, ages, crop_ages.loc[table["id"]].to_numpy())
    return out


def whole_photos(table: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, list[Path]]:
    """The rows of ``table`` whose whole photo (same file name) is in ``folder/final_files``."""
    paths = [folder / "final_files" / name for name in table["file_name"]]
    keep = np.array([p.is_file() for p in paths], dtype=bool)
    return table[keep].reset_index(drop=True), [p for p, k in zip(paths, keep, strict=True) if k]
