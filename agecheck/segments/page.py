"""The shopping profiles as a page for marketers: what each age group buys more (or less) than the
average shopper, how many shoppers each group is, and in plain words what "corrected" means.

Built with :class:`agecheck.pages.html.Page` (one self-contained file, no script).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from agecheck.pages.html import Page
from agecheck.segments.bootstrap import CORRECTED, ESTIMATE, SOFTMAX, TRUE

if TYPE_CHECKING:
    from agecheck.segments.run import Segments

#: Categories on the page (the most bought); categories.csv has them all.
MAX_CATEGORIES = 30
#: Categories named per group in the "buys more" table.
TOP = 3
LABELS = {TRUE: "true", ESTIMATE: "raw (estimate)", SOFTMAX: "raw (softmax)", CORRECTED: "corrected"}
COLOURS = {TRUE: "#333333", ESTIMATE: "#e0a040", SOFTMAX: "#f2d08a", CORRECTED: "#2e6da4"}


def _percent(share: float, digits: int = 0, sign: str = "%") -> str:
    return "\u2013" if pd.isna(share) else f"{100 * share:.{digits}f}{sign}"


def _with_interval(value: float, low: float, high: float) -> str:
    """ "12.5% (11.0-14.1)": a share and its 95% interval."""
    if pd.isna(value):
        return "\u2013"
    return f"{_percent(value, 1)} ({_percent(low, 1, '')}\u2013{_percent(high, 1, '')})"


def _lift(value: float) -> str:
    return "\u2013" if pd.isna(value) else f"{value:.2f}\u00d7"


def _group_labels(groups: pd.DataFrame) -> list[str]:
    return [
        f"{g}\n(too few sales)" if s != "ok" else g
        for g, s in zip(groups["group"], groups["status"], strict=True)
    ]


def _shown_categories(segments: Segments) -> list[str]:
    everyone = segments.categories[segments.categories["group"] == "all customers"]
    return list(everyone.sort_values("sales", ascending=False, kind="stable")["category"][:MAX_CATEGORIES])


def _heat_map(segments: Segments, categories: list[str]) -> Figure:
    """Corrected lift per category (rows) and group (columns), on a log scale centred on 1."""
    groups = segments.groups.iloc[: len(segments.summary["groups"])]
    table = segments.categories.pivot(index="category", columns="group", values=f"lift_{CORRECTED}")
    lifts = table.loc[categories, list(groups["group"])].to_numpy(dtype=np.float64)
    fig = Figure(figsize=(1.25 * len(groups) + 3, 0.42 * len(categories) + 1.6))
    ax = fig.subplots()
    scaled = np.log2(np.clip(lifts, 0.125, 8))
    image = ax.imshow(scaled, cmap="RdBu_r", norm=TwoSlopeNorm(0, -3, 3), aspect="auto")
    for (row, column), value in np.ndenumerate(lifts):
        strong = abs(scaled[row, column]) > 1.5  # a dark cell: white text
        ax.text(
            column,
            row,
            _lift(value),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if strong else "black",
        )
    few = (groups["status"] != "ok").to_numpy()
    for column in np.flatnonzero(few):
        ax.axvspan(column - 0.5, column + 0.5, facecolor="none", hatch="//", edgecolor="#888", linewidth=0)
    ax.set_xticks(range(len(groups)), _group_labels(groups), fontsize=9)
    ax.set_yticks(range(len(categories)), categories, fontsize=9)
    ax.xaxis.tick_top()
    bar = fig.colorbar(image, ax=ax, shrink=0.6, ticks=[-3, -2, -1, 0, 1, 2, 3])
    bar.ax.set_yticklabels(
        ["\u215b\u00d7", "\u00bc\u00d7", "\u00bd\u00d7", "1\u00d7", "2\u00d7", "4\u00d7", "8\u00d7"]
    )
    bar.set_label("bought how many times as often as by the average shopper")
    fig.tight_layout()
    return fig


def _share_chart(segments: Segments) -> Figure:
    """Each group's share of the sales: the truth where known, raw and corrected (with its interval)."""
    groups = segments.groups.iloc[: len(segments.summary["groups"])]
    kinds = [kind for kind in (TRUE, ESTIMATE, SOFTMAX, CORRECTED) if f"share_{kind}" in groups]
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    x = np.arange(len(groups))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        shares = groups[f"share_{kind}"].to_numpy(dtype=np.float64)
        error = None
        if kind == CORRECTED:
            error = [shares - groups["share_low"].to_numpy(), groups["share_high"].to_numpy() - shares]
        ax.bar(
            x + (i - (len(kinds) - 1) / 2) * width,
            shares,
            width,
            yerr=error,
            capsize=3,
            color=COLOURS[kind],
            label=LABELS[kind],
        )
    ax.set_xticks(x, _group_labels(groups), fontsize=9)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("share of the sales with an age estimate")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _buys_more(segments: Segments) -> pd.DataFrame:
    """Per group, the categories it buys most above the average, where the interval is above 1 too."""
    rows = segments.categories[segments.categories["group"].isin(segments.summary["groups"])]
    sure = rows[rows["lift_low"] > 1].sort_values(f"lift_{CORRECTED}", ascending=False, kind="stable")
    table = []
    for group, status in zip(segments.groups["group"], segments.groups["status"], strict=False):
        if group not in segments.summary["groups"]:
            continue
        mine = sure[sure["group"] == group].head(TOP)
        named = ", ".join(
            f"{c} {_lift(v)} ({_lift(lo)}\u2013{_lift(hi)})"
            for c, v, lo, hi in zip(
                mine["category"], mine[f"lift_{CORRECTED}"], mine["lift_low"], mine["lift_high"], strict=True
            )
        )
        table.append(
            {
                "group": group,
                "buys more than the average shopper": named or "nothing for sure",
                "status": status,
            }
        )
    return pd.DataFrame(table)


