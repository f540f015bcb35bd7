"""The Keras rebuild of dlib's face ResNet against descriptors dlib itself computed (no dlib needed here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from agecheck.errors import AgecheckError
from agecheck.model.backbones.dlib_format import EMBEDDING_DIM, read_dlib_weights
from agecheck.model.backbones.dlib_resnet import (
    BLOCK_OUTPUT_NAMES,
    POOLED_FEATURES_NAME,
    STAGE_OUTPUT_NAMES,
    build_dlib_resnet,
    weights_file,
)
from agecheck.model.backbones.registry import build_backbone
from tests.support.ci import skip_or_fail_in_ci
from tests.support.synthetic_chips import RECIPES, synthetic_chip

REFERENCE = json.loads((Path(__file__).parent / "data" / "dlib_reference.json").read_text())
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def dlib_weights_path() -> Path:
    try:
        return weights_file()
    except FileNotFoundError as err:
        skip_or_fail_in_ci(f"dlib's weights are not available: {err}")


def test_reference_images_are_regenerated_exactly() -> None:
    assert [case["recipe"] for case in REFERENCE["cases"]] == list(RECIPES)
    for case in REFERENCE["cases"]:
        chip = synthetic_chip(case["recipe"])
        assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
        assert hashlib.sha256(chip.tobytes()).hexdigest() == case["image_sha256"]


def test_matches_dlib_descriptors(dlib_weights_path: Path) -> None:
    assert hashlib.sha256(dlib_weights_path.read_bytes()).hexdigest() == REFERENCE["weights_sha256"]
    weights = read_dlib_weights(dlib_weights_path)
    assert weights.num_weights == 5_614_592
    assert weights.input_size == (150, 150)
    np.testing.assert_allclose(weights.rgb_mean, (122.782, 117.001, 104.298), rtol=1e-6)
    images = np.stack([synthetic_chip(case["recipe"]) for case in REFERENCE["cases"]]).astype("float32")
    expected = np.array([case["descriptor"] for case in REFERENCE["cases"]])
    for shape in ((150, 150, 3), (None, None, 3)):
        model = build_dlib_resnet(weights, input_shape=shape)
        got = np.asarray(model(images, training=False))
        assert got.shape == (len(images), EMBEDDING_DIM)
        assert np.abs(got - expected).max() <= TOLERANCE, shape


def test_block_shapes_and_split_points() -> None:
    model = build_dlib_resnet(input_shape=(150, 150, 3))
    spatial = [model.get_layer(n).output.shape[1:] for n in BLOCK_OUTPUT_NAMES]
    assert spatial == [(35, 35, 32)] * 3 + [(17, 17, 64)] * 4 + [(8, 8, 128)] * 3 + [(4, 4, 256)] * 3 + [
        (2, 2, 256)
    ]
    assert set(STAGE_OUTPUT_NAMES) <= set(BLOCK_OUTPUT_NAMES)
    assert model.get_layer(POOLED_FEATURES_NAME).output.shape == (None, 256)
    assert model.count_params() == 5_614_592
    cut = model.get_layer(BLOCK_OUTPUT_NAMES[6]).output
    lower, upper = keras.Model(model.input, cut), keras.Model(cut, model.output)
    x = np.random.default_rng(0).uniform(0, 255, (1, 150, 150, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(upper(lower(x))), np.asarray(model(x)), atol=1e-5)


# Keras' own saving code trips numpy 2's __array__(copy=...) deprecation on TF variables: not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_save_load_round_trip(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = build_dlib_resnet(name="dlib_resnet_random")
    for layer in model.layers:  # random affine too, so the custom layers' weights must survive the trip
        if layer.name.endswith("_affine"):
            layer.set_weights([np.random.default_rng(1).uniform(0.5, 1.5, w.shape) for w in layer.weights])
    # 112 px: near the smallest input (103 px) the network takes, so the test stays quick.
    x = np.random.default_rng(2).uniform(0, 255, (2, 112, 112, 3)).astype("float32")
    before = np.asarray(model(x))
    path = tmp_path / "dlib_resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(np.asarray(loaded(x)), before, rtol=1e-5, atol=1e-6)


def test_a_file_that_is_not_dlib_s_network_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not_dlib.dat"
    bogus.write_bytes(b"\x01\x01" + b"\x01\x0b" + b"loss_other_")  # dlib ints: size byte, value
    with pytest.raises(AgecheckError, match="cannot read dlib_resnet weights: expected dlib's loss_metric"):
        build_backbone("dlib_resnet", pretrained=True, weights_path=str(bogus))
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(b"\x01")
    with pytest.raises(AgecheckError, match="truncated"):
        build_backbone("dlib_resnet", pretrained=True, weights_path=str(truncated))
