"""Age heads on top of a pooled feature vector: plain regression, or DEX (softmax expectation)."""

from __future__ import annotations

import keras
from keras import layers, ops

MAX_AGE = 100


@keras.saving.register_keras_serializable(package="agecheck")
class AgeExpectation(layers.Layer):
    """Expected age under a softmax over the ages 0..max_age (Rothe et al., DEX)."""

    def __init__(self, max_age: int = MAX_AGE, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.max_age = max_age

    def call(self, probabilities):  # type: ignore[no-untyped-def]
        ages = ops.arange(self.max_age + 1, dtype=probabilities.dtype)
        return ops.sum(probabilities * ages, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_age": self.max_age}


def age_head(features: keras.KerasTensor, kind: str, dropout: float, hidden: int = 0) -> keras.KerasTensor:
    """Map pooled features to one age per image (``kind``: ``dex`` or ``regression``)."""
    x = layers.Dropout(dropout, name="head_dropout")(features) if dropout else features
    if hidden:
        x = layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    if kind == "dex":
        probabilities = layers.Dense(MAX_AGE + 1, activation="softmax", name="age_probs", dtype="float32")(x)
        return AgeExpectation(name="age")(probabilities)
    if kind == "regression":
        age = layers.Dense(
            1, name="age_linear", dtype="float32", bias_initializer=keras.initializers.Constant(33.0)
        )(x)
        return layers.Reshape((), name="age")(age)
    raise ValueError(f"unknown head {kind!r}: expected 'dex' or 'regression'")
