"""Train a small age net on generated activations in this process and print the md5 of its weights.

``python -m tests.support.train_tiny [--no-determinism]``: run by ``tests/test_determinism.py`` in fresh
processes, so that thread pools and seeds start as they do in the train stage.
"""

from __future__ import annotations

import hashlib
import sys

import keras
import numpy as np
import tensorflow as tf

from agecheck.training.batches import Examples
from agecheck.training.determinism import make_deterministic
from agecheck.training.trainer import AgeNet, Trainer
from tests.support.params import train_config


def weights_md5(deterministic: bool) -> str:
    cfg = train_config(head="dex", loss="ldl", head_epochs=1, epochs=2, batch_size=32, patience=5)
    if deterministic:
        make_deterministic(cfg.seed, cfg.threads)
    else:
        keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8, 8, 64)).astype(np.float16)
    ages = (x.astype(np.float32).mean(axis=(1, 2, 3)) * 400 + 35).astype(np.float32)
    image = keras.Input((8, 8, 64))
    hidden = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(image)
    upper = keras.Model(image, keras.layers.Conv2D(64, 3, padding="same")(hidden))
    net = AgeNet(None, upper, cfg)
    examples = Examples(x, ages, x_flip=x[:, ::-1])
    Trainer(net, tf.distribute.get_strategy(), examples, Examples(x[:64], ages[:64])).fit()
    digest = hashlib.md5()
    for array in net.train_model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    print(weights_md5("--no-determinism" not in sys.argv[1:]))
