"""Face detection and cropping, age estimates with intervals, the customer's face, the alcohol rule's
probabilities, and ``agecheck predict`` with faces."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agecheck import cli, cli_io
from agecheck.data.images import square_resize
from agecheck.evaluation.till_check import FACE_SIDE, till_ages, till_frame, till_summary
from agecheck.faces.box import Box
from agecheck.faces.detection import MODELS, FaceDetector, _anchors
from agecheck.model.age_model import AgeModel, quantiles
from agecheck.till.customer import customer_face
from agecheck.till.pipeline import Till, customer_index
from agecheck.till.policy import (
    ASK_FOR_ID,
    NO_ID_NEEDED,
    decision,
    probability_under,
    under_age_probabilities,
)
from tests.support import synthetic as syn
from tests.support.params import PARAMS, changed

THREE_FACES = [(40, 100, 150), (250, 150, 130), (450, 90, 160)]
#: A small face the detector scores above a large one: the customer is face 1, not face 0.
SMALL_AND_LARGE = [(60, 80, 80), (300, 100, 260)]
RECORD_KEYS = {
    *("box", "age", "age_low", "age_high", "age_sd", "interval", "decision"),
    *("customer", "p_under_legal", "p_under_threshold"),
}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(PARAMS.detect)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_anchor_count_matches_model(name: str) -> None:
    size, strides, per_cell, _ = MODELS[name]
    detector = FaceDetector(changed(PARAMS.detect, model=name))
    outputs = [d["shape"][1] for d in detector.interpreter.get_output_details()]
    assert len(_anchors(size, strides, per_cell)) == outputs[0] == outputs[1]


@pytest.mark.parametrize("faces", [[], [(250, 120, 180)], THREE_FACES, [(300, 200, 110)]])
def test_detects_the_drawn_faces(detector: FaceDetector, faces: list[tuple[int, int, int]]) -> None:
    boxes = detector.detect(syn.till_frame(faces))
    assert len(boxes) == len(faces)
    for left, top, size in faces:  # each drawn face has one box centred on its face oval
        centres = [b.centre for b in boxes]
        assert any(
            abs(x - (left + size / 2)) < size / 5 and abs(y - (top + size / 2)) < size / 4 for x, y in centres
        )
    assert all(0.5 <= b.score <= 1 and b.width > 0 for b in boxes)
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)


def test_detector_settings(detector: FaceDetector) -> None:
    frame = syn.till_frame(THREE_FACES)
    assert len(FaceDetector(changed(PARAMS.detect, max_faces=2)).detect(frame)) == 2
    assert FaceDetector(changed(PARAMS.detect, min_face=500)).detect(frame) == []
    assert detector.detect(Image.new("RGB", (5, 900), (0, 0, 0))) == []  # odd shapes are fine


@pytest.fixture(scope="module")
def till(dex_model_path: Path) -> Till:
    return Till(AgeModel.load(dex_model_path), PARAMS.detect, PARAMS.align, PARAMS.policy, 0.8)


def test_till_crops(till: Till) -> None:
    frame = syn.till_frame(THREE_FACES)
    crops = till.crops(frame)
    assert len(crops.boxes) == 3 and crops.arrays.shape == (3, 32, 32, 3) and crops.arrays.dtype == np.uint8
    whole = till.crops(frame, detect=False)
    assert whole.boxes == [None] and whole.arrays.shape == (1, 32, 32, 3)
    assert till.crops(syn.till_frame([])).arrays.shape == (0, 32, 32, 3)


def test_till_run_is_crops_then_judge(till: Till) -> None:
    frames = [syn.till_frame(THREE_FACES), syn.till_frame([]), syn.till_frame([(250, 120, 180)])]
    results = till.run(frames, batch_size=2)
    assert [len(faces) for faces in results] == [3, 0, 1]
    crops = till.crops(frames[0])
    alone = till.judge(crops.boxes, till.estimate(crops.arrays))
    assert [f.estimate.age for f in results[0]] == pytest.approx([f.estimate.age for f in alone], abs=1e-4)
    record = results[2][0].record()
    assert set(record) == RECORD_KEYS and record["customer"] is True
    assert record["decision"] == decision(results[2][0].estimate.age, PARAMS.policy)
    under = under_age_probabilities(results[2][0].estimate.probs, PARAMS.policy)[0]
    assert record["p_under_legal"] == round(under.legal, 4) and 0 <= under.legal <= under.threshold <= 1
    assert record["p_under_threshold"] == round(under.threshold, 4)
    customers = [customer_face(till.crops(frame).boxes) for frame in frames]
    assert [customer_index(faces) for faces in results] == customers and customers[1:] == [None, 0]


def test_decision() -> None:
    policy = changed(PARAMS.policy, threshold=25, legal_age=18)
    assert decision(24.9, policy) == ASK_FOR_ID and decision(25.0, policy) == NO_ID_NEEDED


def _box(side: float, left: float = 0.0) -> Box:
    return Box(left, 0.0, side, side, 0.9)


def test_the_customer_is_the_largest_face() -> None:
    assert customer_face([_box(60), _box(200), _box(120)]) == 1
    assert customer_face([_box(150, left=10), _box(150, left=300)]) == 0  # equals: the first
    assert customer_face([]) is None
    assert customer_face([None]) == 0  # detect=false: the photo is the face


def test_the_customer_in_a_frame_is_the_large_face_not_the_first(till: Till) -> None:
    (faces,) = till.run([syn.till_frame(SMALL_AND_LARGE)])
    assert len(faces) == 2 and faces[0].box.width < faces[1].box.width  # the detector put the small first
    assert [face.customer for face in faces] == [False, True] and customer_index(faces) == 1
    assert [face.record()["customer"] for face in faces] == [False, True]


def _one_hot(age: int) -> np.ndarray:
    probs = np.zeros(101)
    probs[age] = 1.0
    return probs


def test_the_probabilities_of_a_minor_and_of_under_the_threshold() -> None:
    policy = changed(PARAMS.policy, threshold=25, legal_age=18)
    (at_17,) = under_age_probabilities(_one_hot(17), policy)
    (at_18,) = under_age_probabilities(_one_hot(18), policy)
    (at_25,) = under_age_probabilities(_one_hot(25), policy)
    assert (at_17.legal, at_17.threshold) == (1.0, 1.0)
    assert (at_18.legal, at_18.threshold) == (0.0, 1.0)
    assert (at_25.legal, at_25.threshold) == (0.0, 0.0)
    uniform = under_age_probabilities(np.full((2, 101), 1 / 101), policy)
    assert [(u.legal, u.threshold) for u in uniform] == [pytest.approx((18 / 101, 25 / 101))] * 2
    assert probability_under(np.full(101, 1 / 101), 0.5) == pytest.approx([1 / 101])  # bin 0 is age 0


def test_a_regression_model_has_no_probabilities(regression_model_path: Path) -> None:
    till = Till(AgeModel.load(regression_model_path), PARAMS.detect, PARAMS.align, PARAMS.policy, 0.8)
    (faces,) = till.run([syn.till_frame([(250, 120, 180)])])
    record = faces[0].record()
    assert faces[0].estimate.probs is None and faces[0].under is None
    assert record["p_under_legal"] is None and record["p_under_threshold"] is None and record["customer"]


def test_softmax_estimates_match_the_model(dex_model_path: Path) -> None:
    model = AgeModel.load(dex_model_path)
    assert model.has_distribution and model.outputs[:2] == ("age", "age_probs")
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    estimates = model.estimate(images, coverage=0.8, batch_size=2)
    expected = model.model.predict(images.astype(np.float32), verbose=0)
    assert [e.age for e in estimates] == pytest.approx(expected["age"].tolist(), abs=1e-3)
    assert all(e.interval == "softmax" and e.low < e.age < e.high and e.sd > 0 for e in estimates)
    probs = expected["age_probs"]
    assert probs.shape == (5, 101) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(np.stack([e.probs for e in estimates]), probs, atol=1e-5)  # the softmax, kept
    assert np.allclose(expected["age"], probs @ np.arange(101), atol=1e-3)  # DEX: the expected age


def test_mirror_averaged_model_is_symmetric(dex_model_path: Path) -> None:
    model = AgeModel.load(dex_model_path)
    images = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert model.predict(images) == pytest.approx(model.predict(images[:, :, ::-1]), abs=1e-4)


def test_quantiles() -> None:
    probs = np.zeros((2, 101))
    probs[0, 30] = 1.0
    probs[1, 20:40] = 0.05
    low, high = quantiles(probs, (0.1, 0.9)).T
    assert low[0] == pytest.approx(29.0, abs=1.0) and high[0] == pytest.approx(30.0, abs=1.0)
    assert low[1] == pytest.approx(21.0, abs=1.0) and high[1] == pytest.approx(37.0, abs=1.0)


def test_regression_model_gets_the_validation_mae(regression_model_path: Path) -> None:
    model = AgeModel.load(regression_model_path)  # saved with val_mae=4.5
    assert not model.has_distribution
    estimate = model.estimate(np.zeros((1, 32, 32, 3), dtype=np.uint8), coverage=0.8)[0]
    assert estimate.interval == "val_mae" and estimate.sd is None and estimate.probs is None
    assert (estimate.low, estimate.high) == pytest.approx((estimate.age - 4.5, estimate.age + 4.5))
    with pytest.raises(ValueError, match="coverage"):
        model.estimate(np.zeros((1, 32, 32, 3), dtype=np.uint8), coverage=1.5)


# --- agecheck predict with face detection ---------------------------------------------------------


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "one.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    (folder / "three.png").write_bytes(syn.png_bytes(syn.till_frame(THREE_FACES)))
    (folder / "two.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame(SMALL_AND_LARGE)))
    (folder / "nobody.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([])))
    (folder / "broken.jpg").write_bytes(b"not a photo")
    return folder


def test_predict_one_row_per_face(
    dex_model_path: Path, frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["predict", str(frames), "--model", str(dex_model_path)]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(Path(r["file"]).name, r["face"], r["status"]) for r in rows] == [
        ("broken.jpg", "", "not_an_image"),
        ("nobody.jpg", "", "no_face"),
        ("one.jpg", "0", "ok"),
        ("three.png", "0", "ok"),
        ("three.png", "1", "ok"),
        ("three.png", "2", "ok"),
        ("two.jpg", "0", "ok"),
        ("two.jpg", "1", "ok"),
    ]
    assert list(rows[0]) == list(cli_io.FACE_COLUMNS)
    for r in rows[2:]:
        assert float(r["age_low"]) <= float(r["age"]) <= float(r["age_high"]) and float(r["width"]) > 30
        assert r["decision"] in (ASK_FOR_ID, NO_ID_NEEDED)
        assert 0 <= float(r["p_under_legal"]) <= float(r["p_under_threshold"]) <= 1
    assert [r["customer"] for r in rows] == ["", "", "true", *_customer_flags(rows[3:6]), "false", "true"]
    assert float(rows[6]["width"]) < float(rows[7]["width"])  # two.jpg: the small face first
    assert "cannot read" in err and "broken.jpg" in err and "6 faces in 4 of 5 photos" in err


def _customer_flags(rows: list[dict[str, str]]) -> list[str]:
    """``true`` for the widest face of a photo's rows, ``false`` for the others."""
    widest = max(range(len(rows)), key=lambda i: float(rows[i]["width"]))
    return ["true" if i == widest else "false" for i in range(len(rows))]


