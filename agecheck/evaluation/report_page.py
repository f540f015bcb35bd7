"""The report page for store managers (``metrics/report.html``): the evaluation in plain words, the
choice between the policy threshold and the safer one with its cost in ID checks, and the figures.

It reads the typed result only (no photo ids, no photos: their licence forbids showing them), and
the footer names the model and the date of ``dvc.lock`` so that the same inputs give the same page.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from agecheck.evaluation.report import YOTI_MINOR_PASS
from agecheck.evaluation.results import (
    Calibration,
    Challenge25,
    Evaluation,
    Group,
    NoSafeThreshold,
    Rates,
    TeenRate,
    TillCheck,
)
from agecheck.pages.html import Page

TITLE = "Age estimation at the till: what the model means for alcohol sales"
MODEL = "models/age_model.keras"
#: The stage whose lock entry names the model the numbers come from.
EVALUATE = "evaluate"
#: The photos the safer threshold is set on, by ``calibrated_on``.
CALIBRATION_PHOTOS = {"val": "validation photos", "the same photos": "test photos themselves"}
TILL_CHECKS = {
    "whole_photos": "Whole photos (hair, shoulders, background)",
    "frames": "Camera-like 640x480 till frames",
}


def percent(rate: float | None, digits: int = 1) -> str:
    """A rate as a percentage; a dash where there was nobody to count."""
    return "\u2013" if rate is None else f"{100 * rate:.{digits}f}%"


def _share(rate: float | None, passed: int, count: int) -> str:
    return f"{percent(rate)} ({passed:,} of {count:,})"


def _calibration_photos(safe: Calibration) -> str:
    return CALIBRATION_PHOTOS.get(safe.calibrated_on, f"{safe.calibrated_on} photos")


def recommendation(c25: Challenge25) -> str:
    """The threshold to use, in one box: the safer one when it is stricter, with what it costs."""
    safe, policy = c25.safe_threshold, c25.threshold
    if isinstance(safe, NoSafeThreshold):
        return (
            f"**Keep asking for ID when the estimate is under {policy:g}.** No safer threshold could be "
            f"set: the {_calibration_photos(safe)} have no customers under {c25.legal_age:g}."
        )
    if safe.threshold <= policy:
        return (
            f"**Keep asking for ID when the estimate is under {policy:g}.** It already serves at most "
            f"{percent(safe.max_minor_pass_rate)} of under-{c25.legal_age:g}s without ID on the "
            f"{_calibration_photos(safe)}."
        )
    cost = ""
    if safe.adult_check_rate is not None and c25.adult_check_rate is not None:
        extra = round(1000 * (safe.adult_check_rate - c25.adult_check_rate))
        cost = (
            f" The cost: {percent(safe.adult_check_rate)} of customers aged {policy:g} or older are asked "
            f"for ID instead of {percent(c25.adult_check_rate)}, about {extra:,} more ID checks per 1,000 "
            "of them."
        )
    return (
        f"**Recommendation: ask for ID when the estimate is under {safe.threshold:g}, not {policy:g}.** "
        f"Customers under {c25.legal_age:g} served without ID would fall from "
        f"{_share(c25.minor_pass_rate, c25.minors_passed, c25.minors)} to "
        f"{_share(safe.minor_pass_rate, safe.minors_passed, safe.minors)} on the test photos.{cost}"
    )


def accuracy(page: Page, evaluation: Evaluation) -> None:
    """How far off the estimates are, overall, per source and per age band (which way, too)."""
    page.heading("How close the estimates are")
    sources = "; ".join(
        f"{name}: {mae:.1f} years ({evaluation.count_by_source[name]:,} photos)"
        for name, mae in evaluation.mae_by_source.items()
    )
    page.paragraph(
        f"On {evaluation.count:,} test photos, **on average the estimate is off by {evaluation.mae:.1f} "
        f"years**; half of the estimates are within {evaluation.median_ae:.1f} years of the real age. "
        f"Per photo source: {sources}."
    )
    bias = evaluation.mean_error_by_age_band

    def leaning(error: float) -> str:
        if round(error, 1) == 0:
            return "about right"
        return f"{abs(error):.1f} years too {'old' if error > 0 else 'young'}"

    page.table(
        pd.DataFrame(
            {
                "real age": list(evaluation.mae_by_age_band),
                "photos": [evaluation.count_by_age_band[band] for band in evaluation.mae_by_age_band],
                "off by on average (years)": [f"{mae:.1f}" for mae in evaluation.mae_by_age_band.values()],
                "on average the estimate is": [leaning(bias[band]) for band in evaluation.mae_by_age_band],
            }
        ),
        caption="Per age band",
    )


def minors(page: Page, c25: Challenge25) -> None:
    """The Challenge 25 rule at the policy threshold: minors served, adults asked."""
    legal, policy = c25.legal_age, c25.threshold
    page.heading(f"Customers under {legal:g} served without ID")
    page.paragraph(
        f'With the rule "ask for ID when the estimate is under {policy:g}", **{c25.minors_passed} of '
        f"{c25.minors} customers under {legal:g}** in the test photos ({percent(c25.minor_pass_rate)}) look "
        f"{policy:g} or older to the model and would be served without an ID check; with so few photos the "
        f"true share could be as high as {percent(c25.minor_pass_rate_upper95)}. Among 13-17-year-olds "
        f"alone: {_share(c25.teen_pass_rate, c25.teens_passed, c25.teens)}."
    )
    page.paragraph(
        f"The other side: {_share(c25.adult_check_rate, c25.adults_checked, c25.adults)} of customers aged "
        f"{policy:g} or older would be asked for ID they did not need to show."
    )


def comparison(page: Page, c25: Challenge25) -> None:
    """What the 0.09% published for a deployed product means next to our 13-17-year-olds."""
    teens, where = c25.teens_val_test, "validation and test photos together"
    if teens is None:
        rates = (c25.teen_pass_rate, c25.teen_pass_rate_upper95, c25.teens, c25.teens_passed)
        teens, where = TeenRate(**dict(zip(TeenRate.model_fields, rates, strict=True))), "test photos"
    page.heading("Compared with a product in use")
    text = (
        f"A deployed age-assurance product (Yoti) publishes that **{percent(YOTI_MINOR_PASS, 2)} of "
        f"13-17-year-olds** (about 1 in {round(1 / YOTI_MINOR_PASS, -2):,.0f}) are estimated 25 or older. "
        f"For this model, **{teens.passed} of the {teens.count} 13-17-year-olds** in the {where} "
        f"({percent(teens.rate)}) are "
        f"estimated {c25.threshold:g} or older; with so few photos the true share could be as high as "
        f"{percent(teens.upper95)}."
    )
    if teens.rate:
        text += f" That is about {teens.rate / YOTI_MINOR_PASS:,.0f} times the published figure."
    page.paragraph(text)
    if c25.threshold != 25:
        page.note(f"The policy threshold is {c25.threshold:g}, not 25: the figures are not like for like.")


def _column(rates: Rates) -> list[str]:
    """One threshold's column of the comparison: the three shares and the ID checks per 1,000."""
    checks = "\u2013" if rates.adult_check_rate is None else f"{round(1000 * rates.adult_check_rate):,}"
    return [
        _share(rates.minor_pass_rate, rates.minors_passed, rates.minors),
        _share(rates.teen_pass_rate, rates.teens_passed, rates.teens),
        _share(rates.adult_check_rate, rates.adults_checked, rates.adults),
        checks,
    ]


