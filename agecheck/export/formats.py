"""The trained model as one file for a till PC without TensorFlow: LiteRT or ONNX.

:func:`export_model` converts the saved Keras model (aligned face crops in, ``age`` and
``age_probs`` out, mirror averaging included) with Keras' own ``export(format="litert")``
(optionally with float16 weights) or with ``tf2onnx``, and writes the sidecar beside it.
``agecheck.model.runtimes`` runs such files; ``AgeModel.load`` picks by the file's suffix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from agecheck.errors import AgecheckError
from agecheck.model.age_model import EXPORT_SUFFIXES, AgeModel, sidecar

Format = Literal["tflite", "onnx"]
Quantize = Literal["none", "float16"]
#: ONNX operator set: 17 runs on every ONNX Runtime since 1.14 (2023).
ONNX_OPSET = 17


def _write_litert(model: AgeModel, path: Path, quantize: Quantize) -> None:
    options = {}
    if quantize == "float16":
        import tensorflow as tf

        options = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "target_spec": {"supported_types": [tf.float16]},
        }
    # Keras sets each extra keyword on the TFLite converter (target_spec's keys on its target_spec)
    model.model.export(str(path), format="litert", verbose=False, **options)


def _write_onnx(model: AgeModel, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    size = model.input_size
    signature = (tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),)
    tf2onnx.logging.set_level(tf2onnx.logging.ERROR)
    tf2onnx.convert.from_keras(
        model.model, input_signature=signature, opset=ONNX_OPSET, output_path=str(path)
    )


def export_model(
    model: AgeModel, out: Path, fmt: Format = "tflite", quantize: Quantize = "none"
) -> dict[str, Any]:
    """Write ``model`` to ``out`` in format ``fmt`` and its sidecar; returns the sidecar's content."""
    suffix = EXPORT_SUFFIXES[fmt]
    if out.suffix != suffix:
        raise AgecheckError(f"a {fmt} file must end in {suffix} (got {out})")
    if quantize != "none" and fmt != "tflite":
        raise AgecheckError(f"--quantize {quantize} is for --format tflite only")
    if not hasattr(model.model, "export"):
        raise AgecheckError("export takes the Keras model (.keras), not an exported one")
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {**model.info, "format": fmt, "quantize": quantize}
    # both files written whole beside their places, then renamed: never a half file at ``out``
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        part = Path(tmp) / out.name
        if fmt == "tflite":
            _write_litert(model, part, quantize)
        else:
            _write_onnx(model, part)
        sidecar(part).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(part, out)
        os.replace(sidecar(part), sidecar(out))
    return info
