"""Finding the best face in every usable photo once, with the till's detector (stage faces)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from tqdm import tqdm

from agecheck.config import DetectConfig
from agecheck.data.shards import iter_shard
from agecheck.faces.detection import FaceDetector
from agecheck.faces.table import COLUMNS, face_row


def _find_in_shard(task: tuple[Path, dict[str, str], DetectConfig]) -> list[dict[str, Any]]:
    """Rows for the wanted members of one shard (runs in a worker process with its own detector)."""
    path, sources, detect = task
    detector = FaceDetector(detect)
    rows = []
    for member, data in iter_shard(path):
        if member in sources:
            boxes = detector.detect(Image.open(io.BytesIO(data)).convert("RGB"))
            rows.append(face_row(member, sources[member], boxes[0] if boxes else None))
    return rows


def find_faces(
    photos: pd.DataFrame, shards_dir: Path, detect: DetectConfig, workers: int = 0
) -> pd.DataFrame:
    """The faces table of the rows of ``photos`` (``member``, ``source``, ``shard``), in their order."""
    sources = dict(zip(photos["member"], photos["source"], strict=True))
    tasks = [
        (shards_dir / shard, {m: sources[m] for m in group["member"]}, detect)
        for shard, group in photos.groupby("shard", sort=True)
    ]
    rows: list[dict[str, Any]] = []
    with (
        ProcessPoolExecutor(min(len(tasks), workers or os.cpu_count() or 1)) as pool,
        tqdm(total=len(photos), desc="faces", unit="photo", mininterval=10) as bar,
    ):
        for found in pool.map(_find_in_shard, tasks):
            rows += found
            bar.update(len(found))
    table = pd.DataFrame(rows, columns=list(COLUMNS)).set_index("member")
    return table.loc[list(photos["member"])].reset_index()