def thresholds(page: Page, c25: Challenge25) -> None:
    """Both thresholds side by side, with the number of ID checks each costs."""
    safe = c25.safe_threshold
    if isinstance(safe, NoSafeThreshold):
        return
    page.heading("Which threshold to use")
    labels = [
        f"Customers under {c25.legal_age:g} served without ID",
        "13-17-year-olds served without ID",
        f"Customers aged {c25.threshold:g}+ asked for ID",
        f"ID checks per 1,000 customers aged {c25.threshold:g}+",
    ]
    table = {
        "on the test photos": labels,
        f"policy: ask under {c25.threshold:g}": _column(c25),
        f"safer: ask under {safe.threshold:g}": _column(safe),
    }
    page.table(pd.DataFrame(table))
    page.paragraph(
        f"The safer threshold is the lowest one that served at most {percent(safe.max_minor_pass_rate)} of "
        f"customers under {c25.legal_age:g} without ID on the {_calibration_photos(safe)} (there: "
        f"{percent(safe.calibration_minor_pass_rate)}). On the test photos it serves "
        f"{percent(safe.minor_pass_rate)}: few photos of minors make these shares uncertain."
    )


def till(page: Page, check: TillCheck | None) -> None:
    """The test photos as the till sees them: faces found and the error against the face crops."""
    checks = {} if check is None else check.checks()
    if not checks:
        return
    page.heading("At the till")
    page.paragraph(
        "The same test photos through the till's own steps (find the face, cut it out, estimate), as whole "
        "photos and as camera-like frames. A face that is not found means the cashier decides alone."
    )
    page.table(
        pd.DataFrame(
            {
                "photos as": [TILL_CHECKS.get(name, name) for name in checks],
                "photos": [t.photos for t in checks.values()],
                "face found": [percent(t.faces_found) for t in checks.values()],
                "off by on average (years)": [f"{t.mae:.1f}" for t in checks.values()],
                "on the face crops (years)": [f"{t.mae_crops:.1f}" for t in checks.values()],
            }
        )
    )


