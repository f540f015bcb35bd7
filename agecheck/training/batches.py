"""Training batches as a ``tf.data`` pipeline, each worker reading only its share of every batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Examples:
    """Rows to learn from: inputs (cached activations or photos), ages, and optionally each row's
    loss weight and the inputs of its mirror image (so mirroring costs no extra forward pass)."""

    x: np.ndarray
    ages: np.ndarray
    weights: np.ndarray | None = None
    x_flip: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ages)


def epoch_steps(rows: int, global_batch: int) -> int:
    return math.ceil(rows / global_batch)


def epoch_batches(
    examples: Examples,
    global_batch: int,
    context: tf.distribute.InputContext,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    flip: bool = False,
) -> tf.data.Dataset:
    """This input pipeline's share of one epoch: ``(x, age, weight, real)`` per replica and step.

    The epoch's order and mirroring depend on ``(seed, epoch)`` alone, so every worker plans the
    same epoch and a resumed run replays the epoch it stopped in. The epoch is padded to whole
    global batches with rows whose ``weight`` and ``real`` are 0: every replica runs the same
    number of steps (a worker one step short would leave the others waiting in the all-reduce).
    ``weight`` is the row's loss weight divided by the real rows of its global batch, so the
    replicas' sums of ``weight x loss`` add up to the global batch's weighted mean.
    """
    n, replicas = len(examples), context.num_replicas_in_sync
    per_replica = context.get_per_replica_batch_size(global_batch)
    steps = epoch_steps(n, global_batch)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    mirrored = rng.random(n) < 0.5 if flip and examples.x_flip is not None else np.zeros(n, bool)
    rows = np.resize(order, steps * global_batch)
    real = (np.arange(len(rows)) < n).astype(np.float32)
    weight = real if examples.weights is None else real * examples.weights[rows].astype(np.float32)
    weight = weight / np.repeat(real.reshape(steps, global_batch).sum(axis=1), global_batch)

    local = replicas // context.num_input_pipelines  # replicas this pipeline feeds, one batch each per step
    first = context.input_pipeline_id * local

    def share(values: np.ndarray) -> np.ndarray:
        by_replica = values.reshape(steps, replicas, per_replica)
        return by_replica[:, first : first + local].reshape(-1, per_replica)

    def load(batch_rows: np.ndarray, batch_mirrored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = examples.x[batch_rows].astype(np.float32)
        if batch_mirrored.any():
            x[batch_mirrored] = examples.x_flip[batch_rows[batch_mirrored]]  # type: ignore[index]
        return x, examples.ages[batch_rows].astype(np.float32)

    def to_batch(batch_rows: tf.Tensor, batch_mirrored: tf.Tensor, w: tf.Tensor, r: tf.Tensor) -> tuple:
        x, ages = tf.numpy_function(load, [batch_rows, batch_mirrored], [tf.float32, tf.float32])
        x.set_shape((per_replica, *examples.x.shape[1:]))
        ages.set_shape((per_replica,))
        return x, ages, w, r

    dataset = tf.data.Dataset.from_tensor_slices(
        (share(rows), share(mirrored[rows]), share(weight), share(real))
    )
    return dataset.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