def test_predict_faces_json(dex_model_path: Path, frames: Path, tmp_path: Path) -> None:
    output = tmp_path / "faces.json"
    argv = ["predict", str(frames / "one.jpg"), str(frames / "nobody.jpg"), "--model", str(dex_model_path)]
    assert cli.main([*argv, "--output", str(output)]) == 0
    rows = json.loads(output.read_text())
    assert [r["status"] for r in rows] == ["ok", "no_face"]
    assert (
        rows[0]["face"] == 0 and rows[0]["left"] > 200 and rows[1]["age"] is None and rows[1]["left"] is None
    )
    assert rows[0]["customer"] is True and rows[1]["customer"] is None
    assert 0 <= rows[0]["p_under_legal"] <= 1 and rows[1]["p_under_legal"] is None


def test_predict_nothing_readable(dex_model_path: Path, frames: Path) -> None:
    assert cli.main(["predict", str(frames / "broken.jpg"), "--model", str(dex_model_path)]) == 1
    assert cli.main(["predict", str(frames / "nobody.jpg"), "--model", str(dex_model_path)]) == 0


def test_predict_bad_params(
    dex_model_path: Path, frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            ["predict", str(frames), "--model", str(dex_model_path), "--params", str(tmp_path / "none.yaml")]
        )
    assert exit_info.value.code == 2 and "parameter file not found" in capsys.readouterr().err


