"""The HTTP service through an HTTP client (httpx via FastAPI's TestClient), with generated frames."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from agecheck import cli
from agecheck.config import DEFAULT_PARAMS
from agecheck.model.age_model import AgeModel
from agecheck.service.app import create_app
from agecheck.service.batching import Batcher
from agecheck.till.pipeline import Till
from tests.support import synthetic as syn
from tests.support.params import PARAMS, changed

MAX_BYTES = 300_000
ONE_FACE = [(250, 120, 180)]
THREE_FACES = [(40, 100, 150), (250, 150, 130), (450, 90, 160)]
SMALL_AND_LARGE = [(60, 80, 80), (300, 100, 260)]  # the detector scores the small face first
FACE_KEYS = {
    *("box", "age", "age_low", "age_high", "age_sd", "interval", "decision"),
    *("customer", "p_under_legal", "p_under_threshold"),
}
ANSWER_KEYS = {"status", "faces", "customer", "width", "height", "threshold", "legal_age", "milliseconds"}


@pytest.fixture(scope="module")
def client(dex_model_path: Path) -> Iterator[TestClient]:
    model = AgeModel.load(dex_model_path)
    till = Till.from_params(model, PARAMS)
    serve = changed(PARAMS.serve, max_bytes=MAX_BYTES, max_pixels=4_000_000)
    with TestClient(create_app(till, serve), raise_server_exceptions=False) as test_client:
        yield test_client


def _jpeg(faces: list[tuple[int, int, int]], seed: int = 0) -> bytes:
    return syn.jpeg_bytes(syn.till_frame(faces, seed=seed))


def _post_image(client: TestClient, data: bytes, content_type: str = "image/jpeg", **params: str):  # type: ignore[no-untyped-def]
    return client.post("/predict", content=data, headers={"Content-Type": content_type}, params=params)


def _check_face(face: dict, threshold: float = 25) -> None:
    assert set(face) == FACE_KEYS
    assert 0 <= face["age_low"] <= face["age"] <= face["age_high"] <= 100
    assert face["interval"] == "softmax" and face["age_sd"] > 0
    assert face["decision"] == ("ask_for_id" if face["age"] < threshold else "no_id_needed")
    assert 0 <= face["p_under_legal"] <= face["p_under_threshold"] <= 1
    assert face["p_under_legal"] == round(face["p_under_legal"], 4)


def _check_customer(body: dict) -> None:
    """The customer's face is the largest, marked in the face and named at the top."""
    faces = body["faces"]
    widest = max(range(len(faces)), key=lambda i: faces[i]["box"]["width"])
    assert body["customer"] == widest and [face["customer"] for face in faces] == [
        i == widest for i in range(len(faces))
    ]


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["interval"] == "softmax"
    assert health["policy"]["threshold"] == 25 and health["limits"]["max_bytes"] == MAX_BYTES
    assert health["align"] == PARAMS.align.model_dump() and "retry_padding" in health["detect"]
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_one_face(client: TestClient) -> None:
    answer = _post_image(client, _jpeg(ONE_FACE))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == ANSWER_KEYS
    assert body["status"] == "ok" and (body["width"], body["height"]) == (640, 480)
    assert len(body["faces"]) == 1 and body["threshold"] == 25 and body["legal_age"] == 18
    face = body["faces"][0]
    _check_face(face)
    assert body["customer"] == 0 and face["customer"] is True
    box = face["box"]  # the drawn face spans x 250..430, y 120..300
    assert 250 < box["left"] + box["width"] / 2 < 430 and 120 < box["top"] + box["height"] / 2 < 300


def test_several_faces_multipart(client: TestClient) -> None:
    files = {"photo": ("frame.png", syn.png_bytes(syn.till_frame(THREE_FACES)), "image/png")}
    body = client.post("/predict", files=files).json()
    assert body["status"] == "ok" and len(body["faces"]) == 3
    lefts = sorted(face["box"]["left"] for face in body["faces"])
    assert lefts[0] < 200 < lefts[1] < 400 < lefts[2]
    for face in body["faces"]:
        _check_face(face)
    _check_customer(body)


