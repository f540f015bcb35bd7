"""The audit as a page for loss-prevention staff: flagged cashiers first, a chart per store, the
sales to review, and in plain words why a flag is a reason to look at the footage, not proof.

Built with :class:`agecheck.pages.html.Page` (one self-contained file, no script).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from agecheck.audit.cashiers import FLAGGED, TOO_FEW
from agecheck.pages.html import Page

if TYPE_CHECKING:
    from agecheck.audit.run import Audit

#: Stores charted on the page (those with a flag first); cashiers.csv has them all.
MAX_STORE_CHARTS = 30
#: Sales of the review list shown on the page; review.csv has them all.
REVIEW_SHOWN = 50
COLOURS = {FLAGGED: "#c0392b", TOO_FEW: "#b0b0b0"}
OTHER_COLOUR = "#2e6da4"


def _percent(share: float) -> str:
    return "\u2013" if pd.isna(share) else f"{100 * share:.0f}%"


def _share_text(row: pd.Series) -> str:
    low, high = _percent(row["share_low"]), _percent(row["share_high"])
    return f"{_percent(row['unchecked_share'])} ({low}\u2013{high})"


def _flagged_table(cashiers: pd.DataFrame) -> pd.DataFrame:
    flagged = cashiers[cashiers["status"] == FLAGGED]
    return pd.DataFrame(
        {
            "store": flagged["store"],
            "cashier": flagged["cashier"],
            "under-threshold alcohol sales": flagged["under_threshold"],
            "without ID check": flagged["unchecked"],
            "share (95% interval)": flagged.apply(_share_text, axis=1),
            "store's other cashiers": flagged["others_share"].map(_percent),
            "q value": flagged["q_value"].map(lambda q: f"{q:.2g}"),
        }
    ).reset_index(drop=True)


def _store_chart(store: str, rows: pd.DataFrame) -> Figure:
    """Each cashier's unchecked share with its Wilson interval; the store's overall share dashed."""
    rows = rows.sort_values("cashier")
    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))
    share = rows["unchecked_share"].fillna(0).to_numpy()
    low = np.nan_to_num(share - rows["share_low"].to_numpy())
    high = np.nan_to_num(rows["share_high"].to_numpy() - share)
    colours = [COLOURS.get(status, OTHER_COLOUR) for status in rows["status"]]
    ax.barh(y, share, color=colours, xerr=[low, high], error_kw={"ecolor": "#333", "capsize": 3})
    total = rows["unchecked"].sum() / max(rows["under_threshold"].sum(), 1)
    ax.axvline(total, color="#555", linestyle="--", linewidth=1, label=f"store: {_percent(total)}")
    labels = [
        f"{c} ({s})" if s != "not flagged" else str(c)
        for c, s in zip(rows["cashier"], rows["status"], strict=True)
    ]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("alcohol sales to customers estimated under the threshold without an ID check")
    ax.set_title(f"store {store}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _model_errors(summary: dict) -> str:
    threshold = f"{summary['threshold']:g}"
    unchecked = summary["unchecked_estimated"]
    text = (
        f"The camera's estimate is not the customer's age. The model estimates some adults under "
        f"{threshold}, and an honest cashier rightly serves them without asking: those sales count here "
        f"as unchecked under-threshold sales all the same."
    )
    if summary["adult_asked_rate"] is None:
        text += (
            " How often that happens is in the model's calibration file, which this audit did not have "
            "(agecheck audit --calibration)."
        )
    else:
        text += (
            f" The model estimates {_percent(summary['adult_asked_rate'])} of adults aged 25 and over under "
            f"{threshold} ({Path(summary['calibration']).name}): of the {unchecked:,} unchecked alcohol "
            f"sales with an estimate, about **{summary['expected_adults_unchecked_under_threshold']:,.0f}** "
            f"would count as under {threshold} even if every one of those customers were an adult."
        )
    return text + (
        " That is why a cashier is compared only with the other cashiers of the same store: they serve the "
        "same customers through the same camera and model, so its errors fall on all of them alike. A "
        f"flag allows for chance too: with q values at or under {summary['fdr']:g}, up to about "
        f"{summary['flags_by_chance_at_most']:g} of the {summary['flagged']} flags may be chance alone."
    )


def _review_table(review: pd.DataFrame) -> pd.DataFrame:
    shown = review.head(REVIEW_SHOWN)
    return pd.DataFrame(
        {
            "rank": shown["rank"],
            "sale": shown["sale_id"],
            "time": shown["time"],
            "store": shown["store"],
            "till": shown["till"],
            "cashier": shown["cashier"],
            "estimated age": shown["estimate"].map(lambda a: f"{a:.0f}"),
            "P(under legal age)": shown["p_under_legal"].map(_percent),
        }
    )


def audit_page(audit: Audit) -> Page:
    """The page of one audit."""
    s, cashiers = audit.summary, audit.cashiers
    stores = cashiers["store"].nunique()
    page = Page(
        "Cashier audit: ID checks on alcohol sales",
        f"{s['alcohol_sales']:,} alcohol sales, {s['cashiers']} cashiers in {stores} stores; Challenge "
        f"{s['threshold']:g}: a customer the till estimates under {s['threshold']:g} is asked for ID",
    )
    if s["simulation"]:
        page.note("**This is a simulation**: made-up sales from test photos, no real cashier or customer.")
    page.note(
        f"**A flag means: look at the till footage of this cashier's unchecked sales.** It is not proof. "
        f"A flagged cashier sold alcohol without an ID check to customers the model estimated under "
        f"{s['threshold']:g} more often than the other cashiers of the same store, by more than chance "
        f"explains (q value at or under {s['fdr']:g})."
    )
    page.heading("Flagged cashiers")
    if s["flagged"]:
        page.table(
            _flagged_table(cashiers), caption="Share of under-threshold alcohol sales without ID check"
        )
    else:
        page.paragraph("No cashier is flagged.")
    if s["too_few_sales"]:
        page.paragraph(
            f"{s['too_few_sales']} cashiers had too few alcohol sales to customers estimated under "
            f"{s['threshold']:g} (fewer than {s['min_sales']}, or their store's other cashiers together "
            "had): they are marked, never flagged, and not cleared either."
        )
    page.heading("The model's own errors")
    page.paragraph(_model_errors(s))
    page.heading("Each store")
    flagged_stores = set(cashiers.loc[cashiers["status"] == FLAGGED, "store"])
    order = sorted(cashiers["store"].unique(), key=lambda store: (store not in flagged_stores, store))
    for store in order[:MAX_STORE_CHARTS]:
        rows = cashiers[cashiers["store"] == store]
        page.figure(
            _store_chart(store, rows),
            alt=f"store {store}: each cashier's share of under-threshold alcohol sales without ID check",
        )
    if len(order) > MAX_STORE_CHARTS:
        page.paragraph(f"{len(order) - MAX_STORE_CHARTS} more stores are in cashiers.csv.")
    page.heading("Sales to review")
    page.paragraph(
        f"Alcohol sales without an ID check, the customers most likely under {s['legal_age']:g} first "
        f"({min(REVIEW_SHOWN, s['review_rows'])} shown; review.csv has {s['review_rows']}). Ids and "
        "estimates only: the audit keeps no photo."
    )
    if s["review_rows"]:
        page.table(_review_table(audit.review))
    return page
