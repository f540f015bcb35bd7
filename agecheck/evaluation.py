"""Evaluating predicted ages against labels: the predictions table, the metrics and their files.

Used by both ``stages/evaluate.py`` (test split) and ``agecheck evaluate`` (a photo folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.errors import AgecheckError
from agecheck.evaluation_plots import write_evaluation_plots
from agecheck.io import write_json
from agecheck.metrics import age_metrics

PREDICTION_COLUMNS = ("id", "source", "age", "predicted", "error")


def evaluate_predictions(table: pd.DataFrame, predicted: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The predictions table (``id, source, age, predicted, error``) and the metrics.

    ``table`` has one row per photo with columns ``id``, ``source`` and ``age`` (true age);
    ``predicted`` holds the predicted ages in the same order. ``error`` is predicted - true.
    """
    predicted = np.asarray(predicted, dtype=float).reshape(-1)
    if len(table) == 0:
        raise AgecheckError("no photos to evaluate")
    if len(predicted) != len(table):
        raise ValueError(f"{len(table)} photos but {len(predicted)} predictions")
    ages = table["age"].to_numpy(dtype=float)
    predictions = pd.DataFrame(
        {
            "id": table["id"].astype(str).to_numpy(),
            "source": table["source"].astype(str).to_numpy(),
            "age": table["age"].to_numpy(dtype=int),
            "predicted": predicted.round(3),
            "error": (predicted - ages).round(3),
        }
    )
    metrics = age_metrics(ages, predicted, predictions["source"].to_numpy())
    return predictions, metrics


def write_evaluation(
    predictions: pd.DataFrame, metrics: dict[str, Any], metrics_path: Path | None, plots_dir: Path | None
) -> None:
    """Write the metrics JSON and, in ``plots_dir``, ``predictions.csv`` and the PNG figures.

    Either destination may be None to skip it.
    """
    if metrics_path is not None:
        write_json(metrics_path, metrics)
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        predictions.to_csv(plots_dir / "predictions.csv", index=False, columns=list(PREDICTION_COLUMNS))
        write_evaluation_plots(predictions, metrics, plots_dir)


def summary_line(metrics: dict[str, Any]) -> str:
    """One line: overall MAE and count, then the MAE of each source."""
    line = f"MAE {metrics['mae']:.2f} years on {metrics['count']} photos"
    by_source = metrics.get("mae_by_source", {})
    if by_source:
        line += " (" + ", ".join(f"{name} {mae:.2f}" for name, mae in by_source.items()) + ")"
    return line
