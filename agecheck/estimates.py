"""Age estimates with an uncertainty interval.

With a DEX model (softmax over the ages 0..100, ``agecheck.heads``) the estimate is the
expected age of the softmax, exactly as the saved model computes it, and the interval is the
central ``coverage`` part of that distribution (e.g. its 10th to 90th percentile for 0.8),
averaged over the photo and its mirror image like the model's own output. With ``train.loss:
ldl`` the softmax is trained towards a Gaussian around the true age, so its spread means
something; ``benchmarks/interval_coverage.py`` measures how often the interval holds the true
age (``docs/serving.md``). A model without a softmax head gets the estimate
± its validation MAE (``val_mae`` in the model's sidecar), labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agecheck.model_io import AgePredictor


@dataclass(frozen=True)
class AgeEstimate:
    """One face: estimated age, an interval around it and how that interval was made."""

    age: float
    low: float
    high: float
    sd: float | None
    interval: str  # "softmax" (the model's own distribution) or "val_mae" (a fixed ± interval)


def _softmax_model(model: Any) -> Any | None:
    """A model returning the (flip-averaged) DEX softmax of ``model``, or None without one."""
    import keras

    flip = next((layer for layer in model.layers if type(layer).__name__ == "FlipAverage"), None)
    core = flip.inner if flip is not None else model
    try:
        head, pool = core.get_layer("age_head"), core.get_layer("pool")
        probs_head = keras.Model(head.inputs, head.get_layer("age_probs").output)
    except (ValueError, AttributeError):
        return None
    probs_core = keras.Model(core.inputs, probs_head(pool.output))
    if flip is None:
        return probs_core
    images = keras.Input(model.inputs[0].shape[1:])
    mirrored = keras.ops.flip(images, axis=2)
    return keras.Model(images, (probs_core(images) + probs_core(mirrored)) / 2.0)


def quantiles(probabilities: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Quantiles (in years, interpolated) of softmaxes over the ages 0..K: N x len(levels)."""
    cdf = np.cumsum(probabilities, axis=1)
    ages = np.arange(probabilities.shape[1], dtype=np.float64)
    # the age a with CDF(a) = level, the CDF interpolated linearly between whole years
    return np.stack([[np.interp(q, row, ages) for q in levels] for row in cdf])


class AgeEstimator:
    """Runs an :class:`AgePredictor`'s model on face crops; returns :class:`AgeEstimate` objects."""

    def __init__(self, predictor: AgePredictor, coverage: float = 0.8) -> None:
        if not 0 < coverage < 1:
            raise ValueError(f"interval coverage must be between 0 and 1 (got {coverage})")
        self.predictor, self.coverage = predictor, coverage
        self.input_size = predictor.input_size
        self.softmax = _softmax_model(predictor.model)
        self.fallback = float(predictor.info.get("val_mae", 0.0))

    def _run(self, model: Any, images: np.ndarray) -> np.ndarray:
        """One compiled forward pass on a batch padded to a power of two.

        ``predict_on_batch``, not ``predict``: the latter sets up a data pipeline per call, which
        costs more than the model itself on a few faces (about 4x on one face here). The padding
        bounds the batch shapes the compiled function ever sees (each new one is compiled
        anew, about a second), and :meth:`warm_up` compiles them all before the first request.
        """
        count = len(images)
        padded = np.zeros((1 << (count - 1).bit_length(), *images.shape[1:]), dtype=np.float32)
        padded[:count] = images
        return np.asarray(model.predict_on_batch(padded), dtype=np.float64)[:count]

    def warm_up(self, batch_size: int = 64) -> None:
        """Compile the model for every batch shape up to ``batch_size`` (done once, before serving)."""
        model = self.predictor.model if self.softmax is None else self.softmax
        for power in range((batch_size - 1).bit_length() + 1):
            self._run(model, np.zeros((1 << power, self.input_size, self.input_size, 3), dtype=np.uint8))

    def estimate(self, images: np.ndarray, batch_size: int = 64) -> list[AgeEstimate]:
        """Estimates for a uint8 array N x S x S x 3 at the model's input size."""
        results: list[AgeEstimate] = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if self.softmax is None:
                ages = self._run(self.predictor.model, batch).reshape(-1)
                results += [
                    AgeEstimate(float(a), float(a) - self.fallback, float(a) + self.fallback, None, "val_mae")
                    for a in ages
                ]
                continue
            probs = self._run(self.softmax, batch)
            years = np.arange(probs.shape[1])
            means = probs @ years
            sds = np.sqrt(np.clip(probs @ years**2 - means**2, 0, None))
            tail = (1 - self.coverage) / 2
            bounds = quantiles(probs, (tail, 1 - tail))
            results += [
                AgeEstimate(float(m), float(lo), float(hi), float(sd), "softmax")
                for m, sd, (lo, hi) in zip(means, sds, bounds, strict=True)
            ]
        return results
