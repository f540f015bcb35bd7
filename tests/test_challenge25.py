"""Challenge 25 rates, the threshold search, the groups table and the report, on known numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from agecheck.config import DEFAULT_PARAMS, load_params, parse_params
from agecheck.errors import AgecheckError
from agecheck.evaluation.challenge25 import (
    challenge25_metrics,
    group_metrics,
    minor_pass,
    rate_curve,
    safe_threshold,
)
from agecheck.evaluation.evaluate import evaluate_predictions
from agecheck.evaluation.report import build_report
from agecheck.evaluation.results import Group, NoSafeThreshold, SafeThreshold, TeenRate, TillCheck
from tests.support.params import PARAMS, changed

POLICY = changed(PARAMS.policy, threshold=25, legal_age=18, max_minor_pass_rate=0.25)
#                 minors (4)          18-24 (1)   adults 25+ (3)
TRUE = np.array([10, 15, 16, 17, 20, 25, 40, 60])
PREDICTED = np.array([12, 26, 24, 30, 23, 24.9, 45, 20])


def test_rates_at_the_policy_threshold() -> None:
    c25 = challenge25_metrics(TRUE, PREDICTED, POLICY)
    # minors estimated 25+: 15 -> 26 and 17 -> 30; adults 25+ estimated under 25: 24.9 and 20
    assert c25.minors == 4 and c25.minors_passed == 2 and c25.minor_pass_rate == 0.5
    assert c25.adults == 3 and c25.adults_checked == 2
    assert c25.adult_check_rate == pytest.approx(2 / 3, abs=1e-4)
    assert 0.5 < c25.minor_pass_rate_upper95 < 1
    assert c25.legal_age == 18 and c25.threshold == 25
    assert c25.teens_val_test is None  # no validation photos


def test_an_estimate_equal_to_the_threshold_is_served() -> None:
    assert minor_pass([17], [25.0], threshold=25, legal_age=18).hits == 1
    assert minor_pass([17], [24.99], threshold=25, legal_age=18).hits == 0


def test_safe_threshold_is_the_lowest_that_keeps_minors_within_the_limit() -> None:
    # 4 minors, at most 25% = 1 may pass: the threshold must exceed the second highest (26)
    assert safe_threshold(TRUE, PREDICTED, POLICY) == 26.1
    strict = changed(POLICY, max_minor_pass_rate=0.0)
    assert safe_threshold(TRUE, PREDICTED, strict) == 30.1
    assert safe_threshold([30, 40], [20, 30], POLICY) is None


@pytest.mark.parametrize("seed", range(5))
def test_safe_threshold_agrees_with_a_brute_force_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 80, 400)
    predicted = (true + rng.normal(0, 6, 400)).round(3)
    policy = changed(POLICY, max_minor_pass_rate=0.01)
    found = safe_threshold(true, predicted, policy)
    grid = np.round(np.arange(18, 120, 0.1), 1)
    ok = [t for t in grid if (minor_pass(true, predicted, t, 18).value or 0) <= 0.01]
    assert found == ok[0]


def test_calibration_on_other_photos() -> None:
    val_true, val_predicted = np.array([10, 16, 17]), np.array([15, 21, 22])
    c25 = challenge25_metrics(
        TRUE, PREDICTED, changed(POLICY, max_minor_pass_rate=0.0), (val_true, val_predicted)
    )
    safe = c25.safe_threshold
    assert isinstance(safe, SafeThreshold)
    assert safe.calibrated_on == "val" and safe.threshold == 22.1
    assert safe.calibration_minor_pass_rate == 0.0
    assert safe.minors_passed == 3  # on the test ages: 26, 24 and 30 are all >= 22.1
    assert safe.adults_checked == 1  # only 20 is under 22.1
    # 13-17 of val (16, 17: neither estimated 25+) and test (15, 16, 17: 26 and 30 are) together
    teens = c25.teens_val_test
    assert teens is not None and (teens.passed, teens.count, teens.rate) == (2, 5, 0.4)


def test_no_safe_threshold_without_minors_to_calibrate_on() -> None:
    safe = challenge25_metrics(TRUE, PREDICTED, POLICY, ([30, 40], [20, 30])).safe_threshold
    assert safe == NoSafeThreshold(calibrated_on="val", max_minor_pass_rate=0.25, threshold=None)


def test_rate_curve_is_monotone() -> None:
    curve = rate_curve(TRUE, PREDICTED, POLICY)
    assert curve["threshold"].iloc[0] == 18 and curve["threshold"].iloc[-1] == 35
    assert curve["minor_pass_rate"].is_monotonic_decreasing
    assert curve["adult_check_rate"].is_monotonic_increasing


def test_groups_with_counts_and_missing_labels() -> None:
    predictions = pd.DataFrame(
        {"gender": ["f", "f", "m", None], "age": [10, 30, 16, 40], "predicted": [26.0, 20.0, 16.0, 41.0]}
    )
    table = group_metrics(predictions, "gender", POLICY)
    assert table["f"] == Group(
        count=2, mae=13.0, minor_pass_rate=1.0, minors=1, adult_check_rate=1.0, adults=1
    )
    assert table["m"].adult_check_rate is None and table["m"].adults == 0
    assert table["not recorded"].count == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": "x"}, "policy.threshold: Input should be a valid number"),
        ({"legal_age": 30}, "policy: legal_age (30.0) must not exceed threshold (25.0)"),
        ({"colour": 1}, "policy.colour: unknown key"),
        ({"max_minor_pass_rate": 2}, "policy.max_minor_pass_rate: Input should be less than 1"),
    ],
)
def test_bad_policy_params_name_the_key(change: dict[str, object], message: str) -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["policy"].update(change)
    with pytest.raises(AgecheckError, match=re.escape(message)):
        parse_params(raw)


def test_missing_section_or_key_is_named(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    del raw["policy"]["threshold"]
    with pytest.raises(AgecheckError, match=re.escape("policy.threshold: missing")):
        parse_params(raw)
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    del raw["serve"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(AgecheckError, match="serve: missing"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("policy: [1, 2\n")
    with pytest.raises(AgecheckError, match="is not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_evaluation_metrics_and_report() -> None:
    table = pd.DataFrame(
        {
            "id": [f"s/{i}.jpg" for i in range(len(TRUE))],
            "source": "s",
            "gender": ["female", "male"] * 4,
            "age": TRUE,
        }
    )
    predictions, evaluation = evaluate_predictions(table, PREDICTED, POLICY)
    c25 = evaluation.challenge25
    assert c25.minor_pass_rate == 0.5
    assert (c25.teens_passed, c25.teens, c25.teen_pass_rate) == (2, 3, 0.6667)  # 13-17 only
    assert evaluation.mean_error_by_age_band["13-17"] == pytest.approx((11 + 8 + 13) / 3, abs=1e-3)
    top = evaluation.headline()
    assert top.mae_13_17 == evaluation.mae_by_age_band["13-17"] and top.teens_served == 0.6667
    assert top.adults_asked == c25.adult_check_rate and top.val_mae is None  # no validation photos
    assert top.model_dump() == {
        "mae": evaluation.mae,
        "mae_13_17": top.mae_13_17,
        "val_mae": None,
        "teens_served": 0.6667,
        "adults_asked": c25.adult_check_rate,
        "mae_s": evaluation.mae,
    }
    assert set(evaluation.by_gender) == {"female", "male"} and evaluation.by_race is None
    assert list(evaluation.groups()) == ["gender"]
    report = build_report(evaluation, predictions, [("evaluate/challenge25_rates.png", "rates")])
    assert "**2 of 4 customers under 18**" in report
    assert "**2 of 3** (66.7%" in report and "Yoti publishes 0.1% for the same age band" in report
    assert "![rates](evaluate/challenge25_rates.png)" in report
    assert "| 65+ |" not in report.split("## Largest errors")[0]  # no band without photos
    worst = report.split("## Largest errors")[1]
    assert "| 50-64 | s/7.jpg | 60 | 20.0 | -40.0 |" in worst


def test_report_gives_the_till_and_the_teens_of_val_and_test() -> None:
    table = pd.DataFrame({"id": [f"s/{i}.jpg" for i in range(len(TRUE))], "source": "s", "age": TRUE})
    predictions, evaluation = evaluate_predictions(table, PREDICTED, POLICY)
    teens = TeenRate(rate=0.05, upper95=0.09, count=190, passed=9)
    till = TillCheck.model_validate(
        {"whole_photos": {"photos": 500, "faces_found": 0.998, "mae": 6.04, "mae_crops": 5.81}}
    )
    c25 = evaluation.challenge25.model_copy(update={"teens_val_test": teens})
    evaluation = evaluation.model_copy(update={"challenge25": c25, "till": till})
    top = evaluation.headline()
    assert top.teens_served == 0.05  # validation and test together, when the evaluation has them
    assert list(till.checks()) == ["whole_photos"]
    report = build_report(evaluation, predictions, [])
    assert "validation and test photos together.** **9 of 190** (5.0%; at most 9.0%" in report
    assert "whole photos (hair, shoulders, background).** Found a face in 99.8% of 500 photos" in report
    assert "off by **6.0 years** on average, against 5.8 on the face crops" in report
