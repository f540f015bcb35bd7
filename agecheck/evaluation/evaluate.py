"""Evaluating predicted ages against labels: the predictions table, the metrics and their files.

Used by both ``stages/evaluate.py`` (test split) and ``agecheck evaluate`` (a photo folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.evaluation.challenge25 import challenge25_metrics, group_metrics, rate_curve
from agecheck.evaluation.metrics import age_metrics
from agecheck.evaluation.plots import write_evaluation_plots
from agecheck.evaluation.results import DETAILS, PREDICTIONS, Evaluation, Group

#: Label columns that define groups of customers (kept in the predictions when present).
GROUP_COLUMNS = ("gender", "race")
PREDICTION_COLUMNS = ("id", "source", *GROUP_COLUMNS, "age", "predicted", "error")
RATES_CSV = "challenge25_rates.csv"


def prediction_table(table: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """One row per photo: ``id, source, gender, race, age, predicted, error`` (predicted - true).

    ``table`` has columns ``id``, ``source``, ``age`` (true age) and optionally the group
    columns; ``predicted`` holds the predicted ages in the same order.
    """
    predicted = np.asarray(predicted, dtype=float).reshape(-1)
    if len(table) == 0:
        raise AgecheckError("no photos to evaluate")
    if len(predicted) != len(table):
        raise ValueError(f"{len(table)} photos but {len(predicted)} predictions")
    ages = table["age"].to_numpy(dtype=int)
    columns = {"id": table["id"].astype(str).to_numpy(), "source": table["source"].astype(str).to_numpy()}
    for name in GROUP_COLUMNS:
        columns[name] = table[name].to_numpy() if name in table else np.full(len(table), None)
    columns.update({"age": ages, "predicted": predicted.round(3), "error": (predicted - ages).round(3)})
    return pd.DataFrame(columns)


def evaluate_predictions(
    table: pd.DataFrame,
    predicted: np.ndarray,
    policy: PolicyConfig,
    calibration: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Evaluation]:
    """The predictions table (see :func:`prediction_table`) and the metrics: errors overall, per
    age band and source; Challenge 25 rates, with the threshold calibrated on the ``calibration``
    predictions table (the validation split) when given, and then the 13-17-year-olds of both
    together; and MAE and rates per gender and race where the labels have them.
    """
    predictions = prediction_table(table, predicted)
    ages, estimates = predictions["age"].to_numpy(dtype=float), predictions["predicted"].to_numpy()
    reference = None if calibration is None else (calibration["age"], calibration["predicted"])

    def groups(column: str) -> dict[str, Group] | None:
        has_labels = predictions[column].notna().any()
        return group_metrics(predictions, column, policy) if has_labels else None

    val_mae = None
    if calibration is not None:
        val_mae = round(float((calibration["predicted"] - calibration["age"]).abs().mean()), 3)
    evaluation = Evaluation(
        **age_metrics(ages, estimates, predictions["source"].to_numpy()),
        challenge25=challenge25_metrics(ages, estimates, policy, reference),
        val_mae=val_mae,
        by_gender=groups("gender"),
        by_race=groups("race"),
    )
    return predictions, evaluation


def write_evaluation(
    predictions: pd.DataFrame, evaluation: Evaluation, out_dir: Path, policy: PolicyConfig
) -> None:
    """Write into ``out_dir`` every metric (:data:`DETAILS`), the predictions (:data:`PREDICTIONS`),
    the Challenge 25 rates per threshold (:data:`RATES_CSV`) and the PNG figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluation.write(out_dir / DETAILS)
    predictions.to_csv(out_dir / PREDICTIONS, index=False, columns=list(PREDICTION_COLUMNS))
    curve = rate_curve(predictions["age"], predictions["predicted"], policy)
    curve.to_csv(out_dir / RATES_CSV, index=False)
    write_evaluation_plots(predictions, evaluation, curve, out_dir)


def summary_line(evaluation: Evaluation) -> str:
    """One line: overall MAE and count, then the MAE of each source."""
    line = f"MAE {evaluation.mae:.2f} years on {evaluation.count} photos"
    if evaluation.mae_by_source:
        by_source = evaluation.mae_by_source.items()
        line += " (" + ", ".join(f"{name} {mae:.2f}" for name, mae in by_source) + ")"
    return line
