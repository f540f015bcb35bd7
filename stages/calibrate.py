"""Stage calibrate: the validation and test photos through the till, as a till sees a customer (find the
faces, the customer's is the largest, align, estimate). Writes the calibration file that travels with the
model (from validation) and the till's estimate of every test photo: the simulated customers of the
cashier audit and of the shopping profiles (never pixels: ids, true ages, estimates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.evaluation.calibration import calibration, till_customers
from agecheck.model.age_model import AgeModel
from agecheck.outputs import fresh_dir, write_json
from agecheck.till.pipeline import Till

SPLITS = Path("data/split")
SHARDS = Path("data/validated")
MODEL = Path("models/age_model.keras")
CALIBRATION = Path("models/age_model.calibration.json")
CUSTOMERS = Path("data/till")


@exit_on_error
def main() -> None:
    params = load_params()
    till = Till.from_params(AgeModel.load(MODEL), params)
    out, rates = fresh_dir(CUSTOMERS), {}
    for split in ("val", "test"):
        table = pd.read_csv(SPLITS / f"{split}.csv", dtype={"file_name": str, "member": str})
        print(f"calibrate: {len(table)} {split} photos through the till")
        customers, probs = till_customers(till, table, SHARDS)
        if split == "val":
            rates = calibration(customers, params.policy)
            write_json(CALIBRATION, rates)
        else:
            customers.to_csv(out / "test.csv", index=False)
            np.save(out / "test_probs.npy", probs)
    print(
        f"calibrate: val, faces found {rates['faces_found']:.1%}; at {params.policy.threshold:g}: adults 25+ "
        f"asked {rates['adult_asked_rate']}, minors served {rates['minor_served_rate']} -> {CALIBRATION}; "
        f"test customers -> {out}"
    )


if __name__ == "__main__":
    main()