def test_serve_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--model", str(tmp_path / "nope.keras")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: no trained model at")


def test_synthetic_till_frames_put_the_face_at_till_size(detector: FaceDetector) -> None:
    photo = syn.till_frame([(200, 100, 240)]).crop((150, 60, 490, 400))
    (face,) = detector.detect(photo)
    rng = np.random.default_rng(0)
    for _ in range(3):
        frame, where = till_frame(photo, face, syn.till_frame([], seed=1), rng)
        assert frame.size == (640, 480)
        (box,) = detector.detect(frame)
        assert FACE_SIDE[0] * 0.8 <= box.side <= FACE_SIDE[1] * 1.2
        assert FACE_SIDE[0] <= where.side <= FACE_SIDE[1] and box.iou(where) > 0.7


def test_till_ages_count_every_photo_and_judge_the_face_where_it_is(till: Till) -> None:
    photos = [syn.till_frame([(250, 120, 180)]), syn.till_frame([])]
    found, ages = till_ages(till, [(p, None) for p in photos], batch_size=4)
    assert list(found) == [True, False] and ages.shape == (2,)
    fallback = till.model.predict(till.crops(photos[1], detect=False).arrays)
    assert ages[1] == pytest.approx(float(fallback[0]), abs=1e-4)  # no face: the centre square
    # several faces (a customer in front of others): the one at the given place is judged
    frame = syn.till_frame(THREE_FACES)
    crops = till.crops(frame)
    drawn = [Box(x + size / 5, y + size / 5, size * 0.6, size * 0.6, 1.0) for x, y, size in THREE_FACES]
    # nothing at (5, 440); inside the first face but a tenth of its size: not a box around that face
    inside = Box(*drawn[0].centre, drawn[0].width / 10, drawn[0].height / 10, 1.0)
    elsewhere = [Box(5.0, 440.0, 30.0, 30.0, 1.0), inside]
    found, ages = till_ages(till, [(frame, b) for b in drawn + elsewhere], batch_size=4)
    assert list(found) == [True, True, True, False, False]
    centre = till.model.predict(square_resize(frame, till.model.input_size)[np.newaxis])
    assert ages[3] == pytest.approx(float(centre[0]), abs=1e-4)  # nothing there: the centre square
    centres = [b.centre for b in drawn]
    for (x, y), age in zip(centres, ages, strict=False):
        index = min(
            range(3), key=lambda i: np.hypot(crops.boxes[i].centre[0] - x, crops.boxes[i].centre[1] - y)
        )
        assert age == pytest.approx(float(till.model.predict(crops.arrays[index : index + 1])[0]), abs=1e-4)
    table = pd.DataFrame({"source": ["a", "b"], "age": [20, 40]})
    summary = till_summary(table, np.array([True, False]), np.array([22.0, 30.0]), np.array([21.0, 41.0]))
    assert summary["faces_found"] == 0.5 and summary["mae"] == 6.0 and summary["mae_crops"] == 1.0
    assert summary["by_source"]["b"] == {"photos": 1, "faces_found": 0.0, "mae": 10.0, "mae_crops": 1.0}
