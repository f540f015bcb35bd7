"""The faces table (stage faces, :mod:`agecheck.faces.find`): its rows, reading it, and cutting from
it what the model sees of every photo of a split.

One row per photo of ``data/validated``: box, score and keypoints in the validated photo's pixels, or
``found`` false (the photo is then cut as its centre square, see :func:`agecheck.faces.alignment.face_input`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from agecheck.config import AlignConfig
from agecheck.data.shards import iter_shard
from agecheck.errors import AgecheckError
from agecheck.faces.alignment import face_input
from agecheck.faces.box import KEYPOINTS, Box

BOX_COLUMNS = ("left", "top", "width", "height")
KEYPOINT_COLUMNS = tuple(f"{name}_{axis}" for name in KEYPOINTS for axis in "xy")
COLUMNS = ("member", "source", "found", "score", *BOX_COLUMNS, *KEYPOINT_COLUMNS)


def face_row(member: str, source: str, box: Box | None) -> dict[str, Any]:
    """One row of the table (coordinates rounded to 0.01 px)."""
    row: dict[str, Any] = {"member": member, "source": source, "found": box is not None}
    if box is not None:
        row["score"] = round(box.score, 4)
        row.update(
            {
                k: round(v, 2)
                for k, v in zip(BOX_COLUMNS, (box.left, box.top, box.width, box.height), strict=True)
            }
        )
        row.update({k: round(v, 2) for k, v in zip(KEYPOINT_COLUMNS, np.ravel(box.keypoints), strict=True)})
    return row


def box_from_row(row: dict[str, Any]) -> Box | None:
    """The :class:`Box` of a table row, ``None`` where no face was found."""
    if not row["found"]:
        return None
    points = [float(row[k]) for k in KEYPOINT_COLUMNS]
    keypoints = tuple(zip(points[0::2], points[1::2], strict=True))
    return Box(*(float(row[k]) for k in BOX_COLUMNS), float(row["score"]), keypoints)


def read_faces(path: Path) -> dict[str, Box | None]:
    """The faces table at ``path`` as ``{member: Box or None}``."""
    if not path.is_file():
        raise AgecheckError(f"{path} is missing: run the faces stage first (dvc repro faces)")
    table = pd.read_csv(path, dtype={"member": str, "source": str})
    return {row["member"]: box_from_row(row) for row in table.to_dict("records")}


def split_photos(table: pd.DataFrame, shards_dir: Path) -> Iterator[tuple[str, Image.Image]]:
    """``(member, photo)`` for the rows of a split table, in shard order (each shard read once)."""
    wanted = set(table["member"])
    for shard in sorted(set(table["shard"])):
        for member, data in iter_shard(shards_dir / shard):
            if member in wanted:
                yield member, Image.open(io.BytesIO(data))


def model_inputs(
    table: pd.DataFrame, shards_dir: Path, faces: dict[str, Box | None], align: AlignConfig, size: int
) -> np.ndarray:
    """What the model sees of every row of a split table, in its order (uint8, N x S x S x 3)."""
    position = {member: i for i, member in enumerate(table["member"])}
    images = np.zeros((len(table), size, size, 3), dtype=np.uint8)
    found = 0
    with tqdm(total=len(table), desc=f"align {size}px faces", unit="photo", mininterval=10) as bar:
        for member, image in split_photos(table, shards_dir):
            if member not in faces:
                raise AgecheckError(f"{member} is not in the faces table: run the faces stage (dvc repro)")
            images[position[member]] = face_input(image, faces[member], align, size)
            found += 1
            bar.update()
    if found != len(table):
        raise AgecheckError(f"{len(table) - found} photos of the table are missing from {shards_dir}")
    return images
