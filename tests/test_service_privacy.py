"""What a running ``agecheck serve`` logs under load and under bad input: nothing about the customer.

The real server (uvicorn, its access log, a worker process) runs as a child process on loopback
with a token; everything it writes is captured and searched for image bytes, file names, ages
and tokens.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
import yaml

from agecheck.config import DEFAULT_PARAMS
from tests.support import synthetic as syn
from tests.support.local_server import local_server

TOKEN = "privacy-test-token-5f0c1d2e3b4a"
WRONG_TOKEN = "wrong-token-c0ffee-0123456789"
FILE_NAME = "alice_smith_born_2008.jpg"


def _frames() -> list[bytes]:
    """Large frames (decode + detection take a while), so concurrent posts outrun max_in_flight."""
    frames = [syn.till_frame([(150 + 20 * i, 120, 180)], seed=i) for i in range(6)]
    return [syn.jpeg_bytes(frame.resize((1920, 1440))) for frame in frames]


async def _traffic(url: str, frames: list[bytes]) -> tuple[list[float], list[int]]:
    """Concurrent posts beyond max_in_flight, bad uploads, wrong and missing tokens."""
    ages: list[float] = []
    statuses: list[int] = []
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def post(data: bytes, content_type: str = "image/jpeg", headers: dict | None = None) -> None:
            answer = await http.post(
                "/predict", content=data, headers={"Content-Type": content_type, **(headers or good)}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                ages.extend(face["age"] for face in answer.json()["faces"])

        await asyncio.gather(*(post(frames[i % len(frames)]) for i in range(40)))
        bad = [
            (syn.png_bomb(30000, 30000), "image/png"),
            (syn.jpeg_bytes(syn.face_like(2000, 60)), "image/jpeg"),
            (b"secret text, not a photo", "image/jpeg"),
            (frames[0][:3000], "image/jpeg"),
        ]
        for data, content_type in bad:
            await post(data, content_type)
        await post(frames[1], headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
        await post(frames[1], headers={"X-API-Key": TOKEN[:-1]})
        await post(frames[1], headers={})
        files = {"photo": (FILE_NAME, frames[2], "image/jpeg")}
        answer = await http.post("/predict", files=files, headers=good)
        statuses.append(answer.status_code)
        ages.extend(face["age"] for face in answer.json()["faces"])
    return ages, statuses


@pytest.mark.e2e  # a real uvicorn server process
def test_the_running_service_logs_nothing_about_photos(tmp_path: Path, dex_model_path: Path) -> None:
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["serve"].update(max_in_flight=2, token_env="TILL_TOKEN")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    log_path = tmp_path / "server.log"
    frames = _frames()
    with (
        log_path.open("wb") as log,
        local_server(dex_model_path, tmp_path / "params.yaml", {"TILL_TOKEN": TOKEN}, log) as server,
    ):
        ages, statuses = asyncio.run(_traffic(server.url, frames))
    logged = log_path.read_bytes()
    text = logged.decode("utf-8", errors="replace")
    # the traffic did what it should: answers, 503s beyond the bound, 4xx for bad input, 401s
    assert statuses.count(200) >= 3 and 503 in statuses
    assert {413, 422, 415, 401} <= set(statuses)
    assert "POST /predict" in text, "the access log is on: the check below means something"
    for secret in (TOKEN, WRONG_TOKEN, TOKEN[:-1], FILE_NAME, "alice", "secret text"):
        assert secret not in text
    for age in ages:  # as a number of its own (not inside a longer one such as a timestamp)
        assert not re.search(rf"(?<![\d.]){re.escape(str(age))}(?!\d)", text), age
    for data in frames:
        for start in range(0, len(data) - 32, len(data) // 8):
            piece = data[start : start + 32]
            assert piece not in logged and piece.hex() not in text
    assert "30000" not in text and "900,000,000" not in text  # not even the rejected photo's size
