"""The estimates log: what ``agecheck serve`` and ``agecheck predict --log`` append per photo (the
estimates, never the photo), and that lines from concurrent processes stay whole."""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from agecheck import cli
from agecheck.config import DEFAULT_PARAMS
from agecheck.errors import AgecheckError
from agecheck.model.age_model import AgeModel
from agecheck.service.app import create_app
from agecheck.till.estimates_log import EstimatesLog, Sale, log_entry, read_estimates
from agecheck.till.pipeline import Till
from tests.support import synthetic as syn
from tests.support.local_server import local_server
from tests.support.params import PARAMS, changed

ONE_FACE = [(250, 120, 180)]
SMALL_AND_LARGE = [(60, 80, 80), (300, 100, 260)]  # the detector scores the small face first
#: Every key a line may hold (``file``: predict's lines only), and every key of a face in it.
LINE_KEYS = {"time", "sale_id", "till", "cashier", "status", "threshold", "legal_age", "customer", "faces"}
FACE_KEYS = {
    *("box", "age", "age_low", "age_high", "age_sd", "interval", "decision"),
    *("customer", "p_under_legal", "p_under_threshold", "age_probs"),
}
#: A face's part of a line, softmax included, stays well under this many bytes.
MAX_FACE_BYTES = 4096


def _jpeg(faces: list[tuple[int, int, int]], seed: int = 0) -> bytes:
    return syn.jpeg_bytes(syn.till_frame(faces, seed=seed))


@contextmanager
def _service(model_path: Path, estimates_log: str, **serve: object) -> Iterator[TestClient]:
    till = Till.from_params(AgeModel.load(model_path), PARAMS)
    config = changed(PARAMS.serve, estimates_log=estimates_log, **serve)
    with TestClient(create_app(till, config), raise_server_exceptions=False) as client:
        yield client


def _post(client: TestClient, data: bytes, content_type: str = "image/jpeg", **ids: str) -> httpx.Response:
    return client.post("/predict", content=data, headers={"Content-Type": content_type}, params=ids)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the service ----------------------------------------------------------------------------------


