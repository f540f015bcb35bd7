"""The sales to look at first: alcohol sold without an ID check, most likely to a minor first.

Ranked by the model's P(age < legal age) for the customer (``p_under_legal``), then by the lowest
estimate (the order for a model without a softmax, whose probabilities are empty). Ids and
estimates only: whoever reviews a sale opens the till's footage for it, the audit keeps no photo.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agecheck.audit.cashiers import KEYS

COLUMNS = (
    *("rank", "sale_id", "time", "store", "till", "cashier"),
    *("estimate", "age_low", "age_high", "p_under_legal", "p_under_threshold", "cashier_status"),
)


def review_list(sales: pd.DataFrame, cashiers: pd.DataFrame, size: int) -> pd.DataFrame:
    """The ``size`` unchecked alcohol sales with an estimate most likely to a minor (:data:`COLUMNS`).

    ``sales``: the alcohol sales with their estimates; ``cashiers``: :func:`cashier_table`'s rows, for
    each sale's cashier status.
    """
    unchecked = sales[(sales["id_checked"] == 0).to_numpy() & sales["estimate"].notna().to_numpy()]
    minor = unchecked["p_under_legal"].fillna(-1.0).to_numpy()
    order = np.lexsort((unchecked["estimate"].to_numpy(), -minor))[:size]  # stable: log order breaks ties
    top = unchecked.iloc[order].reset_index(drop=True)
    top.insert(0, "rank", np.arange(1, len(top) + 1))
    status = cashiers.set_index(KEYS)["status"]
    top["cashier_status"] = status.reindex(pd.MultiIndex.from_frame(top[KEYS])).to_numpy()
    return top[list(COLUMNS)]
