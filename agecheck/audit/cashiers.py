"""Per store and cashier: how often an alcohol sale to a customer the till estimated under the
threshold went without an ID check, compared with the store's other cashiers.

The comparison is within the store on purpose: the model's errors (adults estimated under the
threshold, whom nobody needs to ask) and the store's customers are the same for all its cashiers, so
they cancel; what is left is the cashier. The test is Fisher's exact test, one-sided (this cashier's
unchecked share is higher), computed for all cashiers at once from the hypergeometric tail; the
flags are Benjamini-Hochberg q values over every cashier tested (docs/audit.md says why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from agecheck.audit.sales import REASON
from agecheck.config import AuditConfig, PolicyConfig
from agecheck.intervals import wilson_interval
from agecheck.till.policy import asks_for_id

FLAGGED = "flagged"
NOT_FLAGGED = "not flagged"
TOO_FEW = "too few sales"
STATUS_ORDER = (FLAGGED, NOT_FLAGGED, TOO_FEW)
KEYS = ["store", "cashier"]
COLUMNS = (
    *KEYS,
    *("alcohol_sales", "no_estimate", "under_threshold", "unchecked"),
    *("unchecked_share", "share_low", "share_high"),
    *("others_under_threshold", "others_unchecked", "others_share"),
    *("p_value", "q_value", "status"),
)


def greater_share_p(k: np.ndarray, n: np.ndarray, k_others: np.ndarray, n_others: np.ndarray) -> np.ndarray:
    """One-sided Fisher exact p values that the share ``k / n`` exceeds ``k_others / n_others``:
    P(X >= k) for X hypergeometric (all ``n + n_others`` sales, ``k + k_others`` unchecked, ``n``
    drawn), which is ``scipy.stats.fisher_exact(..., alternative="greater")``, vectorised."""
    k = np.asarray(k, dtype=np.int64)
    return stats.hypergeom.sf(k - 1, np.asarray(n + n_others), np.asarray(k + k_others), np.asarray(n))


def till_asked(sales: pd.DataFrame, policy: PolicyConfig) -> np.ndarray:
    """Whether the till asked for ID for each sale's customer, from the estimate (and, with
    ``policy.rule: heads``, P(under the threshold)) it logged: the sales the cashier had to check."""
    under = sales["p_under_threshold"].to_numpy(float) if "p_under_threshold" in sales else None
    return asks_for_id(sales["estimate"].to_numpy(float), under, policy)


def cashier_table(sales: pd.DataFrame, asked: np.ndarray, config: AuditConfig) -> pd.DataFrame:
    """One row per store and cashier with alcohol sales (:data:`COLUMNS`), flagged ones first.

    ``sales``: the alcohol sales with ``store``, ``cashier``, ``id_checked``, ``estimate`` and
    ``reason``; ``asked``: whether the till asked for ID for each of them (:func:`till_asked`). A
    cashier with fewer than ``config.min_sales`` under-threshold sales, or in a store whose other
    cashiers have fewer, is "too few sales": no test, no flag.
    """
    under = np.asarray(asked, dtype=bool)
    counts = pd.DataFrame(
        {
            "store": sales["store"].to_numpy(),
            "cashier": sales["cashier"].to_numpy(),
            "no_estimate": (sales[REASON] != "").to_numpy(),
            "under_threshold": under,
            "unchecked": under & (sales["id_checked"] == 0).to_numpy(),
        }
    )
    table = counts.groupby(KEYS, sort=True).agg(
        alcohol_sales=("no_estimate", "size"),
        no_estimate=("no_estimate", "sum"),
        under_threshold=("under_threshold", "sum"),
        unchecked=("unchecked", "sum"),
    )
    table = table.astype(np.int64).reset_index()
    store = table.groupby("store")[["under_threshold", "unchecked"]].transform("sum")
    n, k = table["under_threshold"].to_numpy(), table["unchecked"].to_numpy()
    n_others, k_others = store["under_threshold"].to_numpy() - n, store["unchecked"].to_numpy() - k
    with np.errstate(invalid="ignore", divide="ignore"):
        table["unchecked_share"] = k / n
        table["share_low"], table["share_high"] = wilson_interval(k, n)
        table["others_under_threshold"], table["others_unchecked"] = n_others, k_others
        table["others_share"] = k_others / n_others
    tested = (n >= config.min_sales) & (n_others >= config.min_sales)
    p = np.full(len(table), np.nan)
    q = np.full(len(table), np.nan)
    if tested.any():
        p[tested] = greater_share_p(k[tested], n[tested], k_others[tested], n_others[tested])
        q[tested] = stats.false_discovery_control(p[tested], method="bh")
    table["p_value"], table["q_value"] = p, q
    table["status"] = np.where(~tested, TOO_FEW, np.where(q <= config.fdr, FLAGGED, NOT_FLAGGED))
    table["rank"] = table["status"].map({status: i for i, status in enumerate(STATUS_ORDER)})
    table = table.sort_values(["rank", "q_value", "p_value", *KEYS], na_position="last", kind="stable")
    return table.reset_index(drop=True)[list(COLUMNS)]