def _share_table(segments: Segments) -> pd.DataFrame:
    groups = segments.groups
    table = pd.DataFrame({"group": groups["group"], "sales (by the estimate)": groups["sales"]})
    for kind in (TRUE, ESTIMATE, SOFTMAX):
        if f"share_{kind}" in groups:
            table[LABELS[kind]] = groups[f"share_{kind}"].map(lambda s: _percent(s, 1))
    table["corrected (95% interval)"] = [
        "\u2013" if pd.isna(s) else f"{_percent(s, 1)} ({_percent(lo, 1)}\u2013{_percent(hi, 1)})"
        for s, lo, hi in zip(
            groups[f"share_{CORRECTED}"], groups["share_low"], groups["share_high"], strict=True
        )
    ]
    table["status"] = groups["status"]
    return table


def _errors_table(summary: dict) -> pd.DataFrame:
    """P(estimated group | true group) of the validation photos, in percent."""
    matrix = pd.DataFrame(summary["estimated_as"]).T
    table = matrix.map(lambda share: _percent(share))
    table.index.name = "true group \u2193 / estimated as \u2192"
    return table


def _rates_table(segments: Segments, categories: list[str]) -> pd.DataFrame:
    rows = segments.categories[segments.categories["group"].isin(segments.summary["groups"])]
    text = [
        _with_interval(*values)
        for values in zip(rows[f"rate_{CORRECTED}"], rows["rate_low"], rows["rate_high"], strict=True)
    ]
    wide = rows.assign(text=text).pivot(index="category", columns="group", values="text")
    wide = wide.loc[categories, segments.summary["groups"]]
    everyone = segments.categories[segments.categories["group"] == "all customers"].set_index("category")
    wide.insert(
        0, "all customers", everyone.loc[categories, f"rate_{ESTIMATE}"].map(lambda r: _percent(r, 1))
    )
    return wide


def _corrected_means(summary: dict) -> str:
    young, old = summary["groups"][1], summary["groups"][-1]
    estimated = summary["estimated_as"]
    return (
        "**What 'corrected' means.** The till camera's age estimate is not the customer's age: the model "
        "pulls ages towards the middle. Of the validation photos (people whose age we know) aged "
        f"{young}, the model put {_percent(estimated[young][young])} in {young}; of those aged {old}, "
        f"{_percent(estimated[old][old])} in {old}. Counting each customer in the group of the estimate "
        "(**raw**) therefore shrinks the groups at both ends and lends them their neighbours' baskets. "
        "**Corrected** figures undo this: knowing how often the model moves people from each true group to "
        "each estimated group (the table at the end), they find the group sizes and baskets that, moved the "
        "same way, give the counts the tills saw. The intervals say how sure the figures are, from "
        "resampling the customers and the validation photos; they do not include what the correction "
        "cannot undo (docs/segments.md). A lift of 2\u00d7 means the group's sales contain the category "
        "twice as often as the average shopper's."
    )


def segments_page(segments: Segments) -> Page:
    """The page of one set of shopping profiles."""
    s = segments.summary
    page = Page(
        "Shopping profiles by age group",
        f"{s['sales']:,} sales, {s['customers']:,} customers, {s['categories']} categories; age groups "
        "from the till camera's estimates, corrected for the model's errors",
    )
    if s["simulation"]:
        page.note(
            "**This is a simulation**: made-up receipts with test photos as customers; the truth is known."
        )
    page.note(_corrected_means(s))
    categories = _shown_categories(segments)
    page.heading("What each age group buys")
    page.figure(
        _heat_map(segments, categories),
        alt="corrected lift of each category in each age group",
        caption=f"Corrected lift: red, bought more often than by the average shopper; blue, less often "
        f"({len(categories)} most bought categories; all are in categories.csv).",
    )
    page.table(
        _buys_more(segments), caption="Bought most above the average (corrected lift, 95% interval above 1)"
    )
    page.heading("Who shops")
    page.figure(
        _share_chart(segments), alt="each age group's share of the sales: raw and corrected", caption=""
    )
    page.table(_share_table(segments), caption="Each group's share of the sales with an age estimate")
    if s["too_few_sales"]:
        page.paragraph(
            f"Too few sales (under {s['min_sales']}, estimated or corrected) in "
            f"{', '.join(s['too_few_sales'])}: shown, but unsure whatever the interval says."
        )
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in s["age_unknown_by_reason"].items())
    unknown = _percent(s["age_unknown"] / s["sales"], 1)
    page.paragraph(
        f"**Age unknown:** {s['age_unknown']:,} of the {s['sales']:,} sales ({unknown}) had no usable face"
        f"{f' ({reasons})' if reasons else ''}. They are left out of the groups and counted "
        f"apart (groups.csv, categories.csv). Customers {s['groups'][0]} are a group of their own, shown "
        "apart from the marketing groups."
    )
    page.heading("Purchase rates")
    page.table(
        _rates_table(segments, categories),
        caption="Share of each group's sales that contain the category (corrected, 95% interval)",
    )
    page.heading("The model's errors")
    page.paragraph(
        f"How the model moved the validation photos between groups ({s['calibration']}): each row adds up "
        "to 100%. This is what the correction undoes."
    )
    page.table(_errors_table(s))
    return page
