"""Running the frozen lower part of a backbone once, so training can reuse its outputs."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from agecheck.preprocess import batches


def extract(
    lower, images: np.ndarray, batch_size: int, flip: bool = False, desc: str = "features"
) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Activations of ``lower`` for uint8 ``images`` (float16); ``flip`` mirrors the photos first."""
    parts = []
    with tqdm(total=len(images), desc=desc, unit="photo", mininterval=10) as bar:
        for batch in batches(images, batch_size):
            if flip:
                batch = batch[:, :, ::-1]
            parts.append(np.asarray(lower.predict_on_batch(batch.astype(np.float32)), dtype=np.float16))
            bar.update(len(batch))
    return np.concatenate(parts)
