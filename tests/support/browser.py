"""Open a page in headless Chromium and report what an offline till would see.

The store network has no internet: a page that loads anything from a CDN renders broken there.
:func:`open_page` loads a local HTML file (or a URL on a local server) in Debian's ``chromium``
(driven by Playwright, whose own browser downloads cannot work here), lets through only the page
itself and the URL prefixes given in ``allow``, and aborts and records every other request, so a
test sees what the page would fetch without anything reaching the network. Chromium's own
background traffic (updates, metrics, sync...) is switched off by its flags, and no host but
those of the page and ``allow`` resolves, as a second guard.

Under ``CI=true`` a missing browser fails the test (:func:`require_browser`); elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SETUP_HINT = "run scripts/setup_web.sh (Debian's chromium and playwright in .venv)"
#: DVC's plot page: one ``div`` with the plot's name as id per plot, right in the body; those with
#: an ``img`` are image plots (PNG files: see ``broken_images``), the others Vega charts.
DVC_PLOT_DIVS = "body > div[id]:not(:has(img))"
#: What Vega draws a chart into (vega-embed's menu icons are SVGs too: class "marks" tells them apart).
CHART_MARKS = "canvas.marks, svg.marks"
#: Chromium's own traffic off: no updates, metrics, sync, phishing lists, first-run pages, pings.
QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--no-pings",
    "--dns-prefetch-disable",
)
_PAGE_STATE = """({charts, marks}) => ({
    broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
        .map(i => i.currentSrc || i.src),
    charts: charts ? Array.from(document.querySelectorAll(charts)).map((el, n) =>
        [el.id || String(n), el.querySelectorAll(marks).length]) : [],
})"""
_ALL_CHARTS_DRAWN = """({charts, marks}) =>
    Array.from(document.querySelectorAll(charts)).every(el => el.querySelector(marks))"""


@dataclass
class PageReport:
    """What a page did in the browser: ``blocked``, ``console_errors`` and ``broken_images`` stay empty
    for a page that works offline."""

    url: str
    ready: bool = False  # the page got to its ready condition in time
    requests: list[str] = field(default_factory=list)  # all but the page itself and data:/blob: URIs
    blocked: list[str] = field(default_factory=list)  # those not under ``allow``: aborted, never sent
    console_errors: list[str] = field(default_factory=list)  # console.error and uncaught exceptions
    broken_images: list[str] = field(default_factory=list)  # <img> with naturalWidth 0
    charts: dict[str, int] = field(default_factory=dict)  # chart container id -> Vega canvases/SVGs
    screenshot: Path | None = None

    @property
    def blank_charts(self) -> list[str]:
        """The chart containers where nothing was drawn."""
        return [name for name, count in self.charts.items() if count == 0]


def resolver_rules(urls: Sequence[str]) -> str:
    """Chromium's flag that resolves no host (IP literals included) but those of ``urls``."""
    hosts = sorted({host for url in urls if (host := urlsplit(url).hostname)})
    return "--host-resolver-rules=" + " , ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in hosts)])


def chromium_executable() -> str | None:
    """``$CHROMIUM`` or Debian's ``chromium`` on PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The chromium to use; a missing one (or Playwright) fails under ``CI=true``, else skips."""
    missing = []
    if chromium_executable() is None:
        missing.append("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        reason = f"{' and '.join(missing)} missing: {SETUP_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(chromium_executable())


def open_page(
    target: str | Path,
    *,
    allow: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    charts: str | None = DVC_PLOT_DIVS,
    ready: str | None = None,
    screenshot: Path | None = None,
    timeout_s: float = 30,
) -> PageReport:
    """Load ``target`` (a file path or a URL), wait until it is ``ready``, and report.

    ``allow``: URL prefixes let through besides the page itself (a local server's origin, say).
    ``charts``: CSS selector of the chart containers to count (None: no charts on this page).
    ``ready``: a JavaScript expression true once the page has done its work; by default, every
    chart container has a chart. A page that never gets there is reported as it stands then.
    """
    from playwright.sync_api import Error, Route, sync_playwright

    text = str(target)
    url = text if text.startswith(("http:", "https:", "file:")) else Path(target).resolve().as_uri()
    report = PageReport(url=url, screenshot=screenshot)

    def route(hit: Route) -> None:
        request_url = hit.request.url
        if request_url.split("#")[0] == url.split("#")[0]:
            hit.continue_()
            return
        report.requests.append(request_url)
        if request_url.startswith(tuple(allow)):
            hit.continue_()
        else:
            report.blocked.append(request_url)
            hit.abort("blockedbyclient")

    timeout_ms = timeout_s * 1000
    selectors = {"charts": charts, "marks": CHART_MARKS}
    with sync_playwright() as driver:
        flags = [*QUIET_FLAGS, resolver_rules([url, *allow])]
        browser = driver.chromium.launch(executable_path=require_browser(), args=flags)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, extra_http_headers=dict(headers or {})
            )
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda err: report.console_errors.append(f"uncaught: {err}"))
            page.goto(url, wait_until="load", timeout=timeout_ms)
            try:
                if ready is not None:
                    page.wait_for_function(ready, timeout=timeout_ms)
                elif charts is not None:
                    page.wait_for_function(_ALL_CHARTS_DRAWN, arg=selectors, timeout=timeout_ms)
                report.ready = True
                page.wait_for_load_state("networkidle", timeout=timeout_ms)
            except Error:  # not ready in time: the report says how it stands
                pass
            state = page.evaluate(_PAGE_STATE, selectors)
            report.broken_images = state["broken"]
            report.charts = dict(state["charts"])
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return report


def open_static_page(path: Path, tables: int, images: int, screenshot: Path | None = None) -> PageReport:
    """Open a page of :mod:`agecheck.pages.html` offline; ``ready`` only once the browser shows exactly
    that many tables and images."""
    counted = f"document.querySelectorAll('table').length === {tables} && document.images.length === {images}"
    return open_page(path, charts=None, ready=counted, screenshot=screenshot, timeout_s=10)


def assert_works_offline(report: PageReport) -> None:
    """The page showed what it should, fetched nothing, logged no error and has no broken image."""
    assert report.ready, f"not the expected tables and images: {report}"
    assert report.requests == [] and report.console_errors == [] and report.broken_images == [], report
