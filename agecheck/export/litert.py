"""The trained model as one LiteRT (``.tflite``) file, for a till PC without TensorFlow.

:func:`export_litert` converts the saved Keras model (aligned face crops in, ``age`` and
``age_probs`` out, mirror averaging included) with Keras' own ``export(format="litert")``,
optionally with float16 weights, and writes the sidecar beside it. :class:`LiteRTModel` runs such
a file on LiteRT with the two calls :class:`~agecheck.model.age_model.AgeModel` makes of a Keras
model, so the one wrapper serves both; :func:`load_age_model` picks by the file's suffix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agecheck.errors import AgecheckError
from agecheck.model.age_model import AgeModel

LITERT_SUFFIX = ".tflite"
Quantize = Literal["none", "float16"]


def litert_sidecar(path: Path) -> Path:
    """``age_model.tflite.json``: never the Keras model's ``age_model.json`` in the same folder."""
    return path.with_name(path.name + ".json")


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


def load_age_model(path: str | Path) -> AgeModel:
    """A saved age model: ``.tflite`` on LiteRT, anything else as a Keras model."""
    path = Path(path)
    if path.suffix != LITERT_SUFFIX:
        return AgeModel.load(path)
    meta = litert_sidecar(path)
    if not path.is_file() or not meta.is_file():
        raise AgecheckError(f"no LiteRT model at {path} (with {meta.name}); run `agecheck export`")
    info = json.loads(meta.read_text(encoding="utf-8"))
    return AgeModel(LiteRTModel(path), info)


def export_litert(model: AgeModel, out: Path, quantize: Quantize = "none") -> dict[str, Any]:
    """Write ``model`` to ``out`` (``.tflite``) and its sidecar; returns the sidecar's content."""
    if out.suffix != LITERT_SUFFIX:
        raise AgecheckError(f"the LiteRT file must end in {LITERT_SUFFIX} (got {out})")
    options = {}
    if quantize == "float16":
        import tensorflow as tf

        options = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "target_spec": {"supported_types": [tf.float16]},
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {**model.info, "format": "litert", "quantize": quantize}
    # both files written whole beside their places, then renamed: never a half file at ``out``
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        part = Path(tmp) / out.name
        # Keras sets each extra keyword on the TFLite converter (target_spec's keys on its target_spec)
        model.model.export(str(part), format="litert", verbose=False, **options)
        litert_sidecar(part).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(part, out)
        os.replace(litert_sidecar(part), litert_sidecar(out))
    return info
