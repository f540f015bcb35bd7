"""Tiny age models saved by the project's own code, for tests of the till code and the service."""

from __future__ import annotations

from pathlib import Path

from agecheck.model.age_model import AgeModel
from tests.support.params import train_config

SIZE = 32


def save_dex_model(path: Path, size: int = SIZE, name: str = "age_model") -> Path:
    """A random DEX model assembled like the trained one (``AgeNet.full_model``, mirror-averaged)
    on a one-convolution 'backbone'."""
    import keras

    from agecheck.training.trainer import AgeNet

    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(image)
    upper = keras.Model(image, keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x))
    net = AgeNet(None, upper, train_config(head="dex", loss="ldl", tta_flip=True))
    AgeModel.save(net.full_model(size, name), path, size, {"head": "dex"})
    return path


def save_regression_model(path: Path, size: int = SIZE, val_mae: float = 4.5) -> Path:
    """Age = 10 + 20 x the sum of the mean channel brightness (0..1 each); no age distribution."""
    import keras

    image = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))
    x = keras.layers.Dense(
        1,
        kernel_initializer=keras.initializers.Constant(20.0),
        bias_initializer=keras.initializers.Constant(10.0),
    )(x)
    model = keras.Model(image, {"age": keras.layers.Reshape(())(x)})
    AgeModel.save(model, path, size, {"val_mae": val_mae})
    return path
