"""The shopping profiles of a set of receipts, from the joined sales to the files: ``groups.csv``,
``categories.csv``, ``summary.json`` and ``segments.html``.

:func:`segment` takes the receipts with each sale's estimate (from the estimates log, the frames, or
:mod:`agecheck.segments.simulate`), puts each sale in an age group three ways (the group of the
estimate, the softmax spread over the groups, and the estimate's counts corrected through the
validation photos' confusion matrix), bootstraps the customers, and tabulates. A sale without a usable
face is "age unknown": counted, by reason, and kept out of the groups, never dropped in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.audit.estimates import join_estimates
from agecheck.audit.run import write_results
from agecheck.audit.sales import REASON
from agecheck.config import SegmentsConfig
from agecheck.errors import AgecheckError
from agecheck.segments.bootstrap import (
    CORRECTED,
    ESTIMATE,
    SOFTMAX,
    TRUE,
    Profile,
    Sample,
    interval,
    profiles,
)
from agecheck.segments.groups import Confusion, Groups
from agecheck.segments.receipts import Receipts

FILES = ("groups.csv", "categories.csv", "summary.json", "segments.html")
#: The group of the sales without an estimate, and of every sale (a category's average rate).
UNKNOWN, EVERYONE = "age unknown", "all customers"
OK_STATUS, TOO_FEW = "ok", "too few sales"
DECIMALS = 4


@dataclass(frozen=True)
class Segments:
    """The profiles: per group, per group and category, the headline numbers, and the profiles
    themselves (as measured, and the bootstrap resamples) for the simulation's errors."""

    groups: pd.DataFrame
    categories: pd.DataFrame
    summary: dict[str, Any]
    point: Profile
    resamples: Profile


def _sample(
    receipts: Receipts, groups: Groups, probs: np.ndarray | None, true_age: np.ndarray | None
) -> tuple[Sample, np.ndarray]:
    """The sales with an estimate as the bootstrap's arrays, and which sales they are."""
    sales = receipts.sales
    known = (sales[REASON] == "").to_numpy() & sales["estimate"].notna().to_numpy()
    position = np.cumsum(known) - 1
    pairs = known[receipts.sale]
    kinds = {ESTIMATE: groups.of_estimate(sales["estimate"].to_numpy()[known])}
    if true_age is not None:
        kinds[TRUE] = groups.of_age(true_age[known])
    soft = None
    if probs is not None and probs.shape[1] and np.isfinite(probs[known]).all():
        mass = probs[known].astype(np.float64) @ groups.of_years(probs.shape[1])
        soft = mass / mass.sum(axis=1, keepdims=True)  # the log's rounding: each row adds up to 1 again
    customer = pd.factorize(sales["customer"].to_numpy()[known])[0]
    sample = Sample(
        customer,
        kinds,
        soft,
        position[receipts.sale[pairs]],
        receipts.category[pairs],
        len(groups),
        len(receipts.categories),
    )
    return sample, known


def every_sale(receipts: Receipts) -> np.ndarray:
    """Which sales need the customer's estimate: all of them (the audit's, only alcohol sales)."""
    return np.ones(len(receipts.sales), dtype=bool)


def join(
    receipts: Receipts, found: pd.DataFrame, probs: np.ndarray | None, source: str
) -> tuple[Receipts, np.ndarray | None]:
    """The receipts' sales with the customer's estimate of ``found`` (indexed by ``sale_id``, with its
    softmaxes ``probs`` row for row), and the softmax of each sale (NaN rows where there is none)."""
    sales = join_estimates(receipts.sales, found, source, every_sale(receipts), "sales")
    if probs is None:
        return replace(receipts, sales=sales), None
    rows = found.index.get_indexer(sales["sale_id"])
    mine = np.full((len(rows), probs.shape[1]), np.nan, dtype=np.float32)
    mine[rows >= 0] = probs[rows[rows >= 0]]
    return replace(receipts, sales=sales), mine


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(values, DECIMALS)


def _group_table(
    groups: Groups, point: Profile, resamples: Profile, unknown: int, min_sales: int
) -> pd.DataFrame:
    low, high = interval(resamples.shares(CORRECTED))
    table = pd.DataFrame({"group": groups.names, "sales": point.sizes[ESTIMATE].astype(np.int64)})
    for kind in point.sizes:
        table[f"share_{kind}"] = _round(point.shares(kind))
    table["share_low"], table["share_high"] = _round(low), _round(high)
    table["sales_corrected"] = np.round(point.sizes[CORRECTED], 1)
    few = (table["sales"] < min_sales) | (table["sales_corrected"] < min_sales)
    table["status"] = np.where(few, TOO_FEW, OK_STATUS)
    order = [
        "group",
        "sales",
        *(f"share_{k}" for k in (ESTIMATE, SOFTMAX, CORRECTED, TRUE) if k in point.sizes),
    ]
    table = table[[*order, "share_low", "share_high", "sales_corrected", "status"]]
    return pd.concat([table, pd.DataFrame({"group": [UNKNOWN], "sales": [unknown], "status": [UNKNOWN]})])