def groups(page: Page, evaluation: Evaluation, legal_age: float) -> None:
    """One table per grouping of customers, with the counts behind each share."""
    tables = evaluation.groups()
    if not tables:
        return
    page.heading("Does it work as well for everyone?")
    page.paragraph(
        "Groups come from the photo labels (not recorded where a source has no such label). A small "
        "group gives an uncertain share: look at the counts."
    )

    def row(name: str, g: Group) -> dict[str, str | int]:
        return {
            "group": name,
            "photos": g.count,
            "off by on average (years)": f"{g.mae:.1f}",
            f"under {legal_age:g} served without ID": f"{percent(g.minor_pass_rate)} of {g.minors:,}",
            "adults asked for ID": f"{percent(g.adult_check_rate)} of {g.adults:,}",
        }

    for column, table in tables.items():
        page.table(pd.DataFrame([row(name, g) for name, g in table.items()]), caption=f"By {column}")


def till_rule(tradeoff: dict[str, Any]) -> str | None:
    """How the till decides when it is not a threshold on the age (the under-25 check), with what it
    costs; None when the till decides on the estimated age (the recommendation box says that then)."""
    rule = tradeoff.get("till")
    if not rule:
        return None
    test, both = rule["test"], rule["teens_served_val_test"]
    lead = (
        f"**The till asks for ID when the model's under-25 check gives {percent(rule['cut'], 0)} or more**, "
        "not on the estimated age alone"
    )
    if both["rate"] is None or test["adults_asked"]["rate"] is None:
        return f"{lead}; the test photos have too few teens or adults to say what that costs."
    return (
        f"{lead}; the cut was chosen on the validation photos to serve as few 13-17-year-olds as possible "
        f"for the fewest ID checks. On the validation and test photos together it serves {both['hits']} of "
        f"the {both['count']} 13-17-year-olds ({percent(both['rate'])}); on the test photos, never used to "
        f"train or choose it, it asks {percent(test['adults_asked']['rate'])} of customers aged 25 or older "
        "for ID. The figures below are for a plain threshold on the estimated age, for comparison."
    )


def build_page(
    evaluation: Evaluation,
    figures: Sequence[tuple[Path, str]],
    footer: str = "",
    tradeoff: dict[str, Any] | None = None,
) -> Page:
    """The report page; ``figures`` are (PNG file, caption) pairs, embedded in the page; ``tradeoff`` the
    evaluate stage's operating points (``tradeoff.json``: how the till decides, when by the heads)."""
    c25 = evaluation.challenge25
    page = Page(
        TITLE,
        f"Results on {evaluation.count:,} test photos that were never used to train or tune the model",
        footer=footer,
    )
    page.note(till_rule(tradeoff or {}) or recommendation(c25))
    accuracy(page, evaluation)
    minors(page, c25)
    comparison(page, c25)
    thresholds(page, c25)
    till(page, evaluation.till)
    groups(page, evaluation, c25.legal_age)
    if figures:
        page.heading("Figures")
        for path, caption in figures:
            page.image(path, alt=caption, caption=caption)
    page.paragraph("No photo is shown on this page: the photos' licence forbids it.")
    return page


def model_md5(lock: Path) -> str | None:
    """The md5 of the model the evaluation ran on, as ``dvc.lock`` records it (None without one)."""
    if not lock.is_file():
        return None
    deps = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"].get(EVALUATE, {}).get("deps", [])
    return next((dep["md5"] for dep in deps if dep["path"] == MODEL), None)


def commit_date(path: Path) -> str | None:
    """The date of the last commit of ``path``: the same in every clone, unlike file times or the clock
    (None outside a git checkout)."""
    try:
        command = ["git", "log", "-1", "--format=%cs", "--", path.name]
        done = subprocess.run(command, cwd=path.parent, capture_output=True, text=True, check=False)
    except OSError:  # no git
        return None
    date = done.stdout.strip()
    return date if done.returncode == 0 and date else None


def provenance(lock: Path) -> str:
    """The footer: the package version, the model (md5) and the date of ``dvc.lock``."""
    md5, date = model_md5(lock), commit_date(lock)
    parts = [
        f"agecheck {metadata.version('agecheck')}",
        f"model {md5[:12]}" if md5 else "model unknown (no dvc.lock entry)",
        f"{lock.name} of {date}" if date else "",
    ]
    return ", ".join(part for part in parts if part)
