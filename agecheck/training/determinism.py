"""The one place that makes training repeatable: the same inputs and params give the same weights.

Seeds (Python, NumPy, TensorFlow, Keras), TensorFlow's deterministic kernels, and a fixed number of
CPU threads per op (``train.threads``): how a reduction is split among threads changes the rounding,
so the thread count must not follow the machine's cores or its load. Called before TensorFlow runs
any op (thread counts cannot change afterwards).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def make_deterministic(seed: int, threads: int) -> None:
    """Seed every generator, ask for deterministic kernels and fix the thread pools."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
