"""The released model as an ensemble: each member's crop cut from the till's crop inside the graph, the
members' distributions averaged with weights chosen on val, one file with the usual outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from agecheck.config import DEFAULT_PARAMS, AlignConfig, parse_params
from agecheck.errors import AgecheckError
from agecheck.faces.alignment import align_face
from agecheck.training.ensemble_weights import choose_weights, simplex_grid
from tests.support.tiny_models import save_dex_model

#: A face of eyes 60 px apart in a 400 x 400 photo (right eye, left eye, nose, mouth).
KEYPOINTS = ((170.0, 180.0), (230.0, 182.0), (200.0, 215.0), (199.0, 250.0))


def _photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((400, 400), Image.Resampling.BILINEAR)


def test_a_member_crop_cut_from_the_till_crop_is_the_crop_the_member_trained_on() -> None:
    """The till's crop at 224 px and scale 0.8 x 224/150 holds dlib's 150 px crop at 0.8 pixel for
    pixel: the in-graph cut gives what the alignment gives."""
    from agecheck.model.ensemble import CentreCrop

    photo, member = _photo(), AlignConfig(face_scale=0.8, centre_shift=0.1)
    till = AlignConfig(face_scale=0.8 * 224 / 150, centre_shift=0.1)
    wide = align_face(photo, KEYPOINTS, till, 224)
    cut = np.asarray(CentreCrop(150 / 224, 150)(wide[None].astype(np.float32)))[0]
    direct = align_face(photo, KEYPOINTS, member, 150).astype(np.float32)
    assert cut.shape == direct.shape
    assert np.abs(cut - direct).max() <= 1.0  # the same sampling points; uint8 rounding only
    resized = np.asarray(CentreCrop(0.5, 150)(wide[None].astype(np.float32)))[0]
    assert resized.shape == (150, 150, 3) and np.abs(resized - direct).mean() > 5  # the check can fail


def test_the_grid_lists_every_mix_once() -> None:
    two, three = list(simplex_grid(2)), list(simplex_grid(3))
    assert len(two) == 21 and len(three) == 231 and len(set(three)) == 231
    assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in three)


def test_the_chosen_mix_beats_each_member_on_val() -> None:
    rng = np.random.default_rng(0)
    ages = rng.uniform(1, 90, 2000)
    good, noisy = ages + rng.normal(0, 4, 2000), ages + rng.normal(0, 8, 2000)
    weights, mae = choose_weights([noisy, good], ages)
    assert weights[1] > weights[0] > 0
    assert mae < np.mean(np.abs(good - ages)) < np.mean(np.abs(noisy - ages))


def test_the_ensemble_saves_loads_and_averages_its_members(tmp_path: Path) -> None:
    from agecheck.model.age_model import AgeModel
    from agecheck.model.ensemble import Member, ensemble_model, members_model

    small = AgeModel.load(save_dex_model(tmp_path / "small.keras", 16, "member_small"))
    large = AgeModel.load(save_dex_model(tmp_path / "large.keras", 32, "member_large"))
    members = [Member("small", small.model, 0.5, 16), Member("large", large.model, 1.0, 32)]
    AgeModel.save(ensemble_model(members, (0.25, 0.75), 32), tmp_path / "e.keras", 32, {"face_scale": 1.0})
    ensemble = AgeModel.load(tmp_path / "e.keras")
    crops = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    parts = members_model(members, 32).predict(crops.astype(np.float32), verbose=0)
    expected = 0.25 * parts["small"] + 0.75 * parts["large"]
    estimates = ensemble.estimate(crops, 0.8)
    assert np.allclose([e.probs for e in estimates], expected, atol=1e-5)
    assert np.allclose(ensemble.predict(crops), expected @ np.arange(expected.shape[1]), atol=1e-3)
    centre = crops[:, 8:24, 8:24]  # the small member's crop: the central half, sliced exactly
    assert np.allclose(parts["small"], small.model.predict(centre.astype(np.float32), verbose=0)["age_probs"])


def test_a_saved_ensemble_loads_where_only_the_wrapper_is_imported(tmp_path: Path) -> None:
    """The till imports ``AgeModel`` alone: loading must register the ensemble's own layers."""
    import subprocess
    import sys

    from agecheck.model.age_model import AgeModel
    from agecheck.model.ensemble import Member, ensemble_model

    small = AgeModel.load(save_dex_model(tmp_path / "small.keras", 16, "member_small"))
    members = [Member("small", small.model, 0.5, 16)]
    AgeModel.save(ensemble_model(members, (1.0,), 32), tmp_path / "e.keras", 32, {})
    path = str(tmp_path / "e.keras")
    code = f"from agecheck.model.age_model import AgeModel; print(AgeModel.load({path!r}).outputs)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert "age_probs" in done.stdout


def test_a_member_trains_with_its_own_train_keys() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    name = next(iter(raw["model"]["members"]))
    raw["model"]["members"][name]["train"] = {"epochs": 3, "lr": 0.01}
    params = parse_params(raw)
    assert params.member_train(name).epochs == 3 and params.member_train(name).lr == 0.01
    assert params.member_train(name).batch_size == params.train.batch_size
    raw["model"]["members"][name]["train"] = {"epoch": 3}
    with pytest.raises(AgecheckError, match="unknown train keys epoch"):
        parse_params(raw)
    raw["model"]["members"][name]["train"] = {"epochs": 0}
    with pytest.raises(AgecheckError, match=rf"model.members.{name}.train: epochs"):
        parse_params(raw)


def test_a_member_crop_larger_than_the_till_crop_is_refused() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["align"]["face_scale"] = 0.5
    with pytest.raises(
        AgecheckError, match=r"model.members.\w+.face_scale .* must not exceed align.face_scale"
    ):
        parse_params(raw)
    raw["model"]["members"] = {"Bad-Name": next(iter(raw["model"]["members"].values()))}
    with pytest.raises(AgecheckError, match="model.members"):
        parse_params(raw)
