"""Turning photos into model input: the same for training, evaluation and prediction."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from agecheck.shards import iter_shard


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop ``image`` to a square and resize it to ``size`` x ``size``: uint8 HxWx3."""
    image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_split_images(table: pd.DataFrame, shards_dir: Path, size: int) -> np.ndarray:
    """Model inputs for every row of a split table, in the table's order (uint8, N x S x S x 3)."""
    position = {member: i for i, member in enumerate(table["member"])}
    images = np.zeros((len(table), size, size, 3), dtype=np.uint8)
    found = 0
    with tqdm(total=len(table), desc=f"load {size}px photos", unit="photo", mininterval=5) as bar:
        for shard in sorted(set(table["shard"])):
            for member, data in iter_shard(shards_dir / shard):
                if member in position:
                    images[position[member]] = square_resize(Image.open(io.BytesIO(data)), size)
                    found += 1
                    bar.update()
    if found != len(table):
        raise ValueError(f"{len(table) - found} photos of the table are missing from {shards_dir}")
    return images


def batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``images``."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
