"""The audit of a month of sales, from the joined table to its files: ``cashiers.csv``, ``review.csv``,
``summary.json`` and ``audit.html``.

:func:`audit_sales` takes the sales with the customer's estimates (however they were obtained: the
estimates log, the frames, or :mod:`agecheck.audit.simulate`) and computes everything;
:func:`write_audit` writes it. The summary carries what a reader needs to weigh a flag: how many
unchecked under-threshold sales the model's own errors on adults explain, and how many flags the
false discovery rate allows to be chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.audit.cashiers import FLAGGED, NOT_FLAGGED, TOO_FEW, cashier_table, till_asked
from agecheck.audit.estimates import OK
from agecheck.audit.page import audit_page
from agecheck.audit.review import review_list
from agecheck.audit.sales import NO_CASHIER, REASON
from agecheck.config import AuditConfig, PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.outputs import write_json
from agecheck.pages.html import Page

#: The calibration file's share of adults (25+) the model estimates under the threshold.
ADULT_ASKED_RATE = "adult_asked_rate"
FILES = ("cashiers.csv", "review.csv", "summary.json", "audit.html")
#: Floats in the CSV files: enough digits for a p value of 1e-12 and a share alike.
FLOAT_FORMAT = "%.6g"


@dataclass(frozen=True)
class Audit:
    """The audit's three results: per cashier, the review list, and the headline numbers."""

    cashiers: pd.DataFrame
    review: pd.DataFrame
    summary: dict[str, Any]


def read_calibration(path: Path | None, required: bool) -> tuple[float | None, str | None]:
    """``adult_asked_rate`` from a calibration file, and the file's name; ``(None, None)`` when the
    file is absent and was not asked for (``required``: named on the command line)."""
    if path is None or (not required and not path.is_file()):
        return None, None
    try:
        rate = json.loads(path.read_text(encoding="utf-8"))[ADULT_ASKED_RATE]
    except FileNotFoundError:
        raise AgecheckError(f"calibration file not found: {path}") from None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise AgecheckError(
            f"{path} has no usable {ADULT_ASKED_RATE} ({type(err).__name__}: {err})"
        ) from None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise AgecheckError(f"{path}: {ADULT_ASKED_RATE} must be a share between 0 and 1 (got {rate!r})")
    return float(rate), str(path)


def _summary(
    sales: pd.DataFrame,
    alcohol: pd.DataFrame,
    asked: np.ndarray,
    cashiers: pd.DataFrame,
    policy: PolicyConfig,
    config: AuditConfig,
    review_rows: int,
    calibration: tuple[float | None, str | None],
    simulation: bool,
) -> dict[str, Any]:
    reasons = alcohol[REASON].replace("", OK).value_counts()
    unchecked = (alcohol["id_checked"] == 0) & alcohol["estimate"].notna()
    under = unchecked & asked
    status = cashiers["status"].value_counts()
    rate, source = calibration
    flagged = int(status.get(FLAGGED, 0))
    return {
        "simulation": simulation,
        "sales": len(sales),
        "alcohol_sales": len(alcohol),
        "alcohol_sales_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
        "unchecked_estimated": int(unchecked.sum()),
        "unchecked_under_threshold": int(under.sum()),
        "cashiers": len(cashiers),
        "flagged": flagged,
        "not_flagged": int(status.get(NOT_FLAGGED, 0)),
        "too_few_sales": int(status.get(TOO_FEW, 0)),
        "threshold": policy.threshold,
        "legal_age": policy.legal_age,
        "fdr": config.fdr,
        "min_sales": config.min_sales,
        "review_rows": review_rows,
        # chance: BH keeps the expected share of false flags among the flags at or under fdr
        "flags_by_chance_at_most": round(config.fdr * flagged, 2),
        "adult_asked_rate": rate,
        "calibration": source,
        # were every unchecked sale to an adult, this many would still be estimated under the threshold
        "expected_adults_unchecked_under_threshold": None
        if rate is None
        else round(rate * int(unchecked.sum()), 1),
    }


def audit_sales(
    sales: pd.DataFrame,
    policy: PolicyConfig,
    config: AuditConfig,
    review: int | None = None,
    calibration: tuple[float | None, str | None] = (None, None),
    simulation: bool = False,
) -> Audit:
    """Audit ``sales``: the sales log's columns, the customer's estimate
    (:data:`agecheck.audit.estimates.ESTIMATE_COLUMNS`) and ``reason``. ``review``: rows of the review
    list (default ``config.review``); ``calibration``: the model's ``adult_asked_rate`` and its source
    (:func:`read_calibration`); ``simulation``: the sales are made up (said on the page)."""
    alcohol = sales[(sales["alcohol"] == 1).to_numpy()]
    asked = till_asked(alcohol, policy)
    with_cashier = (alcohol[REASON] != NO_CASHIER).to_numpy()
    cashiers = cashier_table(alcohol[with_cashier], asked[with_cashier], config)
    listed = review_list(alcohol, cashiers, config.review if review is None else review)
    summary = _summary(sales, alcohol, asked, cashiers, policy, config, len(listed), calibration, simulation)
    return Audit(cashiers, listed, summary)


def write_results(
    folder: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any], page: Page, page_name: str
) -> None:
    """A command's results in ``folder`` (created; other files in it are left alone): each table as
    ``NAME.csv``, ``summary.json`` and the page as ``page_name``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False, float_format=FLOAT_FORMAT)
    write_json(folder / "summary.json", summary)
    page.write(folder / page_name)


def write_audit(audit: Audit, folder: Path) -> None:
    """The audit's :data:`FILES` in ``folder`` (created; other files in it are left alone)."""
    tables = {"cashiers": audit.cashiers, "review": audit.review}
    write_results(folder, tables, audit.summary, audit_page(audit), "audit.html")


def summary_line(audit: Audit) -> str:
    """The audit in one line, for stderr."""
    s = audit.summary
    return (
        f"{s['alcohol_sales']} alcohol sales ({s['alcohol_sales_by_reason'].get(OK, 0)} with an estimate), "
        f"{s['cashiers']} cashiers: {s['flagged']} flagged, {s['not_flagged']} not flagged, "
        f"{s['too_few_sales']} too few sales"
    )
