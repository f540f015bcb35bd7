"""Keypoints, the retry for faces that fill the photo, the one alignment, and the faces table."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from agecheck.config import DEFAULT_PARAMS, AlignConfig, parse_params
from agecheck.data.images import square_resize
from agecheck.data.shards import ShardWriter
from agecheck.errors import AgecheckError
from agecheck.faces.alignment import PAD_COLOUR, align_face, face_input, face_square
from agecheck.faces.box import KEYPOINTS, Box
from agecheck.faces.detection import FaceDetector
from agecheck.faces.find import find_faces
from agecheck.faces.table import box_from_row, face_row, model_inputs, read_faces
from tests.support import synthetic as syn
from tests.support.params import PARAMS, changed

ALIGN = AlignConfig(face_scale=0.6, centre_shift=0.1)
#: Where draw_cartoon_face puts the right eye, left eye, nose and mouth on its 200 x 200 grid.
DRAWN = ((78, 85), (122, 85), (100, 110), (100, 141))


def _drawn(left: int, top: int, size: int) -> np.ndarray:
    return np.array([(left + x * size / 200, top + y * size / 200) for x, y in DRAWN])


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(PARAMS.detect)


def test_keypoints_land_on_the_drawn_eyes_nose_and_mouth(detector: FaceDetector) -> None:
    (box,) = detector.detect(syn.till_frame([(250, 120, 180)]))
    assert len(box.keypoints) == len(KEYPOINTS)
    assert np.abs(np.array(box.keypoints[:4]) - _drawn(250, 120, 180)).max() < 180 / 20


def test_a_face_that_fills_the_photo_is_found_with_a_border(detector: FaceDetector) -> None:
    tight = syn.till_frame([(200, 100, 240)]).crop((240, 140, 400, 300))  # the face fills the photo
    assert FaceDetector(changed(PARAMS.detect, retry_padding=0.0)).detect(tight) == []
    (box,) = detector.detect(tight)
    # coordinates are in the photo's pixels, not the bordered canvas's
    assert np.abs(np.array(box.keypoints[:4]) - (_drawn(200, 100, 240) - (240, 140))).max() < 240 / 20


def test_a_small_face_beside_a_large_one_is_found_in_tiles(detector: FaceDetector) -> None:
    frame = syn.till_frame([(20, 40, 380), (470, 330, 64)])  # a customer, and someone small behind
    whole_only = FaceDetector(changed(PARAMS.detect, tiles=1)).detect(frame)
    assert len(whole_only) == 1 and whole_only[0].side > 200  # the 192 px pass sees only the large face
    boxes = detector.detect(frame)
    assert len(boxes) == 2
    small = min(boxes, key=lambda b: b.side)
    assert np.hypot(small.centre[0] - (470 + 32), small.centre[1] - (330 + 32)) < 20
    assert np.abs(np.array(small.keypoints[:4]) - _drawn(470, 330, 64)).max() < 64 / 8
    # one box per face: the large one, seen whole in the frame and cut by every tile, is not repeated
    large = max(boxes, key=lambda b: b.side)
    assert large.centre == pytest.approx(whole_only[0].centre, abs=large.side / 10)


def test_tiles_leave_photos_under_twice_the_detector_input_alone(detector: FaceDetector) -> None:
    photo = syn.till_frame([(60, 40, 200)], width=380, height=300)  # long side < 2 x 192
    assert detector.detect(photo) == FaceDetector(changed(PARAMS.detect, tiles=1)).detect(photo)


def _rotate(points: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """Points as they move when PIL rotates the image by ``degrees`` (counter-clockwise) about ``centre``."""
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    return (points - centre) @ rotation.T + centre


def test_the_square_is_level_with_the_eyes_and_sized_by_the_face() -> None:
    points = _drawn(100, 100, 200)
    corners = face_square(tuple(map(tuple, points)), ALIGN)
    assert corners[0][1] == pytest.approx(corners[1][1])  # top edge level
    # the face size is 1.8 x eye-to-mouth here (56 px): FFHQ's square is twice that, scaled by face_scale
    assert np.hypot(*(corners[1] - corners[0])) == pytest.approx(2 * 1.8 * 56 * ALIGN.face_scale)
    tilted = face_square(tuple(map(tuple, _rotate(points, 25, (200, 200)))), ALIGN)
    top = tilted[1] - tilted[0]
    assert np.degrees(np.arctan2(-top[1], top[0])) == pytest.approx(25, abs=1e-6)  # follows the head


def test_a_tilted_face_comes_out_like_the_upright_one() -> None:
    frame = syn.till_frame([(220, 120, 200)])
    points = _drawn(220, 120, 200)
    upright = align_face(frame, tuple(map(tuple, points)), ALIGN, 64).astype(float)
    tilted_frame = frame.rotate(30, resample=Image.Resampling.BICUBIC, center=(320, 220))
    tilted = align_face(tilted_frame, tuple(map(tuple, _rotate(points, 30, (320, 220)))), ALIGN, 64)
    assert np.abs(upright - tilted).mean() < 6  # levels of 255: resampling noise only
    shifted = align_face(frame, tuple(map(tuple, points + (15, 0))), ALIGN, 64).astype(float)
    assert np.abs(upright - shifted).mean() > 15  # while a wrong position shows


def test_outside_the_photo_is_one_grey_and_no_face_is_the_centre_square() -> None:
    photo = Image.new("RGB", (100, 100), (255, 255, 255))
    corner = align_face(photo, ((5.0, 5.0), (25.0, 5.0), (15.0, 15.0), (15.0, 25.0)), ALIGN, 32)
    assert tuple(corner[0, 0]) == PAD_COLOUR and tuple(corner[-1, -1]) == (255, 255, 255)
    frame = syn.till_frame([(250, 120, 180)])
    np.testing.assert_array_equal(face_input(frame, None, ALIGN, 48), square_resize(frame, 48))
    no_keypoints = Box(250, 120, 180, 180, 0.9)
    np.testing.assert_array_equal(face_input(frame, no_keypoints, ALIGN, 48), square_resize(frame, 48))


def test_faces_table_rows_round_trip() -> None:
    box = Box(1.234, 2.0, 30.0, 31.0, 0.87654, tuple((float(i), float(i + 1)) for i in range(6)))
    row = face_row("a/1.jpg", "a", box)
    assert box_from_row(row) == Box(1.23, 2.0, 30.0, 31.0, 0.8765, box.keypoints)
    assert box_from_row(face_row("a/2.jpg", "a", None)) is None


def test_find_faces_and_model_inputs(tmp_path: Path) -> None:
    photos = {
        "s/face.jpg": syn.till_frame([(250, 120, 180)]),
        "s/empty.jpg": syn.till_frame([]),
        "t/tight.jpg": syn.till_frame([(200, 100, 240)]).crop((240, 140, 400, 300)),
    }
    encoded = {member: syn.jpeg_bytes(image) for member, image in photos.items()}
    rows = []
    with ShardWriter(tmp_path, shard_size=2) as writer:
        for member, data in encoded.items():
            rows.append({"member": member, "source": member[0], "shard": writer.write(member, data)})
    table = pd.DataFrame(rows)
    faces = find_faces(table, tmp_path, PARAMS.detect, workers=2)
    assert list(faces["member"]) == list(photos) and list(faces["found"]) == [True, False, True]
    boxes = {r["member"]: box_from_row(r) for r in faces.to_dict("records")}
    inputs = model_inputs(table, tmp_path, boxes, ALIGN, 40)
    assert inputs.shape == (3, 40, 40, 3) and inputs.dtype == np.uint8
    decoded = Image.open(io.BytesIO(encoded["s/empty.jpg"]))
    np.testing.assert_array_equal(inputs[1], square_resize(decoded, 40))  # no face: the centre square
    with pytest.raises(AgecheckError, match="not in the faces table"):
        model_inputs(table, tmp_path, {}, ALIGN, 40)


def test_a_missing_faces_table_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgecheckError, match=r"faces\.csv is missing: run the faces stage"):
        read_faces(tmp_path / "faces.csv")


def test_bad_alignment_params_are_one_line_errors() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["align"]["face_scale"] = "wide"
    with pytest.raises(AgecheckError, match=r"align\.face_scale: Input should be a valid number"):
        parse_params(raw)
    raw["align"] = {"face_scale": 0.8}
    with pytest.raises(AgecheckError, match=r"align\.centre_shift: missing"):
        parse_params(raw)
