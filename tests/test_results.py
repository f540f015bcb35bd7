"""The typed result of an evaluation: written and read back unchanged, the committed files parse into it
(a schema drift fails here), and reading it needs none of the numerical or plotting libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from agecheck.evaluation.evaluate import evaluate_predictions, prediction_table
from agecheck.evaluation.results import DETAILS, Evaluation, Headline, TillCheck
from tests.support.params import PARAMS

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = {Evaluation: ROOT / "metrics/evaluate" / DETAILS, Headline: ROOT / "metrics/metrics.json"}
TILL = {"frames": {"photos": 40, "faces_found": 0.975, "mae": 6.1, "mae_crops": 5.9}}


def _split(rng: np.random.Generator, photos: int) -> tuple[pd.DataFrame, np.ndarray]:
    ages = rng.integers(5, 80, photos)
    table = pd.DataFrame(
        {
            "id": [f"p{i}.jpg" for i in range(photos)],
            "source": rng.choice(["aaf", "utkface"], photos),
            "gender": rng.choice(["female", "male", None], photos),
            "age": ages,
        }
    )
    return table, ages + rng.normal(0, 5, photos)


def _evaluation() -> Evaluation:
    """An evaluation as the evaluate stage makes it, on synthetic predictions."""
    rng = np.random.default_rng(0)
    validation = prediction_table(*_split(rng, 60))
    _, evaluation = evaluate_predictions(*_split(rng, 40), PARAMS.policy, validation)
    return evaluation.model_copy(update={"till": TillCheck.model_validate(TILL)})


def test_written_and_read_back_equal(tmp_path: Path) -> None:
    evaluation = _evaluation()
    assert evaluation.challenge25.teens_val_test is not None and evaluation.by_gender is not None
    evaluation.write(tmp_path / DETAILS)
    assert Evaluation.read(tmp_path / DETAILS) == evaluation
    evaluation.headline().write(tmp_path / "metrics.json")
    assert Headline.read(tmp_path / "metrics.json") == evaluation.headline()


def test_absent_parts_are_left_out_and_empty_rates_kept() -> None:
    table = pd.DataFrame({"id": ["a", "b"], "source": "s", "age": [30, 40]})  # no minors, no labels
    _, evaluation = evaluate_predictions(table, np.array([28.0, 45.0]), PARAMS.policy)
    written = evaluation.model_dump()
    assert not {"by_gender", "by_race", "till"} & set(written)
    c25 = written["challenge25"]
    assert "teens_val_test" not in c25 and c25["minor_pass_rate"] is None
    assert list(c25["safe_threshold"]) == ["calibrated_on", "max_minor_pass_rate", "threshold"]
    assert c25["safe_threshold"]["threshold"] is None
    assert Evaluation.model_validate_json(evaluation.model_dump_json()) == evaluation


@pytest.mark.parametrize("model", list(COMMITTED))
def test_the_committed_files_parse_and_are_written_back_byte_for_byte(model: type[Evaluation]) -> None:
    path = COMMITTED[model]
    assert json.dumps(model.read(path).model_dump(), indent=2) + "\n" == path.read_text(encoding="utf-8")


def test_the_committed_headline_is_the_headline_of_the_committed_details() -> None:
    """The details' headline; with the till deciding on the under-25 head (``tradeoff.json`` then has
    the till's rule), its two rates are that rule's."""
    headline = Evaluation.read(COMMITTED[Evaluation]).headline()
    tradeoff = COMMITTED[Evaluation].parent / "tradeoff.json"
    till = json.loads(tradeoff.read_text(encoding="utf-8")).get("till") if tradeoff.is_file() else None
    if till:
        rates = {
            "teens_served": till["teens_served_val_test"]["rate"],
            "adults_asked": till["test"]["adults_asked"]["rate"],
        }
        headline = headline.model_copy(update=rates)
    assert headline == Headline.read(COMMITTED[Headline])


def test_a_key_the_types_do_not_know_or_miss_fails() -> None:
    details = json.loads(COMMITTED[Evaluation].read_text(encoding="utf-8"))
    details["challenge25"]["new_rate"] = 0.1
    with pytest.raises(ValidationError, match="new_rate"):
        Evaluation.model_validate(details)
    del details["challenge25"]["new_rate"], details["rmse"]
    with pytest.raises(ValidationError, match="rmse"):
        Evaluation.model_validate(details)


def test_the_report_stage_needs_no_numerical_or_plotting_code() -> None:
    """It reads the result: a change to how the numbers are computed or drawn must not rerun it."""
    computing = [f"agecheck.evaluation.{name}" for name in ("evaluate", "plots", "challenge25", "metrics")]
    heavy = {"matplotlib", "scipy", "sklearn", "tensorflow", "keras", *computing}
    code = f"import runpy, sys; runpy.run_path('stages/report.py'); print(sorted(set(sys.modules) & {heavy}))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
