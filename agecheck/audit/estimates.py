"""The customer's estimate for each sale: from the till's estimates log, joined on ``sale_id``.

The audit needs what the model said about the customer (age, interval, P(minor), P(under the
threshold)), never the photo. The till wrote it in the estimates log; the photos path
(:mod:`agecheck.audit.photos`) builds the same table from frames. Either way every sale ends up with
the :data:`ESTIMATE_COLUMNS` and a ``reason`` (``""`` when the estimate counts).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.audit.sales import REASON, listed, listed_values
from agecheck.config import PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.till.estimates_log import read_estimates

#: The customer's estimate, per sale: ``estimate`` is the estimated age.
ESTIMATE_COLUMNS = ("estimate", "age_low", "age_high", "p_under_legal", "p_under_threshold")
#: The log's customer columns behind them (``age`` is renamed ``estimate``).
LOG_COLUMNS = ("age", "age_low", "age_high", "p_under_legal", "p_under_threshold")
OK = "ok"
NO_FACE = "no_face"
NO_ESTIMATE = "no_estimate"
LOG_REASON = "log_reason"


def _numbers(log: pd.DataFrame, origin: str) -> pd.DataFrame:
    """The log's customer columns as floats; a value that is not a number stops the audit."""
    out = pd.DataFrame(index=log.index)
    for column, name in zip(LOG_COLUMNS, ESTIMATE_COLUMNS, strict=True):
        values = pd.to_numeric(log[column], errors="coerce")
        bad = values.isna() & log[column].notna()
        if bad.any():
            shown = listed_values(log.loc[bad, column], log.loc[bad, "sale_id"])
            raise AgecheckError(f"{origin}: {column} must be a number, not {shown}")
        out[name] = values.astype(np.float64)
    return out


def _warn_other_threshold(log: pd.DataFrame, policy: PolicyConfig, origin: str) -> None:
    """The tills asked for ID under their own threshold: an audit with another one miscounts them."""
    used = pd.to_numeric(log["threshold"], errors="coerce")
    other = used.notna() & (used != policy.threshold)
    if other.any():
        print(
            f"warning: {origin}: {int(other.sum())} lines were judged with threshold "
            f"{listed(sorted(used[other].unique()))}; the audit counts under policy.threshold "
            f"{policy.threshold:g}",
            file=sys.stderr,
        )


def log_estimates(
    path: str | Path, policy: PolicyConfig, with_probs: bool = False
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The customer's estimate for each ``sale_id`` in the estimates log (indexed by it), with a
    ``reason``: the line's status when not ``ok``, ``no_face`` when it has no customer. A sale logged
    twice (the photo taken again) keeps its last line. With ``with_probs``, also the customers'
    softmaxes, a row per row of the table (else None)."""
    origin = str(path)
    if with_probs:
        log, probs = read_estimates(path, with_probs=True)
    else:
        log, probs = read_estimates(path), None
    table = _numbers(log, origin)
    status = log["status"].astype(object).where(log["status"].notna(), NO_ESTIMATE).astype(str)
    table[REASON] = np.where(status != OK, status, np.where(table["estimate"].isna(), NO_FACE, ""))
    table["sale_id"] = log["sale_id"]
    _warn_other_threshold(log, policy, origin)
    table = table[table["sale_id"].notna() & (table["sale_id"] != "")]
    again = table["sale_id"].duplicated(keep="last")
    if again.any():
        repeated = listed(list(table.loc[again, "sale_id"].unique()))
        print(
            f"warning: {origin}: sale_id {repeated} logged more than once; the last line of each sale counts",
            file=sys.stderr,
        )
    table = table[~again]
    return table.set_index("sale_id"), None if probs is None else probs[table.index.to_numpy()]


def join_estimates(
    sales: pd.DataFrame,
    estimates: pd.DataFrame,
    source: str = "the estimates",
    needed: np.ndarray | None = None,
    noun: str = "alcohol sales",
) -> pd.DataFrame:
    """``sales`` with the :data:`ESTIMATE_COLUMNS` of ``estimates`` (indexed by ``sale_id``). A needed
    sale (``needed``, default the alcohol sales; ``noun`` names them) without one gets the reason
    ``no_estimate``; a row that already has a reason keeps it and gets no estimate. When no needed sale
    is found in ``source``, the two do not belong together."""
    joined = sales.join(estimates.rename(columns={REASON: LOG_REASON}), on="sale_id")
    found = sales["sale_id"].isin(estimates.index).to_numpy()
    keep = (sales[REASON] == "").to_numpy()
    wanted = (sales["alcohol"] == 1).to_numpy() if needed is None else needed
    if (keep & wanted).any() and not (keep & wanted & found).any():
        raise AgecheckError(
            f"none of the {int((keep & wanted).sum())} {noun} has a line in {source} (joined on "
            "sale_id): is it the log of the same tills and days?"
        )
    reason = np.where(~keep, sales[REASON], np.where(found, joined[LOG_REASON], ""))
    reason = np.where(keep & wanted & ~found, NO_ESTIMATE, reason)
    joined[REASON] = pd.Series(reason, index=joined.index).fillna("").astype(str)
    for column in ESTIMATE_COLUMNS:
        joined[column] = joined[column].where(joined[REASON] == "").astype(np.float64)
    return joined.drop(columns=LOG_REASON)
