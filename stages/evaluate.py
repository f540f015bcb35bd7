"""Stage evaluate: predict the validation and test splits; test metrics (errors, Challenge 25
rates with the threshold calibrated on validation, groups), predictions tables and figures; and the
test photos through the till (whole photos, synthetic till frames) beside the same photos' crops."""

from __future__ import annotations

from pathlib import Path

from agecheck.config import CHALLENGE_AGE, load_params
from agecheck.errors import exit_on_error
from agecheck.evaluation.evaluate import (
    evaluate_predictions,
    prediction_table,
    summary_line,
    write_evaluation,
)
from agecheck.evaluation.predict import predict_split
from agecheck.evaluation.results import TillCheck
from agecheck.evaluation.till_check import till_metrics
from agecheck.evaluation.tradeoff import point_rates, scores, tradeoff, write_tradeoff
from agecheck.faces.table import read_faces
from agecheck.model.age_model import AgeModel
from agecheck.outputs import fresh_dir

SPLITS = Path("data/split")
SHARDS = Path("data/validated")
FACES = Path("data/faces/faces.csv")
MODEL = Path("models/age_model.keras")
METRICS = Path("metrics/metrics.json")
RESULTS = Path("metrics/evaluate")


@exit_on_error
def main() -> None:
    params = load_params()
    policy = params.policy
    model = AgeModel.load(MODEL)
    faces = read_faces(FACES)
    val_table, val_ages, val_heads = predict_split(model, SPLITS / "val.csv", SHARDS, faces, params)
    validation = prediction_table(val_table, val_ages)
    test_table, test_ages, test_heads = predict_split(model, SPLITS / "test.csv", SHARDS, faces, params)
    predictions, evaluation = evaluate_predictions(test_table, test_ages, policy, validation)
    till = TillCheck.model_validate(
        till_metrics(model, params, test_table.assign(predicted=test_ages), faces, SHARDS)
    )
    evaluation = evaluation.model_copy(update={"till": till})
    results = fresh_dir(RESULTS)
    validation.to_csv(results / "val_predictions.csv", index=False)
    write_evaluation(predictions, evaluation, results, policy)
    val_scores, test_scores = (
        scores(val_table, val_ages, val_heads),
        scores(test_table, test_ages, test_heads),
    )
    curves, points = tradeoff(val_scores, test_scores, policy.max_teen_pass_rate)
    headline = evaluation.headline()
    if policy.rule == "heads" and policy.threshold == CHALLENGE_AGE and test_scores.p_under_25 is not None:
        # the till decides on the under-25 head: the headline's two rates are that rule's
        till_rule = points["till"] = point_rates(val_scores, test_scores, "heads", policy.heads_cut)
        headline = headline.model_copy(
            update={
                "teens_served": till_rule["teens_served_val_test"]["rate"],
                "adults_asked": till_rule["test"]["adults_asked"]["rate"],
            }
        )
        print(
            f"evaluate: the till's rule, heads at {policy.heads_cut:g}: 13-17 served (val + test) "
            f"{headline.teens_served}, adults 25+ asked (test) {headline.adults_asked}"
        )
    headline.write(METRICS)
    write_tradeoff(curves, points, results)
    c25 = evaluation.challenge25
    print(f"evaluate: test {summary_line(evaluation)} -> {METRICS}")
    print(
        f"evaluate: Challenge {policy.threshold:g}: minors served without ID {c25.minor_pass_rate} "
        f"(13-17: {c25.teen_pass_rate}), adults asked for ID {c25.adult_check_rate}; threshold for "
        f"<= {policy.max_minor_pass_rate:.0%} on val: {c25.safe_threshold.threshold}"
    )
    for rule, point in points["rules"].items():
        if point["cut"] is None:
            print(f"evaluate: rule {rule}: {point['reason']}")
            continue
        val, test = point["val"], point["test"]
        print(
            f"evaluate: rule {rule} at {point['cut']:g} (chosen on val): 13-17 served "
            f"{val['teens_served']['rate']} val, {test['teens_served']['rate']} test; adults 25+ asked "
            f"{val['adults_asked']['rate']} val, {test['adults_asked']['rate']} test"
        )
    for name, summary in till.checks().items():
        print(
            f"evaluate: till, {name}: faces found {summary.faces_found:.1%}, MAE {summary.mae} "
            f"(the same photos' crops: {summary.mae_crops})"
        )


if __name__ == "__main__":
    main()
