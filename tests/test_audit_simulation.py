"""The simulated months of the cashier audit: their structure (stores, cashiers, the customers' ages,
who asks whom for ID) and what the audit finds in them, on synthetic customers (estimate = true age
+ noise with a mean absolute error of 5 years)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agecheck.audit.estimates import ESTIMATE_COLUMNS
from agecheck.audit.sales import REASON, SALES_COLUMNS
from agecheck.audit.simulate import Month, honest_ask_rate, simulate_month, simulate_months, write_simulation
from agecheck.errors import AgecheckError
from tests.support.customers import synthetic_customers
from tests.support.params import PARAMS, changed

POLICY, CONFIG = PARAMS.policy, PARAMS.audit
SIM = CONFIG.simulation
CUSTOMERS = synthetic_customers()


@pytest.fixture(scope="module")
def month() -> Month:
    return simulate_month(CUSTOMERS, SIM, POLICY, np.random.default_rng(0))


def test_a_month_has_the_stores_cashiers_and_sales_of_the_params(month: Month) -> None:
    sales, cashiers = month.sales, month.cashiers
    assert list(sales.columns) == [*SALES_COLUMNS, *ESTIMATE_COLUMNS, REASON]
    assert len(sales) == SIM.stores * SIM.cashiers * SIM.sales and sales["sale_id"].is_unique
    assert (sales.groupby("cashier").size() == SIM.sales).all()
    assert sales.groupby("store")["cashier"].nunique().eq(SIM.cashiers).all()
    assert len(cashiers) == SIM.stores * SIM.cashiers
    assert cashiers.groupby("store")["dishonest"].sum().eq(SIM.dishonest).all()
    assert (sales["alcohol"] == 1).all() and set(sales["id_checked"]) == {0, 1}
    no_face = sales["estimate"].isna()
    assert (sales.loc[no_face, REASON] == "no_face").all() and (sales.loc[~no_face, REASON] == "").all()
    assert 0.01 < no_face.mean() < 0.05


def test_the_customers_ages_follow_the_mix(month: Month) -> None:
    bands = np.searchsorted(SIM.mix_ages, month.truth["true_age"], side="right") - 1
    shares = np.bincount(bands, minlength=len(SIM.mix_ages)) / len(bands)
    np.testing.assert_allclose(shares, SIM.mix_shares, atol=0.01)
    assert month.truth["true_age"].min() >= SIM.mix_ages[0]


def _checked(month: Month, dishonest: bool) -> pd.Series:
    """Checks made per sale, and the checks an honest cashier would make, for one kind of cashier."""
    who = month.cashiers.set_index("cashier")["dishonest"]
    mine = month.sales["cashier"].map(who).to_numpy() == dishonest
    expected = honest_ask_rate(month.truth["true_age"].to_numpy()[mine], SIM)
    return pd.Series({"made": month.sales["id_checked"].to_numpy()[mine].sum(), "honest": expected.sum()})


def test_honest_cashiers_ask_by_true_age_and_dishonest_ones_skip_half(month: Month) -> None:
    honest, dishonest = _checked(month, False), _checked(month, True)
    assert honest["made"] / honest["honest"] == pytest.approx(1, abs=0.03)
    assert dishonest["made"] / dishonest["honest"] == pytest.approx(1 - SIM.skip, abs=0.05)
    # the honest cashier looks at the customer, not at the model: in each true-age band the rate does
    # not depend on whether the till estimated the customer under the threshold
    who = month.cashiers.set_index("cashier")["dishonest"]
    honest_sales = month.sales[~month.sales["cashier"].map(who).to_numpy()]
    age = month.truth["true_age"][honest_sales.index]
    for low, high, rate in ((18, 25, 0.9), (25, 30, 0.5), (30, 200, 0.05)):
        band = honest_sales[(age >= low).to_numpy() & (age < high).to_numpy()].dropna(subset=["estimate"])
        under = band["estimate"] < POLICY.threshold
        assert band.loc[under, "id_checked"].mean() == pytest.approx(rate, abs=0.05)
        assert band.loc[~under, "id_checked"].mean() == pytest.approx(rate, abs=0.05)


def test_a_minor_asked_for_id_does_not_buy_but_the_check_is_logged(month: Month) -> None:
    minor = (month.truth["true_age"] < POLICY.legal_age).to_numpy()
    checked = (month.sales["id_checked"] == 1).to_numpy()
    np.testing.assert_array_equal(month.truth["sold"].to_numpy(), ~(minor & checked))
    assert (minor & checked).sum() > 100 and (minor & ~checked).sum() > 0  # skipped checks sell to minors


def test_a_seed_gives_one_month() -> None:
    one = simulate_month(CUSTOMERS, SIM, POLICY, np.random.default_rng(5), month=3)
    again = simulate_month(CUSTOMERS, SIM, POLICY, np.random.default_rng(5), month=3)
    other = simulate_month(CUSTOMERS, SIM, POLICY, np.random.default_rng(6), month=3)
    pd.testing.assert_frame_equal(one.sales, again.sales)
    assert not one.sales["id_checked"].equals(other.sales["id_checked"])
    assert one.sales["sale_id"].str.startswith("M03-").all()


def test_the_audit_finds_the_dishonest_cashiers(tmp_path: Path) -> None:
    """The issue's target at the defaults (>= 90% of dishonest cashiers flagged, <= 5% of honest ones),
    on a few months; the curves: more skipping, more found; 50 sales a month are too few."""
    sim = changed(SIM, skip_curve=(0.1, 0.5, 1.0), sales_curve=(50, 300))
    found = simulate_months(CUSTOMERS, changed(CONFIG, simulation=sim), POLICY, months=3, seed=7)
    assert found.dishonest_flagged >= 0.9 and found.honest_flagged <= 0.05 and found.too_few == 0
    by_skip = found.by_skip.set_index("skip")
    assert by_skip["dishonest_flagged"].is_monotonic_increasing
    assert by_skip.loc[0.5, "dishonest_flagged"] == found.dishonest_flagged  # the same months
    assert (by_skip["honest_flagged"] <= 0.05).all()
    by_sales = found.by_sales.set_index("sales")
    assert by_sales.loc[50, "too_few"] == 1 and by_sales.loc[50, "dishonest_flagged"] == 0
    write_simulation(found, tmp_path / "audit.json", tmp_path / "audit")
    assert {p.name for p in (tmp_path / "audit").iterdir()} == {
        "detection_by_skip.csv",
        "detection_by_sales.csv",
    }
    assert (tmp_path / "audit.json").is_file()
    assert set(found.metrics()) == {"months", "dishonest_flagged", "honest_flagged", "too_few"}


def test_a_customers_table_the_simulation_cannot_use() -> None:
    with pytest.raises(AgecheckError, match="the customers table lacks p_under_legal"):
        simulate_month(CUSTOMERS.drop(columns="p_under_legal"), SIM, POLICY, np.random.default_rng(0))
    with pytest.raises(AgecheckError, match="no customer photos in the age bands from 65"):
        simulate_month(CUSTOMERS[CUSTOMERS["age"] < 65], SIM, POLICY, np.random.default_rng(0))
