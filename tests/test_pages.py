"""Pages for people (:mod:`agecheck.pages.html`, ``metrics/report.html``): text is escaped, the same
inputs give the same bytes, a page is written whole or not at all, and in a browser every table and
image is there and nothing is fetched."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from agecheck.evaluation.evaluate import evaluate_predictions
from agecheck.evaluation.report import FIGURES
from agecheck.evaluation.report_page import build_page, provenance, recommendation
from agecheck.evaluation.results import DETAILS, PREDICTIONS, Evaluation, NoSafeThreshold
from agecheck.pages.html import CSP, Page
from tests.support.browser import assert_works_offline, open_static_page
from tests.support.params import PARAMS, changed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "metrics" / "evaluate"
PNG = RESULTS / "mae_by_age_band.png"
SCRIPT = "<script>alert(1)</script>"
FOOTER = "agecheck 0.2.0, model e2b987c429c4, dvc.lock of 2026-11-30"


def _figure() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(["13-17", "18-24", "25+"], [5.0, 4.2, 6.1])
    ax.set_ylabel("years")
    return fig


def _page() -> Page:
    """A page with every element: two tables, a figure, an image file, notes."""
    page = Page("Cashier audit", "Store 12, November", footer="agecheck 0.2.0, model e2b987c4, 2026-11-30")
    page.heading("Who checked ID")
    page.paragraph(f"Cashier {SCRIPT} asked **12 of 40** customers for ID.")
    page.note("**Recommendation.** Ask for ID under 28.")
    cashiers = pd.DataFrame({"cashier": [SCRIPT, "Ann"], "sales": [40, 1204], "asked": ["30.0%", "4.1%"]})
    page.table(cashiers, caption="Per cashier")
    page.table(pd.DataFrame({"mae": [5.288, float("nan")]}, index=pd.Index(["aaf", "utk"], name="source")))
    page.heading("Figures", level=3)
    page.figure(_figure(), alt="Error per age band", caption="Drawn here")
    page.image(PNG, alt="Average error per age band")
    page.note("Estimates only: a person decides.")
    return page


def test_text_is_escaped_and_bold_is_the_only_markup() -> None:
    html = _page().html()
    assert SCRIPT not in html and "<script" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # the paragraph and the table cell
    assert "<strong>12 of 40</strong>" in html and "<strong>Recommendation.</strong>" in html
    page = Page("<b>title</b>", footer="<i>")
    page.paragraph("**<b>**")
    assert "<strong>&lt;b&gt;</strong>" in page.html() and "<b>" not in page.html()


def test_numbers_are_right_aligned_and_formatted() -> None:
    html = _page().html()
    assert '<td class="num">1,204</td>' in html and '<td class="num">4.1%</td>' in html
    assert '<td class="num">5.29</td>' in html and '<td class="num">\u2013</td>' in html  # NaN: a dash
    assert "<th>source</th>" in html and "<td>aaf</td>" in html  # a named index is shown
    assert "<td>Ann</td>" in html


def test_the_same_page_gives_the_same_bytes_and_closes_its_figures() -> None:
    first = _page().html()
    assert first == _page().html()
    assert plt.get_fignums() == []
    assert "Matplotlib" not in first  # no software tag in the PNG
    assert "http" not in first.replace("http-equiv", "")  # nothing to fetch, no link out


def test_a_heading_level_outside_2_to_6_fails() -> None:
    with pytest.raises(ValueError, match="level 1"):
        Page("t").heading("h", level=1)


def test_an_image_that_is_not_an_image_type_fails(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="not an image"):
        Page("t").image(tmp_path / "a.txt", alt="x")


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out" / "page.html"
    page = _page()
    page.write(path)
    assert path.read_text(encoding="utf-8") == page.html()
    assert os.listdir(path.parent) == ["page.html"]

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    other = Page("Another page")
    with pytest.raises(OSError, match="disk full"):
        other.write(path)
    assert path.read_text(encoding="utf-8") == page.html()  # the old page stays whole
    assert os.listdir(path.parent) == ["page.html"]  # and no temporary is left


def _committed_report(tradeoff: bool = True) -> str:
    """The report page of the committed evaluation (as the stage writes it: with the till's rule)."""
    figures = [(RESULTS / name, caption) for name, caption in FIGURES]
    rules = json.loads((RESULTS / "tradeoff.json").read_text(encoding="utf-8")) if tradeoff else None
    return build_page(Evaluation.read(RESULTS / DETAILS), figures, footer=FOOTER, tradeoff=rules).html()


def test_the_report_page_says_the_committed_numbers_in_plain_words() -> None:
    html = _committed_report()
    assert "<strong>on average the estimate is off by 4.7 years</strong>" in html
    assert "<strong>0.09% of 13-17-year-olds</strong> (about 1 in 1,100)" in html
    assert (
        "<strong>12 of the 188 13-17-year-olds</strong> in the validation and test photos together (6.4%)"
        in html
    )
    assert (
        "<strong>The till asks for ID when the model&#x27;s under-25 check gives 28% or more</strong>" in html
    )
    assert "On the validation and test photos together it serves 7 of the 188 13-17-year-olds (3.7%)" in html
    assert "on the test photos, never used to train or choose it, it asks 15.0% of customers aged 25" in html
    assert "<td>88</td><td>100</td>" in html  # ID checks per 1,000 adults: ask under 25, under 25.3
    plain = _committed_report(tradeoff=False)  # a till deciding on the estimated age
    assert "ask for ID when the estimate is under 25.3, not 25." in plain and "under-25 check" not in plain
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)
    assert "MAE" not in text and "val_" not in text  # no jargon
    assert html.count("<img ") == len(FIGURES) and FOOTER in html
    ids = pd.read_csv(RESULTS / PREDICTIONS, dtype={"id": str})["id"]
    assert not [photo for photo in ids if photo in html]  # no photo ids, unlike report.md
    assert html == _committed_report()


