"""Running an exported age model without TensorFlow: LiteRT (``.tflite``) or ONNX Runtime (``.onnx``).

Each runtime class offers the two things :class:`~agecheck.model.age_model.AgeModel` uses of a
Keras model (``output``, the output names, and ``predict_on_batch``), so one wrapper serves all
three and :meth:`AgeModel.load` picks by the file's suffix.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agecheck.errors import AgecheckError, one_line

#: Start-up notices that TensorFlow and LiteRT write to file descriptor 2 before (or without)
#: honouring ``TF_CPP_MIN_LOG_LEVEL``: absl's preamble and INFO lines (oneDNN, CPU features) and
#: LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
NATIVE_NOTICES = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\)|I\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|To enable the following instructions:|INFO: Created TensorFlow Lite"
)
_first_interpreter = threading.Lock()
_interpreter_made = False


@contextmanager
def native_notices_dropped() -> Iterator[None]:
    """Run the block with the native :data:`NATIVE_NOTICES` dropped from stderr, when
    ``TF_CPP_MIN_LOG_LEVEL`` asks for quiet (``agecheck`` sets it): only catching file descriptor 2
    hides them. Everything else written meanwhile is written back after the block (what other
    threads write meanwhile is delayed, not lost)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        yield
        return
    try:
        _flush_stderr()
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a daemon): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if not _is_notice(line)]
            if kept:
                os.write(2, b"".join(kept))


def _is_notice(line: bytes) -> bool:
    return NATIVE_NOTICES.match(line.decode("utf-8", "replace")) is not None


def _flush_stderr() -> None:
    """Python's buffered stderr out first, so that it keeps its place around the redirection."""
    if sys.stderr is not None:
        sys.stderr.flush()


def _load_error(kind: str, path: Path, err: Exception) -> AgecheckError:
    return AgecheckError(f"cannot load {kind} model {path}: {one_line(err, 200)}")


def litert_interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter for ``path``, tensors allocated (``ai-edge-litert`` if installed, else
    TensorFlow's own): for the age model and for the face detector. The first one of the process
    announces its XNNPACK delegate on stderr: dropped as :func:`native_notices_dropped` says."""
    global _interpreter_made
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on what is installed
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806

    def make() -> Any:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter

    if _interpreter_made:
        return make()
    with _first_interpreter, native_notices_dropped():
        interpreter = make()
        _interpreter_made = True
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
