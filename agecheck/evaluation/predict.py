"""Estimating the ages of a split's photos as the model was trained: on the aligned crops.

Kept apart from :mod:`agecheck.evaluation.evaluate`, which only compares numbers, so that the report
stage does not depend on the model and the detector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import Params
from agecheck.faces.box import Box
from agecheck.faces.table import model_inputs
from agecheck.model.age_model import AgeModel


def predict_split(
    model: AgeModel, split_csv: Path, shards: Path, faces: dict[str, Box | None], params: Params
) -> tuple[pd.DataFrame, np.ndarray, dict[int, np.ndarray]]:
    """The rows of a split table, the predicted age of each on the aligned crops as in training, and
    the model's under-age heads' P(age < a) by age a (empty without heads)."""
    table = pd.read_csv(split_csv, dtype={"id": str, "source": str, "member": str, "shard": str})
    images = model_inputs(table, shards, faces, params.align, model.input_size)
    print(f"evaluate: predicting {len(table)} {split_csv.stem} photos")
    ages, heads = model.predict_with_heads(images, params.evaluate.batch_size)
    return table, ages, heads