def test_the_service_logs_one_line_per_photo_with_its_ids(dex_model_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "estimates.jsonl"
    frames = [_jpeg(ONE_FACE), _jpeg(SMALL_AND_LARGE, seed=1), _jpeg([], seed=2)]
    with _service(dex_model_path, str(log)) as client:
        answers = [
            _post(client, frame, sale_id=f"S-{i}", till="till-3", cashier="C042").json()
            for i, frame in enumerate(frames)
        ]
        refused = _post(client, b"not a photo at all", sale_id="S-bad", till="till-3")
    assert refused.status_code == 415
    table = read_estimates(log)
    assert list(table["sale_id"]) == ["S-0", "S-1", "S-2", "S-bad"]
    assert list(table["till"]) == ["till-3"] * 4 and list(table["cashier"][:3]) == ["C042"] * 3
    assert table["cashier"].isna()[3] and table["file"].isna().all()
    assert list(table["status"]) == ["ok", "ok", "no_face", "not_an_image"]
    assert list(table["faces"]) == [1, 2, 0, 0]
    for (_, row), answer in zip(list(table.iterrows())[:2], answers, strict=False):
        customer = answer["faces"][answer["customer"]]  # the answer's customer is the log's
        for name in ("age", "age_low", "age_high", "decision", "p_under_legal", "p_under_threshold"):
            assert row[name] == customer[name], name
    assert answers[1]["customer"] == 1 and table["age"].isna()[2]  # no face: no customer's estimate
    lines = _lines(log)
    assert [line["customer"] for line in lines] == [0, 1, None, None]
    assert lines[1]["faces"] == [
        {**face, "age_probs": lines[1]["faces"][i]["age_probs"]} for i, face in enumerate(answers[1]["faces"])
    ]  # each face as answered, plus its softmax
    assert all(line["threshold"] == 25 and line["legal_age"] == 18 for line in lines)


def test_refused_and_cut_off_photos_are_counted(dex_model_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "estimates.jsonl"
    with _service(dex_model_path, str(log)) as client:
        assert _post(client, b"", sale_id="empty").status_code == 400
        assert _post(client, syn.png_bomb(20000, 20000), "image/png", sale_id="bomb").status_code == 413
        assert _post(client, syn.jpeg_bytes(syn.face_like(16, 16)), sale_id="tiny").status_code == 422
        assert _post(client, _jpeg(ONE_FACE), "text/plain", sale_id="text").status_code == 415
        # an id the service refuses: the request is invalid, not a photo judged
        assert _post(client, _jpeg(ONE_FACE), sale_id="x" * 65).status_code == 422
    with _service(dex_model_path, str(log), timeout_s=0.05) as client:
        answer = _post(client, syn.jpeg_bytes(syn.till_frame(ONE_FACE).resize((1920, 1440))), sale_id="slow")
        assert answer.status_code == 503 and answer.json()["error"] == "timeout"
    table = read_estimates(log)
    assert dict(zip(table["sale_id"], table["status"], strict=True)) == {
        "empty": "empty_body",
        "bomb": "too_large",
        "tiny": "too_small",
        "text": "unsupported_media_type",
        "slow": "timeout",
    }
    assert all(line["faces"] == [] and line["customer"] is None for line in _lines(log))


def test_no_log_by_default(dex_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PARAMS.serve.estimates_log == ""
    monkeypatch.chdir(tmp_path)
    with _service(dex_model_path, "") as client:
        assert _post(client, _jpeg(ONE_FACE), sale_id="S-1").status_code == 200
        assert _post(client, b"not a photo", sale_id="S-2").status_code == 415
    assert list(tmp_path.iterdir()) == []


def test_a_log_that_cannot_be_written_is_a_one_line_error(
    dex_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("in the way")
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["serve"]["estimates_log"] = str(tmp_path / "file" / "estimates.jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--model", str(dex_model_path), "--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert (
        exit_info.value.code == 2
        and err.startswith("error: cannot open the estimates log")
        and "\n" not in err
    )


# --- privacy --------------------------------------------------------------------------------------


def test_a_line_holds_the_estimates_and_nothing_of_the_photo(dex_model_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "estimates.jsonl"
    photo = _jpeg(SMALL_AND_LARGE, seed=7)
    files = {"photo": ("alice_smith_2008.jpg", photo, "image/jpeg")}
    with _service(dex_model_path, str(log)) as client:
        assert client.post("/predict", files=files, params={"sale_id": "S-9"}).status_code == 200
        assert _post(client, photo, detect="false").status_code == 200
    raw = log.read_bytes()
    lines = _lines(log)
    assert len(lines) == 2 and raw.count(b"\n") == 2
    for line in lines:
        assert set(line) == LINE_KEYS
        for face in line["faces"]:
            assert set(face) == FACE_KEYS
            assert set(face["box"] or {}) <= {"left", "top", "width", "height", "score"}
            assert len(face["age_probs"]) == 101 and sum(face["age_probs"]) == pytest.approx(1, abs=1e-2)
            assert len(json.dumps(face, separators=(",", ":"))) < MAX_FACE_BYTES
        _only_numbers_and_short_words(line)
    assert lines[1]["faces"][0]["box"] is None  # detect=false: the photo is the face
    text = raw.decode("utf-8")
    assert "alice" not in text  # not the uploaded file's name either
    for start in range(0, len(photo) - 24, len(photo) // 16):
        piece = photo[start : start + 24]
        for form in (piece, piece.hex().encode(), base64.b64encode(piece), base64.b64encode(piece[1:])):
            assert form not in raw


def _only_numbers_and_short_words(value: object) -> None:
    """No blob anywhere: every string in a line is short (an id, a status, a time), no bytes."""
    if isinstance(value, dict):
        for item in value.values():
            _only_numbers_and_short_words(item)
    elif isinstance(value, list):
        for item in value:
            _only_numbers_and_short_words(item)
    else:
        assert value is None or isinstance(value, (int, float, bool)) or len(value) <= 64, value


# --- concurrent writers, torn lines ---------------------------------------------------------------


def _entry(writer: int, number: int) -> dict:
    """A line as large as a real one with six faces (over 4 KB, a pipe's atomic write: a regular file
    opened with O_APPEND takes each write whole, whatever its size)."""
    probs = np.random.default_rng(number).dirichlet(np.ones(101))
    face = {"age": 30.0, "age_probs": [round(float(p), 4) for p in probs]}
    return {"sale_id": f"w{writer}-{number}", "status": "ok", "customer": 0, "faces": [face] * 6}


def _append_lines(path: str, writer: int, count: int) -> None:
    log = EstimatesLog(path)
    for number in range(count):
        log.append(_entry(writer, number))
    log.close()


def test_two_processes_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "estimates.jsonl"
    context = multiprocessing.get_context("spawn")  # no fork of a process that loaded TensorFlow
    writers = [context.Process(target=_append_lines, args=(str(path), w, 500)) for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0
    raw = path.read_text(encoding="utf-8")
    assert raw.endswith("\n") and raw.count("\n") == 1000 and len(raw) > 1000 * 4096
    lines = [json.loads(line) for line in raw.splitlines()]  # every line whole
    for writer in (1, 2):  # each writer's lines all there, in its order
        assert [line["sale_id"] for line in lines if line["sale_id"].startswith(f"w{writer}-")] == [
            f"w{writer}-{n}" for n in range(500)
        ]
    assert len(read_estimates(path)) == 1000


def test_a_torn_last_line_is_skipped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "estimates.jsonl"
    _append_lines(str(path), 1, 3)
    whole = json.dumps(_entry(1, 3))
    with path.open("a", encoding="utf-8") as file:
        file.write(whole[: len(whole) // 2])  # a till killed while writing
    table, probs = read_estimates(path, with_probs=True)
    assert list(table["sale_id"]) == ["w1-0", "w1-1", "w1-2"] and probs.shape == (3, 101)
    assert "skipped its torn last line 4" in capsys.readouterr().err
    with path.open("a", encoding="utf-8") as file:
        file.write("\n" + json.dumps(_entry(2, 0)) + "\n")  # written after it: now a bad line inside
    with pytest.raises(AgecheckError, match="line 4 is not an estimates-log entry"):
        read_estimates(path)


def test_the_line_format(dex_model_path: Path) -> None:
    till = Till.from_params(AgeModel.load(dex_model_path), PARAMS)
    (faces,) = till.run([syn.till_frame(SMALL_AND_LARGE)])
    entry = log_entry(faces, "ok", PARAMS.policy, Sale("S-1", "till-2", None))
    assert list(entry) == [
        *("time", "sale_id", "till", "cashier", "status", "threshold", "legal_age", "customer", "faces")
    ]
    assert entry["time"].endswith("+00:00") and entry["sale_id"] == "S-1" and entry["cashier"] is None
    assert entry["customer"] == 1 and [face["customer"] for face in entry["faces"]] == [False, True]
    assert entry["faces"][1]["age_probs"] == [round(float(p), 4) for p in faces[1].estimate.probs]
    assert "file" in log_entry([], "no_face", PARAMS.policy, file="a.jpg")


def test_a_regression_model_logs_no_softmax(regression_model_path: Path) -> None:
    till = Till.from_params(AgeModel.load(regression_model_path), PARAMS)
    (faces,) = till.run([syn.till_frame(ONE_FACE)])
    (face,) = log_entry(faces, "ok", PARAMS.policy)["faces"]
    assert set(face) == FACE_KEYS - {"age_probs"} and face["p_under_legal"] is None


# --- agecheck predict --log -----------------------------------------------------------------------


def test_predict_appends_a_line_per_photo(dex_model_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a_two.jpg").write_bytes(_jpeg(SMALL_AND_LARGE))
    (folder / "b_nobody.jpg").write_bytes(_jpeg([]))
    (folder / "c_broken.jpg").write_bytes(b"not a photo")
    log = tmp_path / "estimates.jsonl"
    argv = ["predict", str(folder), "--model", str(dex_model_path), "--log", str(log)]
    assert cli.main([*argv, "--output", str(tmp_path / "faces.json")]) == 0
    rows = json.loads((tmp_path / "faces.json").read_text())
    lines = _lines(log)
    assert [Path(line["file"]).name for line in lines] == ["a_two.jpg", "b_nobody.jpg", "c_broken.jpg"]
    assert [line["status"] for line in lines] == ["ok", "no_face", "not_an_image"]
    assert all(set(line) == LINE_KEYS | {"file"} and line["sale_id"] is None for line in lines)
    assert lines[0]["customer"] == 1 and rows[1]["customer"] is True
    assert [face["age"] for face in lines[0]["faces"]] == [row["age"] for row in rows[:2]]
    assert cli.main([*argv, "--no-detect"]) == 0  # appended: one line per photo again
    assert len(_lines(log)) == 6 and _lines(log)[3]["faces"][0]["box"] is None


# --- a real server with two workers ---------------------------------------------------------------


async def _post_all(url: str, frames: list[bytes], count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def post(i: int) -> int:
            params = {"sale_id": f"S-{i}", "till": f"till-{i % 3}", "cashier": "C042"}
            data = frames[i % len(frames)] if i % 10 else b"not a photo"
            answer = await http.post(
                "/predict", content=data, headers={"Content-Type": "image/jpeg"}, params=params
            )
            return answer.status_code

        return list(await asyncio.gather(*(post(i) for i in range(count))))


@pytest.mark.e2e  # a real uvicorn server with two worker processes
def test_two_workers_write_whole_lines(dex_model_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "estimates.jsonl"
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["serve"].update(estimates_log=str(log), max_in_flight=64, timeout_s=120, token_env="")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    frames = [_jpeg(ONE_FACE, seed=i) for i in range(3)] + [_jpeg(SMALL_AND_LARGE)]
    count = 60
    with local_server(dex_model_path, tmp_path / "params.yaml", workers=2) as server:
        statuses = asyncio.run(_post_all(server.url, frames, count))
    assert statuses.count(200) == count - count // 10 and statuses.count(415) == count // 10
    raw = log.read_text(encoding="utf-8")
    assert raw.endswith("\n") and raw.count("\n") == count
    lines = [json.loads(line) for line in raw.splitlines()]  # each request one whole line
    assert sorted(line["sale_id"] for line in lines) == sorted(f"S-{i}" for i in range(count))
    by_id = {line["sale_id"]: line for line in lines}
    assert all(by_id[f"S-{i}"]["status"] == "not_an_image" for i in range(0, count, 10))
    assert all(by_id[f"S-{i}"]["customer"] == (1 if i % 4 == 3 else 0) for i in range(count) if i % 10)
    # and the chain audits what the till logged: a sales log of those sale ids, joined on sale_id
    sales = tmp_path / "sales.csv"
    rows = [
        f"S-{i},2026-11-0{1 + i % 9}T10:00,store1,till{i % 2},cashier{i % 3},1,{i % 2}" for i in range(count)
    ]
    sales.write_text("sale_id,time,store,till,cashier,alcohol,id_checked\n" + "\n".join(rows) + "\n")
    out = tmp_path / "audit"
    code = cli.main(
        ["audit", str(sales), "--estimates", str(log), "--output", str(out), "--model", str(dex_model_path)]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alcohol_sales"] == count
    assert summary["alcohol_sales_by_reason"]["ok"] == count - count // 10  # the refused uploads: no face
    assert sum(summary["alcohol_sales_by_reason"].values()) == count
