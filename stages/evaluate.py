"""Stage evaluate: predict the ages of the test split; metrics, predictions table and figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agecheck.errors import AgecheckError, exit_on_error
from agecheck.evaluation import evaluate_predictions, summary_line, write_evaluation
from agecheck.io import fresh_dir
from agecheck.model_io import DEFAULT_MODEL, AgePredictor
from agecheck.params import load_params, section
from agecheck.preprocess import load_split_images

TEST = Path("data/split/test.csv")
SHARDS = Path("data/validated")
METRICS = Path("metrics/metrics.json")
RESULTS = Path("metrics/evaluate")


@exit_on_error
def main() -> None:
    params = section(load_params(), "evaluate")
    predictor = AgePredictor.load(DEFAULT_MODEL)
    table = pd.read_csv(TEST, dtype={"id": str, "source": str, "member": str, "shard": str})
    try:
        images = load_split_images(table, SHARDS, predictor.input_size)
    except ValueError as err:
        raise AgecheckError(str(err)) from None
    predicted = predictor.predict_arrays(images, int(params.get("batch_size", 64)))
    predictions, metrics = evaluate_predictions(table, predicted)
    write_evaluation(predictions, metrics, METRICS, fresh_dir(RESULTS))
    print(f"evaluate: test {summary_line(metrics)} -> {METRICS}")


if __name__ == "__main__":
    main()
