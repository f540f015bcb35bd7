"""Simulated receipts with known ages, to measure what the correction gets right (``segments.simulation``).

The customers are the TEST photos (aged ``segments.min_age`` and over) with their true ages and the
till's estimates and softmaxes (stage calibrate): the correction learns the model's errors on the
validation photos and is measured on photos it never saw. A scenario draws each sale's customer: a
true group by the scenario's ``mix``, then a photo of that group (with replacement, so a photo is
behind many sales: the bootstrap resamples photos). Each category is in a sale with a probability
set per TRUE group (``categories``), or, in a scenario that does not depend on age, with the same
probability for everyone (the average over the scenario's mix). The truth is then known per sale,
and :func:`measure` compares the groups' shares and purchase rates by the estimate, the softmax and
the correction with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.audit.estimates import NO_FACE
from agecheck.audit.sales import REASON
from agecheck.config import PolicyConfig, SegmentsScenario, SegmentsSimulationConfig
from agecheck.errors import AgecheckError
from agecheck.segments.bootstrap import CORRECTED, ESTIMATE, SOFTMAX, TRUE, Profile, interval
from agecheck.segments.groups import Groups
from agecheck.segments.receipts import Receipts
from agecheck.segments.run import Segments

#: The customers table: the photo, its true age and the till's estimate (NaN: no face found).
CUSTOMER_COLUMNS = ("id", "age", "estimate")
START = pd.Timestamp("2025-01-01")
MONTH_SECONDS = 30 * 24 * 3600
STORES = 20
DECIMALS = 4


@dataclass(frozen=True)
class Simulated:
    """A simulated month: the receipts (sales with ``estimate`` and ``reason``), the customers'
    softmaxes per sale, and each sale's true age."""

    receipts: Receipts
    probs: np.ndarray
    true_age: np.ndarray


def check_customers(
    customers: pd.DataFrame, probs: np.ndarray, groups: Groups
) -> tuple[pd.DataFrame, np.ndarray]:
    """The customers from ``groups.min_age``, with their softmax rows; a missing column, a softmax per
    photo that does not match, or a group without photos stops."""
    missing = [name for name in CUSTOMER_COLUMNS if name not in customers.columns]
    if missing:
        raise AgecheckError(f"the customers table lacks {', '.join(missing)} (has {', '.join(customers)})")
    if len(probs) != len(customers):
        raise AgecheckError(
            f"{len(probs)} softmaxes for {len(customers)} customer photos: not the same photos"
        )
    keep = (customers["age"] >= groups.min_age).to_numpy()
    table = customers.loc[keep, list(CUSTOMER_COLUMNS)].reset_index(drop=True)
    counts = np.bincount(groups.of_age(table["age"].to_numpy(dtype=np.float64)), minlength=len(groups))
    empty = [name for name, n in zip(groups.names, counts, strict=True) if not n]
    if empty:
        raise AgecheckError(f"no customer photos aged {', '.join(empty)}")
    return table, probs[keep]


def purchase_rates(sim: SegmentsSimulationConfig, scenario: SegmentsScenario) -> np.ndarray:
    """P(a sale contains the category) per category and TRUE group; the same for every group (the
    average under the scenario's mix) when the scenario does not depend on age."""
    rates = np.array(list(sim.categories.values()), dtype=np.float64)
    if scenario.depends_on_age:
        return rates
    average = rates @ np.asarray(scenario.mix)
    return np.repeat(average[:, None], rates.shape[1], axis=1)


