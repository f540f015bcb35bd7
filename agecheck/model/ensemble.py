"""The released model: one input (the till's face crop) and the members' age distributions averaged.

Each member was trained on its own crop of the face (its ``face_scale`` around the same centre), so the
ensemble cuts each member's crop out of its one input inside the graph: the till aligns and cuts a face
once, whatever the members, and ``AgeModel``, the service and the exports see one model with the usual
``age`` and ``age_probs`` outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from agecheck.model.heads import AgeExpectation
from agecheck.model.outputs import AGE, AGE_PROBS, FEATURES, P_UNDER

#: A member's crop this close to a whole number of the input's pixels is sliced, not resampled.
EXACT_PIXELS = 0.01


@keras.saving.register_keras_serializable(package="agecheck")
class CentreCrop(layers.Layer):
    """The central ``fraction`` of a batch of square images, at ``size`` x ``size`` pixels.

    When ``fraction`` x the input side is ``size`` (the till's crop cut at the member's own pixel
    scale) and the margins are whole pixels, this is a slice: the member sees exactly the pixels
    the alignment would have cut for it. Otherwise the central square is sliced to the nearest
    whole pixels and resized (bilinear).
    """

    def __init__(self, fraction: float, size: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        if not 0 < fraction <= 1:
            raise ValueError(f"a crop's fraction of the input must be in (0, 1] (got {fraction})")
        self.fraction, self.size = float(fraction), int(size)

    def call(self, images):  # type: ignore[no-untyped-def]
        side = int(images.shape[1])
        pixels = side * self.fraction
        crop = int(round(pixels))
        start = (side - crop) // 2
        cut = images[:, start : start + crop, start : start + crop, :]
        if crop == self.size and abs(pixels - crop) < EXACT_PIXELS:
            return cut
        return ops.image.resize(cut, (self.size, self.size), interpolation="bilinear")

    def compute_output_shape(self, input_shape):  # type: ignore[no-untyped-def]
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "fraction": self.fraction, "size": self.size}


@dataclass(frozen=True)
class Head:
    """A calibrated under-age head on the members' pooled features, concatenated in member order:
    P(age < ``age``) = sigmoid(features @ kernel + bias) (:mod:`agecheck.training.under_age_heads`)."""

    age: int
    kernel: np.ndarray
    bias: float


@dataclass(frozen=True)
class Member:
    """A trained member: its model (crops in, ``age`` and maybe ``age_probs`` out) and its crop
    as a fraction of the till's crop."""

    name: str
    model: keras.Model
    fraction: float
    size: int


def _member_outputs(
    image: keras.KerasTensor, member: Member, input_size: int
) -> dict[str, keras.KerasTensor]:
    exact = member.size == input_size and abs(member.fraction - 1) < 1e-9
    crop = image if exact else CentreCrop(member.fraction, member.size, name=f"{member.name}_crop")(image)
    return member.model(crop)


def _has_distribution(members: Sequence[Member]) -> bool:
    return all(AGE_PROBS in m.model.output for m in members)


def members_model(members: Sequence[Member], input_size: int, features: bool = False) -> keras.Model:
    """The till's crop in; each member's age distribution (or age, for a regression member) out, by
    name (with ``features``: its pooled features too, as ``NAME_features``): what combine weighs on val."""
    image = keras.Input((input_size, input_size, 3), name="image")
    key = AGE_PROBS if _has_distribution(members) else AGE
    outputs = {}
    for member in members:
        out = _member_outputs(image, member, input_size)
        outputs[member.name] = out[key]
        if features:
            outputs[f"{member.name}_{FEATURES}"] = out[FEATURES]
    return keras.Model(image, outputs, name="members")


def ensemble_model(
    members: Sequence[Member], weights: Sequence[float], input_size: int, heads: Sequence[Head] = ()
) -> keras.Model:
    """The released model: the till's crop in, the members' weighted average out (``age`` and, when
    every member has one, the averaged ``age_probs`` with the age read off it), and one
    ``p_under_AGE`` per under-age head, read off the members' pooled features."""
    if len(weights) != len(members) or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"need one weight per member, adding up to 1 (got {list(weights)})")
    image = keras.Input((input_size, input_size, 3), name="image")
    key = AGE_PROBS if _has_distribution(members) else AGE
    member_outputs = [_member_outputs(image, m, input_size) for m in members]
    parts = [
        layers.Rescaling(float(w), name=f"{m.name}_weight")(out[key])
        for m, w, out in zip(members, weights, member_outputs, strict=True)
    ]
    average = layers.Add(name=key)(parts) if len(parts) > 1 else layers.Identity(name=key)(parts[0])
    outputs = (
        {AGE: AgeExpectation(name=AGE)(average), AGE_PROBS: average} if key == AGE_PROBS else {AGE: average}
    )
    if heads:
        pooled = [out[FEATURES] for out in member_outputs]
        features = layers.Concatenate(name="head_features")(pooled) if len(pooled) > 1 else pooled[0]
        for head in heads:
            name = P_UNDER.format(age=head.age)
            dense = layers.Dense(1, activation="sigmoid", name=f"{name}_logistic", dtype="float32")
            probability = layers.Reshape((), name=name)(dense(features))
            dense.set_weights(
                [head.kernel.reshape(-1, 1).astype(np.float32), np.array([head.bias], np.float32)]
            )
            outputs[name] = probability
    return keras.Model(image, outputs, name="age_model")