def _category_table(
    receipts: Receipts,
    groups: Groups,
    point: Profile,
    resamples: Profile,
    known: np.ndarray,
    status: np.ndarray,
) -> pd.DataFrame:
    names, categories = groups.names, receipts.categories
    c, g = len(categories), len(names)
    rows = pd.DataFrame({"group": np.tile(names, c), "category": np.repeat(categories, g)})
    pairs = known[receipts.sale]
    bought = np.nan_to_num(
        point.rates[ESTIMATE] * point.sizes[ESTIMATE]
    )  # sales with it, per estimated group
    rows["sales"] = np.rint(bought.ravel()).astype(np.int64)
    for kind in point.rates:
        rows[f"rate_{kind}"] = _round(point.rates[kind].ravel())
    rows["rate_low"], rows["rate_high"] = (_round(v.ravel()) for v in interval(resamples.rates[CORRECTED]))
    for kind in point.rates:
        rows[f"lift_{kind}"] = np.round(point.lifts(kind).ravel(), 3)
    rows["lift_low"], rows["lift_high"] = (
        np.round(v.ravel(), 3) for v in interval(resamples.lifts(CORRECTED))
    )
    rows["status"] = np.tile(status, c)
    low, high = interval(resamples.overall)
    everyone = pd.DataFrame(
        {
            "group": EVERYONE,
            "category": categories,
            "sales": np.bincount(receipts.category[pairs], minlength=c),
            f"rate_{ESTIMATE}": _round(point.overall),
            "rate_low": _round(low),
            "rate_high": _round(high),
            "status": OK_STATUS,
        }
    )
    unknown = pd.DataFrame(
        {
            "group": UNKNOWN,
            "category": categories,
            "sales": np.bincount(receipts.category[~pairs], minlength=c),
            "status": UNKNOWN,
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        unknown[f"rate_{ESTIMATE}"] = _round(unknown["sales"].to_numpy() / int((~known).sum()))
    table = pd.concat([rows, everyone, unknown], ignore_index=True)
    order = {name: i for i, name in enumerate([*names, EVERYONE, UNKNOWN])}
    ranked = table.assign(_g=table["group"].map(order), _c=table["category"].map(categories.index))
    return ranked.sort_values(["_c", "_g"], kind="stable").drop(columns=["_g", "_c"]).reset_index(drop=True)


def segment(
    receipts: Receipts,
    groups: Groups,
    confusion: Confusion,
    config: SegmentsConfig,
    probs: np.ndarray | None = None,
    true_age: np.ndarray | None = None,
    simulation: bool = False,
) -> Segments:
    """The profiles of ``receipts`` whose sales have an ``estimate`` and a ``reason`` ("" when the
    estimate counts); ``probs``: the customers' softmaxes, a row per sale (the softmax columns are left
    out unless every sale with an estimate has one); ``true_age``: per sale, in a simulation."""
    sample, known = _sample(receipts, groups, probs, true_age)
    reasons = receipts.sales.loc[~known, REASON].value_counts()
    if not known.any():
        counts = ", ".join(f"{reason} {n}" for reason, n in reasons.items())
        raise AgecheckError(
            f"none of the {len(known)} sales has an age estimate ({counts}): no group to profile"
        )
    point, resamples = profiles(sample, confusion, config.iterations, config.bootstrap, config.seed)
    group_table = _group_table(groups, point, resamples, int((~known).sum()), config.min_sales)
    status = group_table["status"].to_numpy()[: len(groups)]
    matrix = confusion.matrix()
    summary = {
        "simulation": simulation,
        "sales": len(receipts.sales),
        "sales_with_estimate": int(known.sum()),
        "age_unknown": int((~known).sum()),
        "age_unknown_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
        "customers": int(sample.customer.max()) + 1 if len(sample.customer) else 0,
        "categories": len(receipts.categories),
        "groups": groups.names,
        "too_few_sales": [name for name, s in zip(groups.names, status, strict=True) if s == TOO_FEW],
        "softmax": SOFTMAX in point.sizes,
        "min_sales": config.min_sales,
        "bootstrap": config.bootstrap,
        "seed": config.seed,
        "calibration": confusion.source,
        "validation_shares": dict(zip(groups.names, _round(confusion.true_shares()).tolist(), strict=True)),
        # P(estimated group | true group): what the correction undoes
        "estimated_as": {
            true: dict(zip(groups.names, _round(matrix[:, t]).tolist(), strict=True))
            for t, true in enumerate(groups.names)
        },
    }
    categories = _category_table(receipts, groups, point, resamples, known, status)
    return Segments(group_table.reset_index(drop=True), categories, summary, point, resamples)


def write_segments(segments: Segments, folder: Path) -> None:
    """The profiles' :data:`FILES` in ``folder`` (created; other files in it are left alone)."""
    from agecheck.segments.page import segments_page  # the page needs Matplotlib

    tables = {"groups": segments.groups, "categories": segments.categories}
    write_results(folder, tables, segments.summary, segments_page(segments), "segments.html")


def summary_line(segments: Segments) -> str:
    """The profiles in one line, for stderr."""
    s = segments.summary
    few = f"; too few sales: {', '.join(s['too_few_sales'])}" if s["too_few_sales"] else ""
    return (
        f"{s['sales']} sales ({s['sales_with_estimate']} with an estimate, {s['age_unknown']} age unknown), "
        f"{s['customers']} customers, {s['categories']} categories{few}"
    )
