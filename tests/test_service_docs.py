"""``/docs`` works with no internet: Swagger UI comes from the service itself, never from a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from agecheck.config import DEFAULT_PARAMS
from agecheck.model.age_model import AgeModel
from agecheck.service.app import DOCS_ASSETS_URL, create_app
from agecheck.till.pipeline import Till
from tests.support.browser import open_page, require_browser
from tests.support.local_server import local_server
from tests.support.params import PARAMS, changed

TOKEN = "docs-token-0123456789abcdef"
ASSETS = [f"{DOCS_ASSETS_URL}/{name}" for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")]
#: Swagger UI has drawn the operations (it draws nothing for an OpenAPI version it cannot read).
OPERATIONS_DRAWN = "document.querySelectorAll('.opblock').length > 0"


@pytest.fixture(scope="module")
def till(dex_model_path: Path) -> Till:
    return Till.from_params(AgeModel.load(dex_model_path), PARAMS)


@pytest.fixture(scope="module")
def client(till: Till) -> Iterator[TestClient]:
    with TestClient(create_app(till, PARAMS.serve)) as test_client:
        yield test_client


def _page_urls(html: str) -> list[str]:
    """What the page loads: src and href attributes, and the spec's url in the Swagger UI call."""
    return re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)


def test_docs_load_only_urls_of_the_service(client: TestClient) -> None:
    answer = client.get("/docs")
    assert answer.status_code == 200 and "://" not in answer.text, answer.text
    urls = _page_urls(answer.text)
    assert sorted(urls) == sorted([*ASSETS, "/openapi.json"])
    for url in urls:
        assert client.get(url).status_code == 200, url
    kinds = [client.get(url).headers["content-type"].split(";")[0] for url in ASSETS[:2]]
    assert kinds in (["text/javascript", "text/css"], ["application/javascript", "text/css"]), kinds
    assert client.get("/redoc").status_code == 404  # ReDoc would load its logo from a CDN: not offered


def test_docs_behind_a_proxy_prefix(till: Till) -> None:
    with TestClient(create_app(till, PARAMS.serve), root_path="/agecheck") as prefixed:
        urls = _page_urls(prefixed.get("/docs").text)
    assert sorted(urls) == sorted(f"/agecheck{url}" for url in [*ASSETS, "/openapi.json"])


@pytest.mark.parametrize("open_docs", [False, True])
def test_the_docs_assets_follow_the_rule_of_docs(till: Till, open_docs: bool) -> None:
    """Behind the token like /docs, or open with it (a browser sends no token for a page's scripts)."""
    serve = changed(PARAMS.serve, open_docs=open_docs)
    with TestClient(create_app(till, serve, (TOKEN.encode(),))) as client:
        for path in ["/docs", "/openapi.json", *ASSETS]:
            assert client.get(path).status_code == (200 if open_docs else 401), path
            assert client.get(path, headers={"X-API-Key": TOKEN}).status_code == 200, path
        # open docs open the assets' folder, which holds the package's files alone; nothing else opens
        assert client.get(f"{DOCS_ASSETS_URL}/other.js").status_code == (404 if open_docs else 401)
        assert client.post("/predict", content=b"x", headers={"Content-Type": "image/png"}).status_code == 401


@pytest.mark.e2e  # a real uvicorn server process, and Chromium
def test_docs_in_a_browser_fetch_nothing_outside_the_service(tmp_path: Path, dex_model_path: Path) -> None:
    require_browser()
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["serve"].update(open_docs=True, token_env="TILL_TOKEN")  # a store's setup: token, open docs
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with local_server(dex_model_path, tmp_path / "params.yaml", {"TILL_TOKEN": TOKEN}) as server:
        local = f"{server.url}/"
        report = open_page(
            f"{server.url}/docs",
            allow=(local,),
            charts=None,
            ready=OPERATIONS_DRAWN,
            screenshot=tmp_path / "docs.png",
        )
    assert report.ready, f"Swagger UI drew no operation: {report}"
    assert report.blocked == [] and all(url.startswith(local) for url in report.requests), report
    assert {f"{server.url}{path}" for path in [*ASSETS, "/openapi.json"]} <= set(report.requests), report
    assert report.console_errors == [] and report.broken_images == [], report
