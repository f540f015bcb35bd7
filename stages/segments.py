"""Stage segments: the shopping profiles' correction measured on simulated months (``segments.simulation``):
the test photos (aged ``segments.min_age`` and over) are the customers, with their true ages and the till's
estimates and softmaxes (stage calibrate), the correction learns the model's errors from the validation
photos' confusion matrix (the calibration file). Per scenario, the errors of the group shares and of the
purchase rates against the truth, raw and corrected; the profiles of the first scenario as the command
writes them (with the truth); and its receipts and estimates log, for ``agecheck segments`` to run on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.outputs import fresh_dir, write_json
from agecheck.segments.groups import Groups, read_confusion
from agecheck.segments.run import segment, write_segments
from agecheck.segments.simulate import check_customers, measure, share_rows, simulate, write_demo

CUSTOMERS = Path("data/till/test.csv")
PROBS = Path("data/till/test_probs.npy")
CALIBRATION = Path("models/age_model.calibration.json")
METRICS = Path("metrics/segments.json")
PLOTS = Path("metrics/segments")
DEMO = Path("data/segments")


@exit_on_error
def main() -> None:
    params = load_params()
    config, sim = params.segments, params.segments.simulation
    groups = Groups.from_config(config)
    confusion = read_confusion(CALIBRATION, groups)
    customers, probs = check_customers(
        pd.read_csv(CUSTOMERS, dtype={"id": str, "source": str}), np.load(PROBS), groups
    )
    metrics = {
        "groups": groups.names,
        "validation_shares": dict(
            zip(groups.names, np.round(confusion.true_shares(), 4).tolist(), strict=True)
        ),
    }
    shares, plots = [], fresh_dir(PLOTS)
    for number, (name, scenario) in enumerate(sim.scenarios.items()):
        month = simulate(customers, probs, groups, sim, scenario, np.random.default_rng([sim.seed, number]))
        found = segment(
            month.receipts, groups, confusion, config, month.probs, month.true_age, simulation=True
        )
        metrics[name] = measure(found, scenario)
        shares.append(share_rows(found, name))
        if number == 0:
            write_segments(found, plots / "simulated")
            rng = np.random.default_rng([sim.seed, len(sim.scenarios)])  # not a scenario's month
            demo = simulate(customers, probs, groups, sim, scenario, rng, sim.log_sales)
            write_demo(demo, fresh_dir(DEMO), params.policy, params.serve.interval)
        rates, share = metrics[name]["rate_mae"], metrics[name]["share_mae"]
        print(
            f"segments: {name}: group shares off by {share['estimate']:.2%} raw, {share['corrected']:.2%} "
            f"corrected; purchase rates by {rates['estimate']:.2%} raw, {rates['corrected']:.2%} corrected"
        )
    pd.concat(shares).to_csv(plots / "group_shares.csv", index=False)
    write_json(plots / "details.json", metrics)
    write_json(METRICS, {name: headline(metrics[name]) for name in sim.scenarios})
    print(f"segments: -> {METRICS}, {plots} (details.json: everything), {DEMO}")


def headline(measured: dict) -> dict:
    """A scenario's few numbers for ``dvc metrics show``: the mean errors of the group shares and of the
    group x category purchase rates, raw (group of the estimate) and corrected, and the bootstrap
    interval of the rates' gain (raw minus corrected); the null scenario's lifts within their intervals."""
    gain = measured["rate_mae_difference"]
    out = {
        "share_raw": measured["share_mae"]["estimate"],
        "share_corrected": measured["share_mae"]["corrected"],
        "rate_raw": measured["rate_mae"]["estimate"],
        "rate_corrected": measured["rate_mae"]["corrected"],
        "rate_gain_low": gain["low"],
        "rate_gain_high": gain["high"],
    }
    if "lifts_within_interval_of_1" in measured:
        out["lifts_in_interval"] = measured["lifts_within_interval_of_1"]
    return out


if __name__ == "__main__":
    main()
