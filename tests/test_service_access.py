"""Trust at the till: API tokens, the refusal to serve the network openly, and the load bound."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from agecheck import cli
from agecheck.errors import AgecheckError
from agecheck.model.age_model import AgeModel
from agecheck.service import access
from agecheck.service.access import check_exposure, load_tokens
from agecheck.service.app import create_app
from agecheck.service.gate import Gate
from agecheck.till.pipeline import Till
from tests.support import synthetic as syn
from tests.support.params import PARAMS, changed

TOKEN = "till-token-0123456789abcdef"
OLD_TOKEN = "old-token-fedcba9876543210"
FRAME = syn.jpeg_bytes(syn.till_frame([(250, 120, 180)]))
JPEG = {"Content-Type": "image/jpeg"}


# --- tokens ---------------------------------------------------------------------------------------


def test_tokens_from_the_environment_and_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# rotate: the new one first\n{TOKEN}\n\n{OLD_TOKEN}\n")
    serve = changed(PARAMS.serve, token_env="TILL_TOKEN", token_file=str(token_file))
    tokens = load_tokens(serve, {"TILL_TOKEN": " env-token-0123456789abcdef\n"})
    assert tokens == (b"env-token-0123456789abcdef", TOKEN.encode(), OLD_TOKEN.encode())
    assert load_tokens(changed(serve, token_file=""), {}) == ()
    assert load_tokens(changed(serve, token_env="", token_file=""), {"TILL_TOKEN": TOKEN}) == ()


@pytest.mark.parametrize(
    ("file_text", "environ", "message"),
    [
        (None, {"T": "short"}, "the API token in $T is shorter than 16 characters"),
        ("# only a comment\n", {}, "holds no token"),
        ("two words in one token line\n", {}, "printable ASCII without spaces"),
        ("missing", {}, "cannot be read: FileNotFoundError"),
    ],
)
def test_bad_tokens_are_one_line_errors_that_never_show_the_token(
    tmp_path: Path, file_text: str | None, environ: dict[str, str], message: str
) -> None:
    token_file = tmp_path / "tokens"
    if file_text not in (None, "missing"):
        token_file.write_text(file_text)
    serve = changed(PARAMS.serve, token_env="T", token_file="" if file_text is None else str(token_file))
    with pytest.raises(AgecheckError, match=re.escape(message)) as err:
        load_tokens(serve, environ)
    assert "short" not in str(err.value).replace("shorter", "") and "words" not in str(err.value)


@pytest.mark.parametrize(
    ("host", "tokens", "run_open", "refused"),
    [
        ("127.0.0.1", (), False, False),
        ("localhost", (), False, False),
        ("::1", (), False, False),
        ("0.0.0.0", (), False, True),
        ("192.168.1.20", (), False, True),
        ("till-server.local", (), False, True),
        ("0.0.0.0", (b"x" * 16,), False, False),
        ("0.0.0.0", (), True, False),
    ],
)
def test_serving_the_network_needs_a_token_or_open(
    host: str, tokens: tuple[bytes, ...], run_open: bool, refused: bool
) -> None:
    if refused:
        with pytest.raises(AgecheckError, match=f"refusing to serve on {host} without an API token"):
            check_exposure(host, tokens, run_open)
    else:
        check_exposure(host, tokens, run_open)


def test_agecheck_serve_refuses_an_open_lan_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGECHECK_TOKEN", raising=False)
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(args))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--host", "0.0.0.0"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and "--open" in err and not started


def test_agecheck_serve_without_a_token_says_so(
    dex_model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(args))
    monkeypatch.delenv("AGECHECK_TOKEN", raising=False)
    assert cli.main(["serve", "--model", str(dex_model_path)]) == 0
    assert started and "warning: no API token configured" in capsys.readouterr().err
    monkeypatch.setenv("AGECHECK_TOKEN", TOKEN)
    assert cli.main(["serve", "--model", str(dex_model_path)]) == 0
    assert len(started) == 2 and "warning" not in capsys.readouterr().err


def test_tokens_are_compared_in_constant_time_with_every_token(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = access.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    tokens = (TOKEN.encode(), OLD_TOKEN.encode())
    assert access.token_matches(TOKEN.encode(), tokens)  # the first one matches: the second is still compared
    assert not access.token_matches(b"guess", tokens)
    assert len(calls) == 4


# --- the service with a token ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(dex_model_path: Path) -> AgeModel:
    return AgeModel.load(dex_model_path)


@pytest.fixture(scope="module")
def client(model: AgeModel) -> Iterator[TestClient]:
    app = create_app(Till.from_params(model, PARAMS), PARAMS.serve, (TOKEN.encode(), OLD_TOKEN.encode()))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"authorization": f"bearer {OLD_TOKEN}"}, 200),
        ({"X-API-Key": TOKEN}, 200),
    ],
)
def test_predict_needs_a_token(client: TestClient, headers: dict[str, str], status: int) -> None:
    answer = client.post("/predict", content=FRAME, headers={**JPEG, **headers})
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.json()["error"] == "unauthorized" and answer.headers["www-authenticate"] == "Bearer"
    else:
        assert answer.json()["status"] == "ok"


def test_health_stays_open_and_docs_follow_their_param(client: TestClient, model: AgeModel) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["token_required"] is True
    assert client.get("/docs").status_code == 401 and client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers={"X-API-Key": TOKEN}).status_code == 200
    serve = changed(PARAMS.serve, open_docs=True)
    with TestClient(create_app(Till.from_params(model, PARAMS), serve, (TOKEN.encode(),))) as open_docs:
        assert open_docs.get("/docs").status_code == 200
        assert open_docs.post("/predict", content=FRAME, headers=JPEG).status_code == 401


# --- the gate on its own: body never read, in-flight bound, timeout ---------------------------------


async def _call(gate: Gate, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], dict]:
    """Send one request through ``gate``; the body is never offered (receive fails if called)."""
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the gate read the body")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await gate(scope, receive, send)
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], head, json.loads(sent[1]["body"])


def _gate(app, **serve: object) -> Gate:  # type: ignore[no-untyped-def]
    return Gate(app, (TOKEN.encode(),), changed(PARAMS.serve, **serve))


def test_401_comes_before_the_body_is_read() -> None:
    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("the app ran without a token")

    status, head, body = anyio.run(_call, _gate(app), "/predict", {})
    assert (status, body["error"], head["www-authenticate"]) == (401, "unauthorized", "Bearer")
    status, _, body = anyio.run(_call, _gate(app), "/predict", {"X-API-Key": "nope"})
    assert status == 401 and body["detail"].startswith("a wrong API token")


async def _ok(send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"{}"})


def test_beyond_max_in_flight_503_with_retry_after_at_once() -> None:
    release = anyio.Event()
    entered: list[int] = []

    async def slow_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        entered.append(1)
        await release.wait()
        await _ok(send)

    gate = _gate(slow_app, max_in_flight=2, retry_after_s=3)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario() -> list[int]:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await _call(gate, "/predict", auth))[0])

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            tasks.start_soon(one)
            await anyio.wait_all_tasks_blocked()
            assert gate.in_flight == 2 and len(entered) == 2
            with anyio.fail_after(1):  # refused at once, not queued
                status, head, body = await _call(gate, "/predict", auth)
            assert (status, head["retry-after"], body["error"]) == (503, "3", "busy")
            release.set()
        statuses.append((await _call(gate, "/predict", auth))[0])  # room again
        return statuses

    assert anyio.run(scenario) == [200, 200, 200]
    assert gate.in_flight == 0


def test_a_prediction_over_the_timeout_is_answered_503() -> None:
    async def stuck_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await anyio.sleep(30)

    gate = _gate(stuck_app, timeout_s=0.2)

    async def scenario() -> tuple[int, dict[str, str], dict]:
        with anyio.fail_after(5):
            return await _call(gate, "/predict", {"X-API-Key": TOKEN})

    status, head, body = anyio.run(scenario)
    assert (status, body["error"], head["retry-after"]) == (503, "timeout", "1")
    assert gate.in_flight == 0


def test_a_real_prediction_over_the_timeout(model: AgeModel) -> None:
    """A slow decode + detection finishes on its thread (the pool stays bounded); then the 503."""
    till = Till.from_params(model, PARAMS)
    original = till.crops

    def slow_crops(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return original(*args, **kwargs)

    till.crops = slow_crops  # type: ignore[method-assign]
    serve = changed(PARAMS.serve, timeout_s=0.3)
    with TestClient(create_app(till, serve), raise_server_exceptions=False) as test_client:
        answer = test_client.post("/predict", content=FRAME, headers=JPEG)
        assert answer.status_code == 503 and answer.json()["error"] == "timeout"
        assert answer.headers["retry-after"] == "1"
        till.crops = original  # type: ignore[method-assign]
        assert test_client.post("/predict", content=FRAME, headers=JPEG).status_code == 200


def test_websockets_are_closed_when_tokens_are_set() -> None:
    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("a websocket reached the app")

    sent: list[dict] = []

    async def scenario() -> None:
        async def send(message: dict) -> None:
            sent.append(message)

        await _gate(app)({"type": "websocket", "path": "/predict", "headers": []}, None, send)

    anyio.run(scenario)
    assert sent == [{"type": "websocket.close", "code": 1008}]
