"""Stage evaluate: predict the validation and test splits; test metrics (errors, Challenge 25
rates with the threshold calibrated on validation, groups), predictions tables and figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import load_params
from agecheck.data.shards import load_split_images
from agecheck.errors import exit_on_error
from agecheck.evaluation.evaluate import (
    evaluate_predictions,
    headline,
    prediction_table,
    summary_line,
    write_evaluation,
)
from agecheck.model.age_model import AgeModel
from agecheck.outputs import fresh_dir, write_json

SPLITS = Path("data/split")
SHARDS = Path("data/validated")
MODEL = Path("models/age_model.keras")
METRICS = Path("metrics/metrics.json")
RESULTS = Path("metrics/evaluate")


def predict_split(model: AgeModel, name: str, batch_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of split ``name`` and the predicted age of each."""
    table = pd.read_csv(SPLITS / f"{name}.csv", dtype={"id": str, "source": str, "member": str, "shard": str})
    images = load_split_images(table, SHARDS, model.input_size)
    print(f"evaluate: predicting {len(table)} {name} photos")
    return table, model.predict(images, batch_size)


@exit_on_error
def main() -> None:
    params = load_params()
    batch_size, policy = params.evaluate.batch_size, params.policy
    model = AgeModel.load(MODEL)
    validation = prediction_table(*predict_split(model, "val", batch_size))
    predictions, metrics = evaluate_predictions(*predict_split(model, "test", batch_size), policy, validation)
    results = fresh_dir(RESULTS)
    validation.to_csv(results / "val_predictions.csv", index=False)
    write_evaluation(predictions, metrics, results, policy)
    write_json(METRICS, headline(metrics))
    c25 = metrics["challenge25"]
    print(f"evaluate: test {summary_line(metrics)} -> {METRICS}")
    print(
        f"evaluate: Challenge {policy.threshold:g}: minors served without ID {c25['minor_pass_rate']} "
        f"(13-17: {c25['teen_pass_rate']}), adults asked for ID {c25['adult_check_rate']}; threshold for "
        f"<= {policy.max_minor_pass_rate:.0%} on val: {c25['safe_threshold'].get('threshold')}"
    )


if __name__ == "__main__":
    main()
