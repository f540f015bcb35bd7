"""Age heads on a pooled feature vector, and the DEX maths (expected age of a softmax over ages).

A DEX head (Rothe et al.) outputs a softmax over the ages 0..:data:`MAX_AGE` (``age_probs``) and
its expected value (``age``); a regression head outputs ``age`` alone. Saved models keep these
output names, so what a model can say (an age, or an age distribution too) is read from its
outputs, never from layer names.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from agecheck.model.outputs import AGE, AGE_PROBS, FEATURES, MAX_AGE


def expected_age(probabilities):  # type: ignore[no-untyped-def]
    """The expected age under softmaxes over the ages 0..K (last axis), in years."""
    ages = ops.arange(ops.shape(probabilities)[-1], dtype=probabilities.dtype)
    return ops.sum(probabilities * ages, axis=-1)


@keras.saving.register_keras_serializable(package="agecheck")
class AgeExpectation(layers.Layer):
    """Expected age of a softmax over the ages 0..K (the DEX read-out)."""

    def call(self, probabilities):  # type: ignore[no-untyped-def]
        return expected_age(probabilities)


@keras.saving.register_keras_serializable(package="agecheck")
class Mirror(layers.Layer):
    """Left-right mirror image of a batch of images (NHWC), for averaging a photo with its mirror."""

    def call(self, images):  # type: ignore[no-untyped-def]
        return ops.flip(images, axis=2)


def age_head(
    features: keras.KerasTensor, kind: str, dropout: float, hidden: int = 0
) -> dict[str, keras.KerasTensor]:
    """Map pooled features to ``{"age"}`` (regression) or ``{"age", "age_probs"}`` (``dex``)."""
    x = layers.Dropout(dropout, name="head_dropout")(features) if dropout else features
    if hidden:
        x = layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    if kind == "dex":
        probabilities = layers.Dense(MAX_AGE + 1, activation="softmax", name=AGE_PROBS, dtype="float32")(x)
        return {AGE: AgeExpectation(name=AGE)(probabilities), AGE_PROBS: probabilities}
    if kind == "regression":
        age = layers.Dense(
            1, name="age_linear", dtype="float32", bias_initializer=keras.initializers.Constant(33.0)
        )(x)
        return {AGE: layers.Reshape((), name=AGE)(age)}
    raise ValueError(f"unknown head {kind!r}: expected 'dex' or 'regression'")


def mirror_averaged(core: keras.Model, image_size: int, name: str = "age_model") -> keras.Model:
    """``core`` (images in, head outputs out) averaged over each photo and its mirror image.

    A DEX model averages the two softmaxes and reads the age off the average (the same age as
    averaging the two ages, as the expectation is linear); a regression model averages the ages;
    the pooled features, when ``core`` gives them, are averaged too.
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    plain, mirrored = core(image), core(Mirror(name="mirror")(image))
    if AGE_PROBS in plain:
        probabilities = layers.Average(name=AGE_PROBS)([plain[AGE_PROBS], mirrored[AGE_PROBS]])
        outputs = {AGE: AgeExpectation(name=AGE)(probabilities), AGE_PROBS: probabilities}
    else:
        outputs = {AGE: layers.Average(name=AGE)([plain[AGE], mirrored[AGE]])}
    if FEATURES in plain:
        outputs[FEATURES] = layers.Average(name=FEATURES)([plain[FEATURES], mirrored[FEATURES]])
    return keras.Model(image, outputs, name=name)
