"""Saving, loading and running a trained age model (``.keras`` file + ``.json`` sidecar).

A saved age model takes RGB images (batch x S x S x 3, values 0..255) and returns one age in
years per image. The sidecar records ``input_size`` and how the model was made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agecheck.errors import AgecheckError
from agecheck.preprocess import square_resize

DEFAULT_MODEL = Path("models/age_model.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_age_model(model: Any, path: Path, input_size: int, info: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` (.keras) and its sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    meta = {"input_size": int(input_size), **(info or {})}
    sidecar(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class AgePredictor:
    """A loaded age model. ``predict`` takes PIL images of any size."""

    def __init__(self, model: Any, input_size: int, info: dict[str, Any]) -> None:
        self.model, self.input_size, self.info = model, input_size, info

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL) -> AgePredictor:
        path = Path(path)
        if not path.is_file() or not sidecar(path).is_file():
            raise AgecheckError(
                f"no trained model at {path} (with {sidecar(path).name}); run `dvc repro` or pass --model"
            )
        import keras

        import agecheck.backbones.registry  # noqa: F401 - these register the custom layers
        import agecheck.heads  # noqa: F401
        import agecheck.training  # noqa: F401

        info = json.loads(sidecar(path).read_text(encoding="utf-8"))
        try:
            model = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError, TypeError) as err:
            raise AgecheckError(f"cannot load model {path}: {err}") from None
        return cls(model, int(info["input_size"]), info)

    def predict_arrays(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Ages for a uint8 array N x S x S x 3 already at ``input_size``."""
        if len(images) == 0:
            return np.zeros((0,), dtype=np.float32)
        out = self.model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def predict(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """Ages for PIL images (centre-cropped to a square and resized like the training photos)."""
        if not images:
            return np.zeros((0,), dtype=np.float32)
        arrays = np.stack([square_resize(image, self.input_size) for image in images])
        return self.predict_arrays(arrays, batch_size)
