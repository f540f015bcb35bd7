"""Tiny age models saved like real ones, for tests of the till code and the service."""

from __future__ import annotations

from pathlib import Path

from agecheck.model_io import save_age_model

SIZE = 32


def save_dex_model(path: Path, size: int = SIZE) -> Path:
    """A random DEX model laid out like ``training.AgeNet.full_model``: core (``pool`` ->
    ``age_head`` with ``age_probs`` and ``age``) inside ``FlipAverage``."""
    import keras

    from agecheck.heads import MAX_AGE, AgeExpectation
    from agecheck.training import FlipAverage

    keras.utils.set_random_seed(0)
    pooled = keras.Input((4,))
    probs = keras.layers.Dense(MAX_AGE + 1, activation="softmax", name="age_probs")(pooled)
    head = keras.Model(pooled, AgeExpectation(name="age")(probs), name="age_head")
    image = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    core = keras.Model(image, head(keras.layers.GlobalAveragePooling2D(name="pool")(x)), name="core")
    outer = keras.Input((size, size, 3))
    save_age_model(
        keras.Model(outer, FlipAverage(core, name="flip_average")(outer)), path, size, {"head": "dex"}
    )
    return path


def save_regression_model(path: Path, size: int = SIZE, val_mae: float = 4.5) -> Path:
    """Age = 10 + 20 x the sum of the mean channel brightness (0..1 each); no softmax."""
    import keras

    image = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))
    x = keras.layers.Dense(
        1,
        kernel_initializer=keras.initializers.Constant(20.0),
        bias_initializer=keras.initializers.Constant(10.0),
    )(x)
    save_age_model(keras.Model(image, keras.layers.Reshape(())(x)), path, size, {"val_mae": val_mae})
    return path
