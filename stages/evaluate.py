"""Stage evaluate: predict the validation and test splits; test metrics (errors, Challenge 25
rates with the threshold calibrated on validation, groups), predictions tables and figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.challenge25 import Policy
from agecheck.errors import AgecheckError, exit_on_error
from agecheck.evaluation import evaluate_predictions, prediction_table, summary_line, write_evaluation
from agecheck.io import fresh_dir
from agecheck.model_io import DEFAULT_MODEL, AgePredictor
from agecheck.params import load_params, section
from agecheck.preprocess import load_split_images

SPLITS = Path("data/split")
SHARDS = Path("data/validated")
METRICS = Path("metrics/metrics.json")
RESULTS = Path("metrics/evaluate")


def predict_split(predictor: AgePredictor, name: str, batch_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of split ``name`` and the predicted age of each."""
    table = pd.read_csv(SPLITS / f"{name}.csv", dtype={"id": str, "source": str, "member": str, "shard": str})
    try:
        images = load_split_images(table, SHARDS, predictor.input_size)
    except ValueError as err:
        raise AgecheckError(str(err)) from None
    print(f"evaluate: predicting {len(table)} {name} photos")
    return table, predictor.predict_arrays(images, batch_size)


@exit_on_error
def main() -> None:
    params = load_params()
    batch_size = int(section(params, "evaluate").get("batch_size", 64))
    policy = Policy.from_params(params.get("policy"))
    predictor = AgePredictor.load(DEFAULT_MODEL)
    validation = prediction_table(*predict_split(predictor, "val", batch_size))
    predictions, metrics = evaluate_predictions(
        *predict_split(predictor, "test", batch_size), policy, validation
    )
    results = fresh_dir(RESULTS)
    validation.to_csv(results / "val_predictions.csv", index=False)
    write_evaluation(predictions, metrics, METRICS, results, policy)
    c25 = metrics["challenge25"]
    print(f"evaluate: test {summary_line(metrics)} -> {METRICS}")
    print(
        f"evaluate: Challenge {policy.threshold:g}: minors served without ID {c25['minor_pass_rate']}, "
        f"adults asked for ID {c25['adult_check_rate']}; threshold for <= {policy.max_minor_pass_rate:.0%} "
        f"on val: {c25['safe_threshold'].get('threshold')}"
    )


if __name__ == "__main__":
    main()
