"""Stage audit: the cashier audit measured on simulated months (``audit.simulation``): the test photos
(aged 13+) are the customers, with their true ages and the till's estimates (stage calibrate). How many
dishonest cashiers it flags and how many honest ones, and the two curves (against the share of checks
a dishonest cashier skips, and against the alcohol sales per cashier)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agecheck.audit.simulate import simulate_months, write_simulation
from agecheck.config import load_params
from agecheck.errors import exit_on_error

CUSTOMERS = Path("data/till/test.csv")
METRICS = Path("metrics/audit.json")
CURVES = Path("metrics/audit")


@exit_on_error
def main() -> None:
    params = load_params()
    customers = pd.read_csv(CUSTOMERS, dtype={"id": str, "source": str})
    simulation = simulate_months(customers, params.audit, params.policy)
    write_simulation(simulation, METRICS, CURVES)
    print(
        f"audit: {simulation.months} simulated months: dishonest cashiers flagged "
        f"{simulation.dishonest_flagged:.1%}, honest cashiers flagged {simulation.honest_flagged:.1%}, "
        f"too few sales {simulation.too_few:.1%} -> {METRICS}, {CURVES}"
    )


if __name__ == "__main__":
    main()