def test_the_customer_is_the_large_face_not_the_first(client: TestClient) -> None:
    body = _post_image(client, _jpeg(SMALL_AND_LARGE)).json()
    assert len(body["faces"]) == 2 and body["faces"][0]["box"]["width"] < body["faces"][1]["box"]["width"]
    assert body["customer"] == 1 and [face["customer"] for face in body["faces"]] == [False, True]
    _check_customer(body)


def test_no_face(client: TestClient) -> None:
    answer = _post_image(client, _jpeg([]))
    assert answer.status_code == 200 and answer.json()["status"] == "no_face" and answer.json()["faces"] == []
    assert answer.json()["customer"] is None


def test_sale_ids_are_checked_and_documented(client: TestClient) -> None:
    ids = {"sale_id": "S-2024-000123", "till": "till 4", "cashier": "C0042"}
    assert _post_image(client, _jpeg(ONE_FACE), **ids).status_code == 200
    for bad in ("x" * 65, "tab\there", "caf\u00e9", ""):
        answer = _post_image(client, _jpeg(ONE_FACE), sale_id=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["error"] == "invalid_request" and answer.json()["detail"][0]["where"] == [
            "query",
            "sale_id",
        ]
    parameters = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["parameters"]
    documented = {p["name"]: p for p in parameters}
    for name in ids:
        assert not documented[name]["required"] and "estimates log" in documented[name]["description"]


def test_precropped_face(client: TestClient) -> None:
    body = _post_image(client, syn.jpeg_bytes(syn.face_like(120, 150)), detect="false").json()
    assert body["status"] == "ok" and len(body["faces"]) == 1 and body["faces"][0]["box"] is None
    assert body["customer"] == 0 and body["faces"][0]["customer"] is True


def test_concurrent_requests(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    frames = [_jpeg(THREE_FACES if i % 2 else ONE_FACE, seed=i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda data: _post_image(client, data), frames))
    assert [len(a.json()["faces"]) for a in answers] == [1, 3, 1, 3, 1, 3]


def _gif() -> bytes:
    buffer = io.BytesIO()
    syn.face_like().save(buffer, format="GIF")
    return buffer.getvalue()


BAD_RAW = {
    "empty body": (b"", "image/jpeg", 400, "empty_body"),
    "text file": (b"this is not a photo\n", "text/plain", 415, "unsupported_media_type"),
    "text file said to be a JPEG": (b"this is not a photo\n", "image/jpeg", 415, "not_an_image"),
    "truncated JPEG": (syn.jpeg_bytes(syn.face_like(256, 256))[:2000], "image/jpeg", 422, "corrupt"),
    "PNG claiming 20000x20000": (syn.png_bomb(20000, 20000), "image/png", 413, "too_large"),
    # beyond Pillow's own bomb guard too (it raises before any size check could run)
    "PNG claiming 50000x50000": (syn.png_bomb(50000, 50000), "image/png", 413, "too_large"),
    "over the upload limit": (b"\xff\xd8" + b"\0" * MAX_BYTES, "image/jpeg", 413, "too_large"),
    "wrong content type": (
        syn.jpeg_bytes(syn.face_like()),
        "application/json",
        415,
        "unsupported_media_type",
    ),
    "no content type": (syn.jpeg_bytes(syn.face_like()), "", 415, "unsupported_media_type"),
    "GIF (not accepted)": (_gif(), "image/gif", 415, "unsupported_media_type"),
    "PNG said to be a JPEG": (syn.png_bytes(syn.face_like()), "image/jpeg", 415, "not_an_image"),
    "tiny photo": (syn.jpeg_bytes(syn.face_like(16, 16)), "image/jpeg", 422, "too_small"),
}


@pytest.mark.parametrize("case", list(BAD_RAW))
def test_bad_raw_uploads(client: TestClient, case: str) -> None:
    data, content_type, status, error = BAD_RAW[case]
    answer = _post_image(client, data, content_type)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error and answer.json()["detail"]


def _multipart(parts: list[tuple[str, bytes, str]], boundary: str = "b0undary") -> bytes:
    lines = []
    for name, data, content_type in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x"\r\n'
        lines.append(head.encode() + f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(lines) + f"--{boundary}--\r\n".encode()


BAD_FORMS = {
    "no photo field": ([("picture", _jpeg(ONE_FACE), "image/jpeg")], 422, "missing_photo"),
    "text file in the form": ([("photo", b"hello", "text/plain")], 415, "unsupported_media_type"),
    "empty photo in the form": ([("photo", b"", "image/jpeg")], 400, "empty_body"),
    "photo over the limit": ([("photo", b"\xff\xd8" + b"\0" * MAX_BYTES, "image/jpeg")], 413, "too_large"),
}


@pytest.mark.parametrize("case", list(BAD_FORMS))
def test_bad_forms(client: TestClient, case: str) -> None:
    parts, status, error = BAD_FORMS[case]
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    answer = client.post("/predict", content=_multipart(parts), headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"--x\r\nnot really multipart", {"Content-Type": "multipart/form-data; boundary=x"}),
        (b"whatever", {"Content-Type": "multipart/form-data"}),
    ],
)
def test_broken_multipart(client: TestClient, content: bytes, headers: dict[str, str]) -> None:
    answer = client.post("/predict", content=content, headers=headers)
    assert 400 <= answer.status_code < 500 and answer.json()["error"]


def test_streamed_body_over_limit(client: TestClient) -> None:
    """Without a Content-Length the body is counted while it streams in."""
    chunks = iter([b"\xff\xd8" + b"\0" * 100_000] * 5)
    answer = client.post("/predict", content=chunks, headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 413 and answer.json()["error"] == "too_large"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/predict", 405), ("post", "/nowhere", 404), ("post", "/predict?detect=maybe", 422)],
)
def test_other_client_errors_are_json(client: TestClient, method: str, path: str, status: int) -> None:
    answer = client.request(method, path, content=_jpeg(ONE_FACE), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == status and answer.json()["error"]


def test_nothing_about_the_photo_is_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    data = _jpeg(ONE_FACE, seed=5)
    with caplog.at_level(logging.DEBUG):
        age = _post_image(client, data).json()["faces"][0]["age"]
        _post_image(client, b"secret text", "image/jpeg")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret text" not in logged and str(age) not in logged and data[:64].hex() not in logged


def test_batcher_skips_requests_that_went_away() -> None:
    ran: list[int] = []

    def run(batch: np.ndarray) -> list[float]:
        ran.append(len(batch))
        return [0.0] * len(batch)

    async def scenario() -> list[float]:
        batcher = Batcher(run, max_batch=16, max_wait=0.0)  # type: ignore[arg-type]
        gone = asyncio.ensure_future(batcher.submit(np.zeros((5, 2, 2, 3), dtype=np.uint8)))
        await asyncio.sleep(0)  # queued
        gone.cancel()  # the gate's timeout
        batcher.start()
        result = await batcher.submit(np.zeros((2, 2, 2, 3), dtype=np.uint8))
        await batcher.stop()
        return result

    assert asyncio.run(scenario()) == [0.0, 0.0]
    assert ran == [2]  # the cancelled request's 5 crops never reached the model


def test_batcher_joins_concurrent_requests() -> None:
    sizes: list[int] = []

    def run(batch: np.ndarray) -> list[float]:
        sizes.append(len(batch))
        return [float(x) for x in batch[:, 0, 0, 0]]

    async def scenario() -> list[list[float]]:
        batcher = Batcher(run, max_batch=16, max_wait=0.05)  # type: ignore[arg-type]
        batcher.start()
        crops = [np.full((n, 2, 2, 3), i, dtype=np.uint8) for i, n in enumerate((1, 3, 2), start=1)]
        results = await asyncio.gather(*(batcher.submit(c) for c in crops))
        await batcher.stop()
        return results

    assert asyncio.run(scenario()) == [[1.0], [2.0] * 3, [3.0] * 2]
    assert sizes == [6]


@pytest.mark.parametrize(
    ("change", "message"),
    [({"max_byte": 5}, "serve.max_byte: unknown key"), ({"port": "http"}, "serve.port: Input should be")],
)
def test_serve_with_bad_params_is_a_one_line_error(
    change: dict[str, object], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["serve"].update(change)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and err.startswith("error: ") and message in err


def test_uploads_never_touch_disk(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads are parsed in memory: no temporary file is created for a multipart photo."""
    import tempfile

    def no_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("a temporary file was created")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_files)
    files = {"photo": ("frame.jpg", _jpeg(ONE_FACE), "image/jpeg")}
    assert client.post("/predict", files=files).status_code == 200
