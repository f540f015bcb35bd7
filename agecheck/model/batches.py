"""Training batches from arrays in memory (cached activations or photos)."""

from __future__ import annotations

import math

import keras
import numpy as np


class Batches(keras.utils.PyDataset):
    """Shuffled batches of ``(x, y)``, or ``(x, y, weight)`` with ``weights``; with ``x_flip`` each
    sample is mirrored at random.

    ``x_flip`` holds the mirrored counterpart of each row of ``x`` (cached activations of the
    mirror image, or the mirrored photo), so augmentation costs no extra forward pass.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        x_flip: np.ndarray | None = None,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.x, self.x_flip, self.y = x, x_flip, y.astype(np.float32)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(x))
        self.mirror = np.zeros(len(x), dtype=bool)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        x = self.x[rows].astype(np.float32)
        if self.x_flip is not None:
            flip = self.mirror[rows]
            x[flip] = self.x_flip[rows[flip]].astype(np.float32)
        if self.weights is not None:
            return x, self.y[rows], self.weights[rows]
        return x, self.y[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)
        if self.x_flip is not None:
            self.mirror = self.rng.random(len(self.x)) < 0.5
