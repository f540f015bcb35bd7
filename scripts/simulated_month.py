"""Write one simulated month as a till would leave it: a sales log and the till's estimates log.

The customers are the test photos (their true ages and the till's estimates from the calibrate stage,
``data/till/test.csv``: run ``dvc repro calibrate`` first), drawn and served as ``audit.simulation``
in ``params.yaml`` says; nothing of a photo is written. Try the audit on it:

    python scripts/simulated_month.py month/
    agecheck audit month/sales.csv --estimates month/estimates.jsonl --output month/audit
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.audit.sales import SALES_COLUMNS
from agecheck.audit.simulate import simulate_month
from agecheck.config import PolicyConfig, load_params
from agecheck.errors import AgecheckError, exit_on_error
from agecheck.till.estimates_log import EstimatesLog
from agecheck.till.policy import decision

CUSTOMERS = Path("data/till/test.csv")


def log_line(sale: pd.Series, policy: PolicyConfig) -> dict[str, Any]:
    """The estimates log's line of a sale: the customer's face, or none."""
    found = not np.isnan(sale["estimate"])
    face = {
        "age": round(float(sale["estimate"]), 1),
        "decision": decision(float(sale["estimate"]), policy),
        "customer": True,
        "p_under_legal": float(sale["p_under_legal"]),
        "p_under_threshold": float(sale["p_under_threshold"]),
    }
    return {
        "time": str(sale["time"]),
        "sale_id": sale["sale_id"],
        "till": sale["till"],
        "cashier": sale["cashier"],
        "status": "ok" if found else "no_face",
        "threshold": policy.threshold,
        "legal_age": policy.legal_age,
        "customer": 0 if found else None,
        "faces": [face] if found else [],
    }


@exit_on_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder for sales.csv and estimates.jsonl")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if not CUSTOMERS.is_file():
        raise AgecheckError(f"{CUSTOMERS} is missing: run dvc repro calibrate first")
    params = load_params()
    policy = params.policy
    customers = pd.read_csv(CUSTOMERS, dtype={"id": str, "source": str})
    month = simulate_month(customers, params.audit.simulation, policy, np.random.default_rng(args.seed))
    args.output.mkdir(parents=True, exist_ok=True)
    month.sales[list(SALES_COLUMNS)].to_csv(args.output / "sales.csv", index=False)
    (args.output / "estimates.jsonl").unlink(missing_ok=True)
    with EstimatesLog(args.output / "estimates.jsonl") as log:
        for _, sale in month.sales.iterrows():
            log.append(log_line(sale, policy))
    dishonest = month.cashiers[month.cashiers["dishonest"]]
    print(f"{len(month.sales)} sales -> {args.output}; dishonest cashiers: {', '.join(dishonest['cashier'])}")


if __name__ == "__main__":
    main()
