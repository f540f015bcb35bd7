"""Running the frozen lower part of a backbone once, so training can reuse its outputs."""

from __future__ import annotations

import keras
import numpy as np
from tqdm import tqdm

from agecheck.data.images import mirror


def extract(
    lower: keras.Model, images: np.ndarray, batch_size: int, flip: bool = False, desc: str = "features"
) -> np.ndarray:
    """Activations of ``lower`` for uint8 ``images`` (float16); ``flip`` mirrors the photos first."""
    parts = []
    with tqdm(total=len(images), desc=desc, unit="photo", mininterval=10) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch = mirror(batch) if flip else batch
            parts.append(np.asarray(lower.predict_on_batch(batch.astype(np.float32)), dtype=np.float16))
            bar.update(len(batch))
    return np.concatenate(parts)
