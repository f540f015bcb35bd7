"""The trained model as one LiteRT (``.tflite``) file, for a till PC without TensorFlow.

:func:`export_litert` converts the saved Keras model (aligned face crops in, ``age`` and
``age_probs`` out, mirror averaging included) with Keras' own ``export(format="litert")``,
optionally with float16 weights, and writes the sidecar beside it. :class:`LiteRTModel` runs such
a file (``agecheck.model.litert_runtime``); ``AgeModel.load`` picks by the file's suffix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from agecheck.errors import AgecheckError
from agecheck.model.age_model import LITERT_SUFFIX, AgeModel, sidecar

Quantize = Literal["none", "float16"]


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
        sidecar(part).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(part, out)
        os.replace(sidecar(part), sidecar(out))
    return info