def _synthetic(max_minor_pass_rate: float) -> Evaluation:
    """Eight customers (four minors), the safer threshold set on the same photos."""
    policy = changed(PARAMS.policy, threshold=25, legal_age=18, max_minor_pass_rate=max_minor_pass_rate)
    true, predicted = np.array([10, 15, 16, 17, 20, 25, 40, 60]), np.array([12, 26, 24, 30, 23, 24.9, 45, 20])
    table = pd.DataFrame({"id": [f"s/{i}.jpg" for i in range(8)], "source": "s", "age": true})
    return evaluate_predictions(table, predicted, policy)[1]


def test_the_recommendation_weighs_minors_served_against_id_checks() -> None:
    c25 = _synthetic(0.25).challenge25
    assert recommendation(c25).startswith(
        "**Recommendation: ask for ID when the estimate is under 26.1, not 25.**"
    )
    assert "from 50.0% (2 of 4) to 25.0% (1 of 4)" in recommendation(c25)
    assert "66.7% of customers aged 25 or older are asked for ID instead of 66.7%, about 0 more" in (
        recommendation(c25)
    )
    assert recommendation(_synthetic(0.5).challenge25).startswith(
        "**Keep asking for ID when the estimate is under 25.**"
    )
    none = c25.model_copy(
        update={
            "safe_threshold": NoSafeThreshold(calibrated_on="val", max_minor_pass_rate=0.01, threshold=None)
        }
    )
    assert "the validation photos have no customers under 18" in recommendation(none)
    html = build_page(_synthetic(0.25), []).html()  # no till check, no groups, no validation photos
    assert (
        "the test photos themselves" in html
        and "<strong>2 of the 3 13-17-year-olds</strong> in the test photos" in html
    )
    assert "<h2>At the till</h2>" not in html and "<figure>" not in html and "<footer>" not in html


def test_the_footer_names_the_model_of_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "stages:\n  evaluate:\n    deps:\n    - path: models/age_model.keras\n      md5: e2b987c429c45a08\n"
    )
    assert provenance(lock).endswith(", model e2b987c429c4")  # no date outside a git checkout
    assert "dvc.lock of 20" in provenance(ROOT / "dvc.lock")


def test_the_stage_writes_both_reports(tmp_path: Path) -> None:
    shutil.copytree(RESULTS, tmp_path / "metrics" / "evaluate")
    shutil.copy(ROOT / "metrics" / "peer.json", tmp_path / "metrics" / "peer.json")
    shutil.copy(ROOT / "dvc.lock", tmp_path / "dvc.lock")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "report.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "metrics/report.md").read_text() == (ROOT / "metrics/report.md").read_text()
    page = (tmp_path / "metrics/report.html").read_text()
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]["evaluate"]["deps"]
    model = next(d["md5"] for d in lock if d["path"] == "models/age_model.keras")
    assert page.count("<img ") == len(FIGURES) and f"model {model[:12]}" in page


def test_a_page_with_every_element_shows_them_all_and_fetches_nothing(tmp_path: Path) -> None:
    _page().write(tmp_path / "page.html")
    assert_works_offline(open_static_page(tmp_path / "page.html", tables=2, images=2))


def test_the_report_page_shows_its_tables_and_figures_and_fetches_nothing(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text(_committed_report(), encoding="utf-8")
    assert_works_offline(open_static_page(tmp_path / "report.html", tables=5, images=len(FIGURES)))


def test_the_browser_check_reports_a_broken_image_and_a_request(tmp_path: Path) -> None:
    broken = _page().html().replace("</main>", '<img src="missing.png" alt="lost"></main>')
    (tmp_path / "broken.html").write_text(broken, encoding="utf-8")
    report = open_static_page(tmp_path / "broken.html", tables=2, images=3)
    assert report.broken_images == ["missing.png"] and "Content Security Policy" in report.console_errors[0]
    assert report.requests == []  # the page's policy stopped it before the network
    (tmp_path / "no_policy.html").write_text(broken.replace(CSP, "default-src *"), encoding="utf-8")
    report = open_static_page(tmp_path / "no_policy.html", tables=2, images=3)
    assert report.blocked == [(tmp_path / "missing.png").as_uri()] and report.broken_images, report


def _simulated_audit_page(folder: Path) -> Path:
    """``audit.html`` of a simulated month on synthetic customers (3 stores)."""
    from agecheck.audit.run import audit_sales, write_audit
    from agecheck.audit.simulate import simulate_month
    from tests.support.customers import synthetic_customers

    sim = changed(PARAMS.audit.simulation, stores=3)
    month = simulate_month(synthetic_customers(), sim, PARAMS.policy, np.random.default_rng(0))
    write_audit(audit_sales(month.sales, PARAMS.policy, PARAMS.audit, simulation=True), folder)
    return folder / "audit.html"


def test_the_audit_page_shows_its_tables_and_charts_and_fetches_nothing(tmp_path: Path) -> None:
    page = _simulated_audit_page(tmp_path)
    html = page.read_text(encoding="utf-8")
    tables, images = html.count("<table"), html.count("<img ")
    assert tables >= 2 and images == 3  # flagged cashiers and the review list; a chart per store
    assert_works_offline(open_static_page(page, tables=tables, images=images))
    broken = html.replace("</main>", '<img src="missing.png" alt="lost"></main>')
    (tmp_path / "broken.html").write_text(broken, encoding="utf-8")
    assert open_static_page(tmp_path / "broken.html", tables=tables, images=images + 1).broken_images == [
        "missing.png"
    ]
