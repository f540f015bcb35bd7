"""Running an exported age model without TensorFlow: LiteRT (``.tflite``) or ONNX Runtime (``.onnx``).

Each runtime class offers the two things :class:`~agecheck.model.age_model.AgeModel` uses of a
Keras model (``output``, the output names, and ``predict_on_batch``), so one wrapper serves all
three and :meth:`AgeModel.load` picks by the file's suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agecheck.errors import AgecheckError, one_line


def _load_error(kind: str, path: Path, err: Exception) -> AgecheckError:
    return AgecheckError(f"cannot load {kind} model {path}: {one_line(err, 200)}")


def litert_interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter for ``path``, tensors allocated (``ai-edge-litert`` if installed, else
    TensorFlow's own): for the age model and for the face detector."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on what is installed
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


class LiteRTModel:
    """A ``.tflite`` age model on LiteRT (``ai-edge-litert``, else TensorFlow's own interpreter)."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        try:
            self.interpreter = litert_interpreter(path, threads)
            signature = self.interpreter.get_signature_list()["serving_default"]
        except (ValueError, RuntimeError, KeyError) as err:
            raise _load_error("LiteRT", path, err) from None
        self.input_name = signature["inputs"][0]
        self.output = dict.fromkeys(signature["outputs"])
        self.runner = self.interpreter.get_signature_runner("serving_default")

    def predict_on_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(**{self.input_name: np.asarray(images, dtype=np.float32)})


class OnnxModel:
    """An ``.onnx`` age model on ONNX Runtime (CPU)."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        try:
            import onnxruntime
        except ImportError:  # pragma: no cover - depends on what is installed
            raise AgecheckError(f"running {path} needs ONNX Runtime: pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...)
            raise _load_error("ONNX", path, err) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output = dict.fromkeys(out.name for out in self.session.get_outputs())

    def predict_on_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        names = list(self.output)
        values = self.session.run(names, {self.input_name: np.asarray(images, dtype=np.float32)})
        return dict(zip(names, values, strict=True))


#: The runtime of each export format (``age_model.EXPORT_SUFFIXES``).
EXPORT_RUNTIMES: dict[str, type[LiteRTModel] | type[OnnxModel]] = {"tflite": LiteRTModel, "onnx": OnnxModel}
