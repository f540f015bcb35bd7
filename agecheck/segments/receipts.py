"""The receipts log: one row per sale and category bought, read and checked against docs/segments.md.

It is read and checked as a whole like the audit's sales log (:func:`agecheck.audit.sales.read_sale_rows`:
the format, the columns, empty ``sale_id``\\ s, a ``photo`` column together with ``--estimates``).
Here: the rows become one row per sale (the customer's estimate is per sale) and the (sale,
category) pairs. Any category text is a category (a new one is data, not an error); an empty
``category`` cell is a sale with nothing categorised, counted in every group's sales. A sale whose
rows name two different frames stops the command: which customer it was would be a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.audit.sales import NO_PHOTO, PHOTO, REASON, listed, read_sale_rows
from agecheck.errors import AgecheckError

#: The columns every receipts log has, one row per sale and category.
RECEIPT_COLUMNS = ("sale_id", "time", "store", "category")
#: Optional: who the customer is (a loyalty card, say): the bootstrap resamples a customer's sales together.
CUSTOMER = "customer"


@dataclass(frozen=True)
class Receipts:
    """The sales (one row each: ``sale_id``, ``time``, ``store``, ``customer``, ``photo`` when read with
    photos, ``reason``) and what they contain: per (sale, category) pair, the sale's row and the
    category's index in ``categories``."""

    sales: pd.DataFrame
    sale: np.ndarray
    category: np.ndarray
    categories: list[str]


def _customer(table: pd.DataFrame, photos: bool) -> pd.Series:
    """The bootstrap's unit per row: the ``customer`` column where filled, else the frame (one photo
    behind several sales is one customer), else the sale itself."""
    key = "s:" + table["sale_id"]
    if photos:
        key = key.where(table[PHOTO] == "", "p:" + table[PHOTO])
    if CUSTOMER in table.columns:
        key = key.where(table[CUSTOMER] == "", "c:" + table[CUSTOMER])
    return key


def read_receipts(path: str | Path, photos: bool) -> Receipts:
    """The receipts log, checked (``photos``: each sale's frame is in a ``photo`` column; a sale with
    an empty cell gets the reason ``no_photo``)."""
    origin = str(path)
    table, required = read_sale_rows(
        path, "receipts log", RECEIPT_COLUMNS, "docs/segments.md", photos, "agecheck segments"
    )
    table = table.assign(customer=_customer(table, photos))
    if photos:
        frames = table[["sale_id", PHOTO]].drop_duplicates()
        two = frames.loc[frames["sale_id"].duplicated(), "sale_id"].unique()
        if len(two):
            raise AgecheckError(
                f"{origin}: more than one photo for sale {listed(list(two))}; a sale has one till frame"
            )
    keep = [name for name in (*required, CUSTOMER) if name != "category"]
    sales = table.drop_duplicates("sale_id")[keep].reset_index(drop=True)
    sales[REASON] = np.where(sales[PHOTO] == "", NO_PHOTO, "") if photos else ""
    pairs = table.loc[table["category"] != "", ["sale_id", "category"]].drop_duplicates()
    if pairs.empty:
        raise AgecheckError(f"{origin} names no category (every category cell is empty): nothing to profile")
    category, categories = pd.factorize(pairs["category"], sort=True)
    sale = pd.Index(sales["sale_id"]).get_indexer(pairs["sale_id"])
    return Receipts(sales, sale.astype(np.int64), category.astype(np.int64), [str(c) for c in categories])
