"""Running an exported ``.tflite`` age model on LiteRT, behind the same wrapper as a Keras model.

:class:`LiteRTModel` offers the two things :class:`~agecheck.model.age_model.AgeModel` uses of a
Keras model (``output`` and ``predict_on_batch``), so :meth:`AgeModel.load` can return either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agecheck.errors import AgecheckError


class LiteRTModel:
    """A ``.tflite`` age model on LiteRT: ``output`` (its output names) and ``predict_on_batch``."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - depends on what is installed
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter  # noqa: N806
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            signature = self.interpreter.get_signature_list()["serving_default"]
        except (ValueError, RuntimeError, KeyError) as err:
            detail = " ".join(str(err).split())[:200]
            raise AgecheckError(f"cannot load LiteRT model {path}: {detail}") from None
        self.input_name = signature["inputs"][0]
        self.output = dict.fromkeys(signature["outputs"])
        self.runner = self.interpreter.get_signature_runner("serving_default")

    def predict_on_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(**{self.input_name: np.asarray(images, dtype=np.float32)})
