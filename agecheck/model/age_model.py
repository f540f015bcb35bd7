"""The one wrapper around a trained age model: saving, loading, ages and age intervals.

A saved model is a ``.keras`` file plus a ``.json`` sidecar (``input_size`` and how the model was
made). It takes RGB face crops (batch x S x S x 3, values 0..255) and has the named outputs
``age`` (years) and, for a DEX model, ``age_probs`` (softmax over the ages 0..100,
``agecheck.model.heads``). With ``age_probs`` the interval is the central ``coverage`` part of
that distribution (e.g. its 10th to 90th percentile for 0.8); trained with ``train.loss: ldl`` its
spread means something (``python -m benchmarks.interval_coverage`` measures how often it holds the true
age). A model without it gets the estimate ± its validation MAE (``val_mae`` in the sidecar).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agecheck.errors import AgecheckError, one_line
from agecheck.model.outputs import AGE, AGE_PROBS, P_UNDER
from agecheck.model.saving import save_keras

#: The files ``agecheck export`` writes, by format (run by ``agecheck.model.runtimes``).
EXPORT_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}


def sidecar(path: Path) -> Path:
    """The ``.json`` file saved beside a model: ``age_model.json`` for ``age_model.keras``,
    ``age_model.tflite.json`` for an export (never the Keras model's sidecar in the same folder)."""
    return (
        path.with_name(path.name + ".json")
        if path.suffix in EXPORT_SUFFIXES.values()
        else path.with_suffix(".json")
    )


@dataclass(frozen=True)
class AgeEstimate:
    """One face: estimated age, an interval around it and how that interval was made, and the
    model's softmax behind them (for the alcohol rule's probabilities and the estimates log)."""

    age: float
    low: float
    high: float
    sd: float | None
    interval: str  # "softmax" (the model's own distribution) or "val_mae" (a fixed ± interval)
    # over the ages 0..100; None for a model without ``age_probs``. Not compared: an array has no ==
    probs: np.ndarray | None = field(default=None, compare=False, repr=False)
    # P(age < a) from the model's under-age heads, by age a (empty: a model without heads)
    heads: dict[int, float] = field(default_factory=dict, compare=False, repr=False)


def quantiles(probabilities: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Quantiles (in years, interpolated) of softmaxes over the ages 0..K: N x len(levels)."""
    cdf = np.cumsum(probabilities, axis=1)
    ages = np.arange(probabilities.shape[1], dtype=np.float64)
    # the age a with CDF(a) = level, the CDF interpolated linearly between whole years
    return np.stack([[np.interp(q, row, ages) for q in levels] for row in cdf])


def softmax_estimates(ages: np.ndarray, probs: np.ndarray, coverage: float) -> list[AgeEstimate]:
    """Estimates from ages and their softmaxes (N x 101): the spread and the central ``coverage``
    interval of each softmax."""
    years = np.arange(probs.shape[1])
    sds = np.sqrt(np.clip(probs @ years**2 - ages**2, 0, None))
    tail = (1 - coverage) / 2
    bounds = quantiles(probs, (tail, 1 - tail))
    return [
        AgeEstimate(float(a), float(lo), float(hi), float(sd), "softmax", row)
        for a, sd, (lo, hi), row in zip(ages, sds, bounds, probs, strict=True)
    ]


def _pad_to_power_of_two(images: np.ndarray) -> np.ndarray:
    """``images`` as float32, zero-padded to a power-of-two batch (bounds the compiled shapes)."""
    padded = np.zeros((1 << (len(images) - 1).bit_length(), *images.shape[1:]), dtype=np.float32)
    padded[: len(images)] = images
    return padded


class AgeModel:
    """A trained age model: :meth:`predict` gives ages, :meth:`estimate` ages with intervals."""

    def __init__(self, model: Any, info: dict[str, Any]) -> None:
        self.model, self.info = model, info
        self.input_size = int(info["input_size"])
        self.outputs = tuple(model.output.keys()) if isinstance(model.output, dict) else ()
        if AGE not in self.outputs:
            raise AgecheckError(
                f"the model has no '{AGE}' output (outputs: {', '.join(self.outputs) or '-'})"
            )
        self.has_distribution = AGE_PROBS in self.outputs
        #: The ages of the model's under-age heads (outputs ``p_under_AGE``), by output name.
        heads = (re.fullmatch(P_UNDER.format(age=r"(\d+)"), name) for name in self.outputs)
        self.head_ages = {head.group(0): int(head.group(1)) for head in heads if head}

    @staticmethod
    def save(model: Any, path: Path, input_size: int, info: dict[str, Any] | None = None) -> None:
        """Write ``model`` to ``path`` (.keras) and its sidecar (with the model's output names)."""
        save_keras(model, path)
        outputs = sorted(model.output) if isinstance(model.output, dict) else []
        meta = {"input_size": int(input_size), "outputs": outputs, **(info or {})}
        sidecar(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> AgeModel:
        """Load a saved model (``.keras``, or ``.tflite`` / ``.onnx`` from ``agecheck export``, run
        without TensorFlow); a one-line :class:`AgecheckError` when it is missing or unreadable."""
        path = Path(path)
        exported = next((f for f, suffix in EXPORT_SUFFIXES.items() if path.suffix == suffix), None)
        if not path.is_file() or not sidecar(path).is_file():
            remedy = "run `agecheck export`" if exported else "run `dvc repro` or pass --model"
            raise AgecheckError(f"no trained model at {path} (with {sidecar(path).name}); {remedy}")
        try:
            info = json.loads(sidecar(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AgecheckError(f"cannot read {sidecar(path)}: {err}") from None
        if exported:
            from agecheck.model.runtimes import EXPORT_RUNTIMES

            return cls(EXPORT_RUNTIMES[exported](path), info)
        from agecheck.model.runtimes import native_notices_dropped

        try:
            with native_notices_dropped():  # TensorFlow's start-up notices, under `agecheck`
                import keras
        except ImportError:
            raise AgecheckError(
                f"running the Keras model {path} needs TensorFlow: pip install 'agecheck[pipeline]', "
                "or run a model from `agecheck export` (.tflite, .onnx)"
            ) from None

        import agecheck.model.backbones.registry  # noqa: F401 - these register the custom layers
        import agecheck.model.ensemble  # noqa: F401
        import agecheck.model.heads  # noqa: F401

        try:
            model = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError, TypeError) as err:
            raise AgecheckError(f"cannot load model {path}: {one_line(err, 300)}") from None
        return cls(model, info)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for one batch, in float64.

        ``predict_on_batch``, not ``predict``: the latter sets up a data pipeline per call, which
        costs more than the model itself on a few faces (about 4x on one face here). The padding
        bounds the batch shapes the compiled function ever sees (each new one is compiled anew,
        about a second), and :meth:`warm_up` compiles them all before the first request.
        """
        out = self.model.predict_on_batch(_pad_to_power_of_two(images))
        return {name: np.asarray(value, dtype=np.float64)[: len(images)] for name, value in out.items()}

    def _outputs(self, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        parts = [self._run(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        return {name: np.concatenate([part[name] for part in parts]) for name in self.outputs}

    def _heads(self, outputs: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
        """The under-age heads' probabilities in ``outputs``, by age."""
        return {age: outputs[name].reshape(-1) for name, age in self.head_ages.items()}

    def warm_up(self, batch_size: int = 64) -> None:
        """Compile the model for every batch shape up to ``batch_size`` (done once, before serving)."""
        for power in range((batch_size - 1).bit_length() + 1):
            self._run(np.zeros((1 << power, self.input_size, self.input_size, 3), dtype=np.uint8))

    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Ages (years) for a uint8 array N x S x S x 3 at :attr:`input_size`."""
        return self.predict_with_heads(images, batch_size)[0]

    def predict_with_heads(
        self, images: np.ndarray, batch_size: int = 64
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Ages (years) and, by age a, P(age < a) from the model's under-age heads (none: empty)."""
        if len(images) == 0:
            return np.zeros((0,)), {age: np.zeros((0,)) for age in self.head_ages.values()}
        outputs = self._outputs(images, batch_size)
        return outputs[AGE].reshape(-1), self._heads(outputs)

    def estimate(self, images: np.ndarray, coverage: float, batch_size: int = 64) -> list[AgeEstimate]:
        """Ages with an interval holding ``coverage`` of the model's age distribution."""
        if not 0 < coverage < 1:
            raise ValueError(f"interval coverage must be between 0 and 1 (got {coverage})")
        if len(images) == 0:
            return []
        outputs = self._outputs(images, batch_size)
        ages = outputs[AGE].reshape(-1)
        if not self.has_distribution:
            spread = float(self.info.get("val_mae", 0.0))
            estimates = [
                AgeEstimate(float(a), float(a) - spread, float(a) + spread, None, "val_mae") for a in ages
            ]
        else:
            estimates = softmax_estimates(ages, outputs[AGE_PROBS], coverage)
        if not self.head_ages:
            return estimates
        heads = self._heads(outputs)
        return [
            replace(e, heads={age: float(p[i]) for age, p in heads.items()}) for i, e in enumerate(estimates)
        ]