def simulate(
    customers: pd.DataFrame,
    probs: np.ndarray,
    groups: Groups,
    sim: SegmentsSimulationConfig,
    scenario: SegmentsScenario,
    rng: np.random.Generator,
    sales: int | None = None,
) -> Simulated:
    """A month of ``sales`` (default ``sim.sales``) receipts; ``customers``: :func:`check_customers`."""
    size = sim.sales if sales is None else sales
    true_group = rng.choice(len(groups), size=size, p=np.asarray(scenario.mix) / sum(scenario.mix))
    of_photo = groups.of_age(customers["age"].to_numpy(dtype=np.float64))
    photo = np.empty(size, dtype=np.int64)
    for g in range(len(groups)):
        where, photos = np.flatnonzero(true_group == g), np.flatnonzero(of_photo == g)
        photo[where] = photos[rng.integers(0, len(photos), size=len(where))]
    chance = purchase_rates(sim, scenario)[:, of_photo[photo]].T  # sales x categories
    sale, category = np.nonzero(rng.random(chance.shape) < chance)
    estimate = customers["estimate"].to_numpy(dtype=np.float64)[photo]
    seconds = np.sort(rng.integers(0, MONTH_SECONDS, size=size))
    table = pd.DataFrame(
        {
            "sale_id": [f"R{i:07d}" for i in range(size)],
            "time": (START + pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%dT%H:%M:%S"),
            "store": [f"S{s + 1:02d}" for s in rng.integers(0, STORES, size=size)],
            "customer": pd.Series(photo).map("C{:05d}".format).to_numpy(),  # the photo: a customer id
            REASON: np.where(np.isnan(estimate), NO_FACE, ""),
            "estimate": estimate,
        }
    )
    receipts = Receipts(table, sale.astype(np.int64), category.astype(np.int64), list(sim.categories))
    return Simulated(receipts, probs[photo], customers["age"].to_numpy(dtype=np.float64)[photo])


def _errors(profile: Profile, measure: str) -> dict[str, np.ndarray]:
    """Per kind, the mean absolute error of the shares (``measure`` "share") or of the purchase rates
    ("rate") against the truth, over the groups (and categories); per resample for stacked profiles."""

    def cells(kind: str) -> np.ndarray:
        values = profile.shares(kind) if measure == "share" else profile.rates[kind]
        return values.reshape(*values.shape[: values.ndim - (1 if measure == "share" else 2)], -1)

    truth = cells(TRUE)
    kinds = [kind for kind in (ESTIMATE, SOFTMAX, CORRECTED) if kind in profile.sizes]
    return {kind: np.nanmean(np.abs(cells(kind) - truth), axis=-1) for kind in kinds}


def _rounded(value: float | np.floating) -> float | None:
    return None if not np.isfinite(value) else round(float(value), DECIMALS)


def measure(segments: Segments, scenario: SegmentsScenario) -> dict[str, Any]:
    """A scenario's figures: the mean absolute errors of the group shares and of the group x category
    purchase rates against the truth (by the estimate, the softmax, corrected), the bootstrap interval
    of (error by the estimate - error corrected), the largest corrected rate error and, in a scenario
    where nothing depends on age, the share of corrected lifts whose interval holds 1."""
    point, resamples = segments.point, segments.resamples
    out: dict[str, Any] = {
        "sales": segments.summary["sales"],
        "customers": segments.summary["customers"],
        "mix": list(scenario.mix),
    }
    for measure_name in ("share", "rate"):
        errors, spread = _errors(point, measure_name), _errors(resamples, measure_name)
        out[f"{measure_name}_mae"] = {kind: _rounded(value) for kind, value in errors.items()}
        low, high = interval(spread[ESTIMATE] - spread[CORRECTED])
        out[f"{measure_name}_mae_difference"] = {
            "estimate_minus_corrected": _rounded(errors[ESTIMATE] - errors[CORRECTED]),
            "low": _rounded(low),
            "high": _rounded(high),
        }
    out["rate_max_error_corrected"] = _rounded(np.nanmax(np.abs(point.rates[CORRECTED] - point.rates[TRUE])))
    if not scenario.depends_on_age:
        low, high = interval(resamples.lifts(CORRECTED))
        judged = np.isfinite(low) & np.isfinite(high)
        out["lifts_within_interval_of_1"] = _rounded(np.mean((low <= 1) & (high >= 1), where=judged))
        out["lift_max_distance_from_1"] = {
            kind: _rounded(np.nanmax(np.abs(point.lifts(kind) - 1))) for kind in (ESTIMATE, CORRECTED)
        }
    return out


def share_rows(segments: Segments, scenario: str) -> pd.DataFrame:
    """The plot's rows of a scenario: per group, the true, raw (by the estimate) and corrected shares."""
    point = segments.point
    return pd.DataFrame(
        {
            "group": segments.summary["groups"],
            "scenario": scenario,
            "true": np.round(point.shares(TRUE), DECIMALS),
            "raw": np.round(point.shares(ESTIMATE), DECIMALS),
            "corrected": np.round(point.shares(CORRECTED), DECIMALS),
        }
    )


def write_demo(
    simulated: Simulated, folder: Path, policy: PolicyConfig, coverage: float
) -> tuple[Path, Path]:
    """The simulated month as ``agecheck segments`` reads it: ``receipts.csv`` (one row per sale and
    category, the photo's id as ``customer``) and ``estimates.jsonl``, the lines the till would have
    logged (:func:`agecheck.till.estimates_log.log_entry`, timed as the sale)."""
    import json

    from agecheck.faces.box import Box
    from agecheck.model.age_model import softmax_estimates
    from agecheck.till.estimates_log import Sale, log_entry
    from agecheck.till.pipeline import FaceResult
    from agecheck.till.policy import decision, under_age_probabilities

    receipts = simulated.receipts
    sales = receipts.sales
    folder.mkdir(parents=True, exist_ok=True)
    bought = np.asarray(receipts.categories, dtype=object)[receipts.category]
    nothing = np.setdiff1d(np.arange(len(sales)), receipts.sale)  # a row with an empty category cell
    order = np.argsort(np.concatenate([receipts.sale, nothing]), kind="stable")
    rows = sales.iloc[np.concatenate([receipts.sale, nothing])[order]][
        ["sale_id", "time", "store", "customer"]
    ]
    rows = rows.assign(category=np.concatenate([bought, np.full(len(nothing), "", dtype=object)])[order])
    rows.to_csv(folder / "receipts.csv", index=False)
    box = Box(220.0, 130.0, 190.0, 210.0, 0.95)
    with (folder / "estimates.jsonl").open("w", encoding="utf-8") as log:
        for sale_id, time, estimate, probs in zip(
            sales["sale_id"], sales["time"], sales["estimate"], simulated.probs, strict=True
        ):
            faces = []
            if np.isfinite(estimate):
                (e,) = softmax_estimates(np.array([estimate]), probs[None].astype(np.float64), coverage)
                under = under_age_probabilities(e.probs, policy)[0]
                faces = [FaceResult(box, e, decision(estimate, policy, under), True, under)]
            entry = log_entry(faces, "ok" if faces else NO_FACE, policy, Sale(sale_id))
            log.write(json.dumps({**entry, "time": f"{time}.000+00:00"}, separators=(",", ":")) + "\n")
    return folder / "receipts.csv", folder / "estimates.jsonl"
