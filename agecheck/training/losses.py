"""Losses and metrics on a DEX softmax: the error of its expected age, and label-distribution learning."""

from __future__ import annotations

from keras import ops

from agecheck.model.heads import expected_age


def age_error(y_true, probabilities):  # type: ignore[no-untyped-def]
    """Absolute error of the softmax's expected age (a metric and the L1 part of the loss)."""
    y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    return ops.abs(expected_age(probabilities) - y)


def ldl_loss(sigma: float, weight: float):  # type: ignore[no-untyped-def]
    """Label-distribution learning for a DEX softmax (Geng et al.; Gao et al., DLDL): the L1 error
    of its expected age plus ``weight`` times the KL divergence from a Gaussian of width ``sigma``
    around the true age to the softmax.
    """

    def loss(y_true, probabilities):  # type: ignore[no-untyped-def]
        ages = ops.arange(ops.shape(probabilities)[-1], dtype="float32")
        y = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
        target = ops.exp(-0.5 * ops.square((ages - y) / sigma))
        target = target / ops.sum(target, axis=-1, keepdims=True)
        kl = ops.sum(target * (ops.log(target + 1e-8) - ops.log(probabilities + 1e-8)), axis=-1)
        return age_error(y_true, probabilities) + weight * kl

    return loss
