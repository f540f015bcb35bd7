"""Every validation rule, on generated photos."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agecheck.config import PhotoLimits
from agecheck.data.images import PhotoRejected, normalize_photo
from agecheck.data.ingest import pack_source
from agecheck.data.shards import iter_shard
from agecheck.data.validation import validate_sources
from agecheck.errors import AgecheckError
from tests.support import synthetic as syn
from tests.support.params import PARAMS, changed

CONFIG = changed(PARAMS.validate_, min_side=32, max_side=0, workers=1, shard_size=4)
LIMITS = PhotoLimits(min_side=32, max_pixels=40_000_000, max_bytes=30_000_000, max_aspect=3.0)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("messy")
    photos, rows = syn.messy_photos()
    source = syn.write_source(root / "src", photos, rows)
    before = {p.name: p.read_bytes() for p in (source / "final_files").iterdir()}
    pack_source(source, root / "raw" / "messy.tar")
    res = validate_sources({"messy": root / "raw" / "messy.tar"}, CONFIG, root / "out")
    after = {p.name: p.read_bytes() for p in (source / "final_files").iterdir()}
    assert before == after, "validation must never touch the source folder"
    return res, root / "out"


def test_usable_photos_are_exactly_the_good_ones(result) -> None:
    res, _ = result
    assert set(res.usable["file_name"]) == syn.EXPECTED_USABLE


def test_each_rejected_photo_has_its_reason(result) -> None:
    res, _ = result
    photos = res.rejected[res.rejected["kind"] == "photo"].set_index("file_name")["reason"].to_dict()
    assert photos == syn.EXPECTED_PHOTO_REASONS


def test_each_rejected_row_has_its_reason(result) -> None:
    res, _ = result
    rows = res.rejected[res.rejected["kind"] == "label_row"]
    found = rows.groupby("file_name")["reason"].agg(set).to_dict()
    assert found == syn.EXPECTED_ROW_REASONS


def test_counts_add_up(result) -> None:
    res, _ = result
    for kind, total in (("photos", 21), ("label_rows", 29)):
        counts = res.metrics["per_source"]["messy"][kind]
        assert counts["total"] == total
        assert counts["usable"] + counts["rejected"] == total
        assert sum(counts["rejected_by_reason"].values()) == counts["rejected"]
    assert res.metrics["per_source"]["messy"]["photos"]["usable"] == len(res.usable) == 10


def test_grayscale_and_colour_modes(result) -> None:
    res, _ = result
    gray = set(res.usable.loc[res.usable["grayscale"], "file_name"])
    assert gray == {"gray_l.jpg", "gray_rgb.jpg"}
    modes = dict(zip(res.usable["file_name"], res.usable["original_mode"], strict=True))
    assert modes["cmyk.jpg"] == "CMYK" and modes["rgba.png"] == "RGBA" and modes["palette.png"] == "P"


def test_shards_hold_upright_rgb_jpegs(result) -> None:
    res, out = result
    shards = sorted(out.glob("photos-*.tar"))
    assert len(shards) >= 3  # shard_size=4
    images = {m: Image.open(io.BytesIO(b)) for s in shards for m, b in iter_shard(s)}
    usable_members = set(res.usable["member"])
    assert usable_members <= set(images)
    for member in usable_members:
        assert images[member].format == "JPEG" and images[member].mode == "RGB"
    assert images["messy/rotated.jpg"].size == (40, 80)  # orientation 6 applied
    rgba = np.asarray(images["messy/rgba.png"])
    assert rgba.shape == (64, 64, 3)


def test_exif_rotation_moves_the_pixels() -> None:
    data = syn.exif_rotated_jpeg(seed=1)
    photo = normalize_photo(data, changed(LIMITS, min_side=8))
    assert photo.exif_orientation == 6
    # orientation 6 means "rotate 90 degrees clockwise to display"
    stored = Image.open(io.BytesIO(data)).convert("RGB")
    assert stored.size == (80, 40)
    expected = stored.transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(photo.image), np.asarray(expected))


@pytest.mark.parametrize(
    ("data", "limits", "reason"),
    [
        (b"", LIMITS, "empty_file"),
        (syn.png_bytes(syn.face_like(100, 100)), changed(LIMITS, max_pixels=5000), "too_large"),
        (syn.png_bytes(syn.face_like(100, 100)), changed(LIMITS, max_bytes=100), "too_large"),
        (syn.jpeg_bytes(syn.face_like(20, 100)), LIMITS, "too_small"),
        (syn.jpeg_bytes(syn.face_like(2000, 60)), LIMITS, "bad_aspect"),
        (syn.jpeg_bytes(syn.face_like(60, 200)), LIMITS, "bad_aspect"),  # 3.3:1 standing up
        (syn.png_bomb(30000, 30000), LIMITS, "too_large"),
        (syn.png_bomb(50000, 50000), LIMITS, "too_large"),  # past Pillow's own guard
    ],
)
def test_photo_limits(data: bytes, limits: PhotoLimits, reason: str) -> None:
    with pytest.raises(PhotoRejected) as err:
        normalize_photo(data, limits)
    assert err.value.reason == reason


def test_a_bomb_is_reported_with_its_pixel_count() -> None:
    with pytest.raises(PhotoRejected) as err:
        normalize_photo(syn.png_bomb(30000, 30000), LIMITS)
    assert err.value.reason == "too_large"
    assert err.value.detail == "30000x30000 = 900,000,000 pixels > 40,000,000"


def test_formats_that_decode_on_open_are_refused() -> None:
    """ICO decodes its embedded images while being opened, before any size check could run."""
    buffer = io.BytesIO()
    syn.face_like(64, 64).save(buffer, format="ICO")
    with pytest.raises(PhotoRejected) as err:
        normalize_photo(buffer.getvalue(), LIMITS)
    assert err.value.reason == "not_an_image" and "JPEG" in err.value.detail


def test_the_aspect_limit_is_a_param() -> None:
    strip = syn.jpeg_bytes(syn.face_like(2000, 60))
    assert normalize_photo(strip, changed(LIMITS, max_aspect=40.0)).image.size == (2000, 60)
    square_enough = syn.jpeg_bytes(syn.face_like(120, 40))  # exactly 3:1 passes
    assert normalize_photo(square_enough, LIMITS).image.size == (120, 40)


def test_large_photos_are_shrunk() -> None:
    photo = normalize_photo(syn.jpeg_bytes(syn.face_like(300, 150)), LIMITS, max_side=100)
    assert photo.image.size == (100, 50)


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(syn.jpeg_bytes(syn.face_like(seed=3)))
    source = syn.write_source(
        tmp_path / "src", {"ok.jpg": syn.jpeg_bytes(syn.face_like())}, ["ok.jpg,30,male", "link.jpg,30,male"]
    )
    (source / "final_files" / "link.jpg").symlink_to(secret)
    pack_source(source, tmp_path / "raw.tar")
    with tarfile.open(tmp_path / "raw.tar") as tar:
        assert tar.getmember("final_files/link.jpg").issym()
    res = validate_sources({"s": tmp_path / "raw.tar"}, CONFIG, tmp_path / "out")
    assert set(res.usable["file_name"]) == {"ok.jpg"}
    assert "not_a_regular_file" in set(res.rejected["reason"])


def test_duplicates_across_sources(tmp_path: Path) -> None:
    same = syn.jpeg_bytes(syn.face_like(seed=5))
    tars = {}
    for name in ("a", "b"):
        src = syn.write_source(tmp_path / name, {"x.jpg": same}, ["x.jpg,40,male"])
        tars[name] = tmp_path / f"{name}.tar"
        pack_source(src, tars[name])
    res = validate_sources(tars, CONFIG, tmp_path / "out")
    assert list(res.usable["id"]) == ["a/x.jpg"]
    keep = validate_sources(
        tars, changed(CONFIG, shard_size=5000, drop_duplicate_photos=False), tmp_path / "o2"
    )
    assert len(keep.usable) == 2 and keep.usable["group"].nunique() == 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [("name,age\nx.jpg,3\n", "lacks column"), ("", "not a readable CSV"), (None, "has no labels.csv")],
)
def test_wrong_layout_is_a_clear_error(tmp_path: Path, labels: str | None, message: str) -> None:
    (tmp_path / "src" / "final_files").mkdir(parents=True)
    if labels is not None:
        (tmp_path / "src" / "labels.csv").write_text(labels)
    with pytest.raises(AgecheckError, match=message):
        pack_source(tmp_path / "src", tmp_path / "raw.tar")
        validate_sources({"s": tmp_path / "raw.tar"}, CONFIG, tmp_path / "out")


def test_pool_and_serial_agree(tmp_path: Path) -> None:
    photos, rows = syn.messy_photos()
    pack_source(syn.write_source(tmp_path / "src", photos, rows), tmp_path / "raw.tar")
    serial = validate_sources({"m": tmp_path / "raw.tar"}, CONFIG, tmp_path / "o1")
    pooled = validate_sources({"m": tmp_path / "raw.tar"}, changed(CONFIG, workers=2), tmp_path / "o2")
    pd.testing.assert_frame_equal(serial.usable, pooled.usable)
    assert serial.metrics == pooled.metrics
