"""Tests for the legacy torch reader and the EfficientNet-Lite Keras backbone."""

from __future__ import annotations

import pickle
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from agecheck.errors import AgecheckError
from agecheck.model.backbones.efficientnet_lite import (
    VARIANTS,
    architecture_from_state_dict,
    build_efficientnet_lite,
    default_architecture,
    num_blocks,
    pretrained_state_dict,
)
from agecheck.model.backbones.registry import split_backbone
from agecheck.model.backbones.torch_legacy import load_legacy_state_dict

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup


@pytest.fixture(scope="module")
def lite0_state_dict() -> dict[str, np.ndarray]:
    return pretrained_state_dict("efficientnet_lite0")


def _center_square(img: np.ndarray, size: int) -> np.ndarray:
    """Center-crop to a square and resize (bicubic) to ``size``; float32 0..255."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(img[top : top + s, left : left + s])
    return np.asarray(crop.resize((size, size), Image.BICUBIC), dtype=np.float32)


def _weight_shapes(model: keras.Model) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.path, tuple(w.shape)) for w in model.weights]


@pytest.mark.parametrize("content", [b"not a torch file", b"PK\x03\x04zipzipzip", pickle.dumps({"a": 1})])
def test_reader_rejects_non_legacy_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bogus.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bogus.pth"):
        load_legacy_state_dict(path)


def test_reader_refuses_foreign_globals(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"x": Path("/")}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_legacy_state_dict(path)


def test_reader_returns_all_keys(lite0_state_dict: dict[str, np.ndarray]) -> None:
    assert len(lite0_state_dict) == 296
    assert lite0_state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0_state_dict["_bn0.num_batches_tracked"].dtype == np.int64
    assert lite0_state_dict["_fc.weight"].dtype == np.float32


def test_lite0_classifies_imagenet_samples(lite0_state_dict: dict[str, np.ndarray]) -> None:
    data = pytest.importorskip("skimage.data")
    size = VARIANTS["efficientnet_lite0"].resolution
    model = build_efficientnet_lite("efficientnet_lite0", (size, size, 3), lite0_state_dict, include_top=True)
    images = np.stack([_center_square(data.chelsea(), size), _center_square(data.coffee(), size)])
    cat, coffee = np.argmax(model.predict(images, verbose=0), axis=-1)
    assert int(cat) in CAT_CLASSES
    assert int(coffee) in CUP_CLASSES


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_random_init_matches_pretrained_shapes(variant: str) -> None:
    state_dict = pretrained_state_dict(variant)
    assert architecture_from_state_dict(state_dict) == default_architecture(variant)
    random_model = build_efficientnet_lite(variant, (None, None, 3), include_top=True)
    pretrained = build_efficientnet_lite(variant, (None, None, 3), state_dict, include_top=True)
    assert _weight_shapes(random_model) == _weight_shapes(pretrained)


@pytest.mark.parametrize("block", [0, 5, num_blocks("efficientnet_lite0") - 2])
def test_split_composes_to_full_model(block: int) -> None:
    model = build_efficientnet_lite("efficientnet_lite0", (64, 64, 3))
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 3)).astype(np.float32)
    lower, upper = split_backbone(model, block)
    composed = upper(lower(x, training=False), training=False)
    np.testing.assert_allclose(np.asarray(composed), np.asarray(model(x, training=False)), atol=1e-4)


def test_split_rejects_a_cut_at_or_past_the_last_block() -> None:
    model = build_efficientnet_lite("efficientnet_lite0", (64, 64, 3))
    with pytest.raises(AgecheckError, match="cut_block must be below"):
        split_backbone(model, num_blocks("efficientnet_lite0") - 1)
