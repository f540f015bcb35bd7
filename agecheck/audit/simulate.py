"""A made-up month of alcohol sales with known dishonest cashiers, to measure what the audit finds.

The customers are real test photos with their true age and the till's estimate; the sales, stores and
cashiers are invented (``audit.simulation`` in params.yaml). An honest cashier asks for ID with a
probability set by the customer's TRUE age: the cashier judges the person, not the model's number,
so the model's errors do not steer the cashier (the audit, which sees only the estimate, has the
harder task: docs/audit.md). A dishonest cashier skips a share of the checks an honest one would
make. A minor who is asked does not buy; the till has logged the alcohol and the check by then, so
the row stays, with ``id_checked`` = 1 (a refusal is a check made).

:func:`simulate_months` audits many months with fixed seeds and gives the share of dishonest and of
honest cashiers flagged, and the detection curves against the skipped share and the sales per cashier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.audit.cashiers import FLAGGED, TOO_FEW
from agecheck.audit.estimates import ESTIMATE_COLUMNS, NO_FACE
from agecheck.audit.run import audit_sales
from agecheck.audit.sales import REASON, SALES_COLUMNS
from agecheck.config import AuditConfig, AuditSimulationConfig, PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.outputs import write_json

#: The customers table: true age, the till's estimate (NaN: no face found) and its probabilities.
CUSTOMER_COLUMNS = ("age", "estimate", "p_under_legal", "p_under_threshold")
#: The first simulated month starts here; each month is 30 days.
START = pd.Timestamp("2025-01-01")
MONTH_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Month:
    """One simulated month: the sales log (the audit's input), the truth behind each sale
    (``true_age``, ``sold``) and which cashiers are dishonest."""

    sales: pd.DataFrame
    truth: pd.DataFrame
    cashiers: pd.DataFrame


@dataclass(frozen=True)
class Simulation:
    """What the audit found over the simulated months: shares of cashiers flagged (and too few)."""

    months: int
    dishonest_flagged: float
    honest_flagged: float
    too_few: float
    by_skip: pd.DataFrame  # skip, dishonest_flagged, honest_flagged, too_few
    by_sales: pd.DataFrame  # sales, dishonest_flagged, honest_flagged, too_few

    def metrics(self) -> dict[str, Any]:
        """The headline numbers (DVC metrics)."""
        return {
            "months": self.months,
            "dishonest_flagged": round(self.dishonest_flagged, 4),
            "honest_flagged": round(self.honest_flagged, 4),
            "too_few": round(self.too_few, 4),
        }


def _bands(values: np.ndarray, starts: tuple[int, ...]) -> np.ndarray:
    """The band of each value: the index of the last start at or under it (-1 under the first)."""
    return np.searchsorted(np.asarray(starts, dtype=np.float64), values, side="right") - 1


def check_customers(customers: pd.DataFrame, sim: AuditSimulationConfig) -> pd.DataFrame:
    """The customers aged from the first band on, as floats; missing columns or an empty band stop."""
    missing = [name for name in CUSTOMER_COLUMNS if name not in customers.columns]
    if missing:
        raise AgecheckError(f"the customers table lacks {', '.join(missing)} (has {', '.join(customers)})")
    table = customers[list(CUSTOMER_COLUMNS)].astype(np.float64)
    table = table[table["age"] >= sim.mix_ages[0]].reset_index(drop=True)
    counts = np.bincount(_bands(table["age"].to_numpy(), sim.mix_ages), minlength=len(sim.mix_ages))
    empty = [
        f"{age}+"
        for age, n, share in zip(sim.mix_ages, counts, sim.mix_shares, strict=True)
        if not n and share
    ]
    if empty:
        raise AgecheckError(f"no customer photos in the age bands from {', '.join(empty)}")
    return table


def _draw_customers(
    table: pd.DataFrame, sim: AuditSimulationConfig, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Row numbers of ``size`` customers: a band by the mix, then a photo of the band (with replacement)."""
    band_of_photo = _bands(table["age"].to_numpy(), sim.mix_ages)
    band = rng.choice(len(sim.mix_ages), size=size, p=np.asarray(sim.mix_shares) / sum(sim.mix_shares))
    rows = np.empty(size, dtype=np.int64)
    for b in range(len(sim.mix_ages)):
        where = np.flatnonzero(band == b)
        photos = np.flatnonzero(band_of_photo == b)
        rows[where] = photos[rng.integers(0, len(photos), size=len(where))] if len(where) else 0
    return rows


def honest_ask_rate(true_age: np.ndarray, sim: AuditSimulationConfig) -> np.ndarray:
    """How likely an honest cashier asks a customer of this true age for ID."""
    return np.asarray(sim.ask_rates)[_bands(true_age, sim.ask_ages)]


def simulate_month(
    customers: pd.DataFrame,
    sim: AuditSimulationConfig,
    policy: PolicyConfig,
    rng: np.random.Generator,
    skip: float | None = None,
    sales: int | None = None,
    month: int = 0,
) -> Month:
    """One month: ``sim.stores`` x ``sim.cashiers`` cashiers, ``sales`` (default ``sim.sales``) alcohol
    sales each, ``sim.dishonest`` per store skipping ``skip`` (default ``sim.skip``) of the checks an
    honest cashier makes. ``customers``: :data:`CUSTOMER_COLUMNS` (:func:`check_customers`)."""
    table = check_customers(customers, sim)
    skip = sim.skip if skip is None else skip
    per_cashier = sim.sales if sales is None else sales
    n_cashiers = sim.stores * sim.cashiers
    size = n_cashiers * per_cashier
    # who is dishonest: in each store, the cashiers with the `dishonest` lowest random keys
    ranks = rng.random((sim.stores, sim.cashiers)).argsort(axis=1).argsort(axis=1)
    dishonest = (ranks < sim.dishonest).reshape(-1)
    cashier = np.repeat(np.arange(n_cashiers), per_cashier)
    chosen = _draw_customers(table, sim, size, rng)
    true_age = table["age"].to_numpy()[chosen]
    ask = honest_ask_rate(true_age, sim) * np.where(dishonest[cashier], 1 - skip, 1.0)
    checked = rng.random(size) < ask
    stores = np.array([f"S{s + 1:02d}" for s in range(sim.stores)], dtype=object)
    store_of = np.repeat(stores, sim.cashiers)
    names = np.array([f"{store_of[c]}-C{c % sim.cashiers + 1}" for c in range(n_cashiers)], dtype=object)
    tills = np.array([f"{store_of[c]}-T{c % sim.cashiers + 1}" for c in range(n_cashiers)], dtype=object)
    seconds = rng.integers(0, MONTH_SECONDS, size=size)
    frame = pd.DataFrame(
        {
            "sale_id": pd.Series(np.arange(size)).astype(str).radd(f"M{month:02d}-").to_numpy(),
            "time": START + pd.to_timedelta(month * MONTH_SECONDS + seconds, unit="s"),
            "store": store_of[cashier],
            "till": tills[cashier],
            "cashier": names[cashier],
            "alcohol": np.ones(size, dtype=np.int8),
            "id_checked": checked.astype(np.int8),
        }
    )
    for column in ESTIMATE_COLUMNS:
        frame[column] = table[column].to_numpy()[chosen] if column in table else np.nan
    frame[REASON] = np.where(np.isnan(frame["estimate"].to_numpy()), NO_FACE, "")
    truth = pd.DataFrame({"true_age": true_age, "sold": ~(checked & (true_age < policy.legal_age))})
    who = pd.DataFrame({"store": store_of, "cashier": names, "dishonest": dishonest})
    return Month(frame[[*SALES_COLUMNS, *ESTIMATE_COLUMNS, REASON]], truth, who)


def _flag_rates(month: Month, policy: PolicyConfig, config: AuditConfig) -> tuple[float, float, float]:
    """The audit of one month: shares of dishonest and honest cashiers flagged, and of all too few."""
    found = audit_sales(month.sales, policy, config).cashiers
    judged = month.cashiers.merge(found[["store", "cashier", "status"]], on=["store", "cashier"], how="left")
    flagged = (judged["status"] == FLAGGED).to_numpy()
    dishonest = judged["dishonest"].to_numpy()
    share = lambda mask: float(flagged[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return share(dishonest), share(~dishonest), float((judged["status"] == TOO_FEW).mean())


def _average(
    customers: pd.DataFrame,
    config: AuditConfig,
    policy: PolicyConfig,
    months: int,
    seed: int,
    skip: float | None = None,
    sales: int | None = None,
) -> tuple[float, float, float]:
    """The flag rates averaged over ``months`` months; month m draws from the seed ``(seed, m)`` at
    every point of a curve, so the points differ by the setting only, not by the luck of the draw."""
    rates = [
        _flag_rates(
            simulate_month(
                customers, config.simulation, policy, np.random.default_rng([seed, m]), skip, sales, m
            ),
            policy,
            config,
        )
        for m in range(months)
    ]
    return tuple(float(np.nanmean(column)) for column in zip(*rates, strict=True))  # type: ignore[return-value]


def simulate_months(
    customers: pd.DataFrame,
    config: AuditConfig,
    policy: PolicyConfig,
    months: int | None = None,
    seed: int | None = None,
) -> Simulation:
    """Audit ``months`` simulated months (default ``config.simulation.months``, seed ``.seed``) at the
    settings of params.yaml, and along the skip and sales curves."""
    sim = config.simulation
    months = sim.months if months is None else months
    seed = sim.seed if seed is None else seed
    customers = check_customers(customers, sim)
    dishonest, honest, too_few = _average(customers, config, policy, months, seed)
    columns = ["dishonest_flagged", "honest_flagged", "too_few"]
    by_skip = pd.DataFrame(
        [_average(customers, config, policy, months, seed, skip=s) for s in sim.skip_curve], columns=columns
    )
    by_skip.insert(0, "skip", list(sim.skip_curve))
    by_sales = pd.DataFrame(
        [_average(customers, config, policy, months, seed, sales=n) for n in sim.sales_curve], columns=columns
    )
    by_sales.insert(0, "sales", list(sim.sales_curve))
    return Simulation(months, dishonest, honest, too_few, by_skip, by_sales)


def write_simulation(simulation: Simulation, metrics: Path, curves: Path) -> None:
    """The headline numbers as JSON at ``metrics`` (DVC metrics) and the two curves as CSV in the
    folder ``curves`` (DVC plots): ``detection_by_skip.csv``, ``detection_by_sales.csv``."""
    write_json(metrics, simulation.metrics())
    curves.mkdir(parents=True, exist_ok=True)
    simulation.by_skip.to_csv(curves / "detection_by_skip.csv", index=False, float_format="%.4f")
    simulation.by_sales.to_csv(curves / "detection_by_sales.csv", index=False, float_format="%.4f")
