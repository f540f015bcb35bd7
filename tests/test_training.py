"""Model building, a training step per backbone, and the saved model's round trip."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from agecheck.config import DEFAULT_PARAMS, parse_params
from agecheck.data.age_bands import band_balance_weights
from agecheck.errors import AgecheckError
from agecheck.model.age_model import AgeModel
from agecheck.model.backbones.registry import BACKBONES, build_backbone, split_backbone
from agecheck.model.batches import Batches
from agecheck.model.heads import AGE, AGE_PROBS
from agecheck.model.losses import ldl_loss
from agecheck.model.training import AgeNet, fine_tune_schedule, fit
from tests import synthetic as syn
from tests.params import train_config

SIZE = 32
CUTS = {
    "efficientnet_lite0": 10,
    "efficientnet_lite1": 12,
    "efficientnet_lite2": 12,
    "resnet50": 12,
    "dlib_resnet": 9,
}
#: dlib's ResNet pads none of its strided convs: it needs 103 px at least.
MIN_SIZE = {"dlib_resnet": 112}


def _images(count: int, size: int = SIZE) -> np.ndarray:
    return np.stack([np.asarray(syn.face_like(size, size, seed=i)) for i in range(count)])


@pytest.mark.parametrize("name", BACKBONES)
def test_one_training_step_per_backbone(name: str) -> None:
    lower, upper = split_backbone(build_backbone(name, pretrained=False), CUTS[name])
    assert lower is not None
    images = _images(4, MIN_SIZE.get(name, SIZE))
    features = np.asarray(lower.predict(images.astype(np.float32), verbose=0))
    net = AgeNet(lower, upper, train_config(head="regression", loss="l1"))
    net.set_upper_trainable(True)
    net.compile(1e-3)
    before = [w.copy() for w in net.train_model.get_weights()]
    loss = net.train_model.train_on_batch(features, np.array([10, 20, 30, 40], dtype=np.float32))
    assert np.isfinite(loss).all()
    changed = [not np.array_equal(a, b) for a, b in zip(before, net.train_model.get_weights(), strict=True)]
    assert any(changed)
    frozen = [
        layer
        for layer in net.train_model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert not any(layer.trainable for layer in frozen)
    assert frozen or name == "dlib_resnet"  # dlib froze its batch norms into affine layers


def test_resnet50_without_weights_says_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(AgecheckError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5"):
        build_backbone("resnet50", pretrained=True)


@pytest.mark.parametrize("loss", ["l1", "ldl"])
def test_fit_and_saved_model_round_trip(tmp_path: Path, loss: str) -> None:
    lower, upper = split_backbone(build_backbone("efficientnet_lite0", pretrained=False), 13)
    images = _images(24)
    ages = np.linspace(5, 80, 24).astype(np.float32)
    feats = np.asarray(lower.predict(images.astype(np.float32), verbose=0)).astype(np.float16)
    flipped = np.asarray(lower.predict(images[:, :, ::-1].astype(np.float32), verbose=0)).astype(np.float16)
    cfg = train_config(head="dex", head_epochs=1, epochs=1, batch_size=8, loss=loss)
    net = AgeNet(lower, upper, cfg)
    best = fit(net, Batches(feats, ages, 8, 0, flipped), Batches(feats, ages, 8, 0, shuffle=False), [])
    assert np.isfinite(best)
    expected = net.predict_ages(feats, flipped, 8)
    AgeModel.save(net.full_model(SIZE), tmp_path / "m.keras", SIZE, {"backbone": "efficientnet_lite0"})
    model = AgeModel.load(tmp_path / "m.keras")
    got = model.predict(images)
    assert model.input_size == SIZE and model.has_distribution
    assert model.info["outputs"] == [AGE, AGE_PROBS]
    assert np.allclose(got, expected, atol=0.05)  # cached activations are float16
    assert ((got >= 0) & (got <= 100)).all()


def test_batches_mirror_about_half_and_keep_labels() -> None:
    x = np.zeros((100, 1), dtype=np.float16)
    batches = Batches(x, np.arange(100), 10, seed=1, x_flip=np.ones_like(x))
    xs, ys = zip(*(batches[i] for i in range(len(batches))), strict=True)
    assert sorted(np.concatenate(ys).tolist()) == list(range(100))
    assert 30 < np.concatenate(xs).sum() < 70


def test_batches_carry_each_rows_weight() -> None:
    ages = np.arange(50, dtype=np.float32)
    batches = Batches(ages[:, None], ages, 8, seed=3, weights=ages * 10)
    for i in range(len(batches)):
        x, y, w = batches[i]
        assert np.array_equal(w, y * 10) and np.array_equal(x[:, 0], y)


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_band_balance_weights(power: float) -> None:
    ages = np.array([15] * 10 + [30] * 90)  # 10 teens, 90 adults of 25-34
    weights = band_balance_weights(ages, power)
    assert weights.mean() == pytest.approx(1.0)
    teen, adult = weights[0], weights[-1]
    assert teen / adult == pytest.approx(9**power)
    if power == 1.0:  # every band weighs the same in all
        assert weights[:10].sum() == pytest.approx(weights[10:].sum())


def test_ldl_loss_is_the_age_error_when_the_softmax_matches_the_label_distribution() -> None:
    ages = np.arange(101, dtype=np.float32)
    target = np.exp(-0.5 * ((ages - 50) / 3.0) ** 2)
    target /= target.sum()
    loss = ldl_loss(3.0, 1.0)
    exact = float(np.asarray(loss(np.array([50.0]), target[None])).reshape(-1)[0])
    assert exact == pytest.approx(0.0, abs=1e-3)
    uniform = np.full((1, 101), 1 / 101, dtype=np.float32)
    # expected age 50 too, but the KL term punishes the spread
    assert float(np.asarray(loss(np.array([50.0]), uniform)).reshape(-1)[0]) > 1.0
    shifted = float(np.asarray(loss(np.array([40.0]), target[None])).reshape(-1)[0])
    assert shifted > 10.0  # 10 years of error plus the KL between the shifted Gaussians


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loss": "huber"}, "train.loss: Input should be 'l1' or 'ldl'"),
        ({"loss": "ldl", "head": "regression"}, "train: loss: ldl needs head: dex"),
        ({"loss": "ldl", "ldl_sigma": 0}, "train.ldl_sigma: Input should be greater than 0"),
        ({"lr": "fast"}, "train.lr: Input should be a valid number"),
        ({"learning_rate": 0.1}, "train.learning_rate: unknown key"),
        ({"age_balance": 2}, "train.age_balance: Input should be less than or equal to 1"),
    ],
)
def test_bad_train_params_name_the_key(change: dict[str, object], message: str) -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["train"].update(change)
    with pytest.raises(AgecheckError, match=re.escape(message)):
        parse_params(raw)


def test_fine_tune_schedule_warms_up_then_decays() -> None:
    schedule = fine_tune_schedule(train_config(lr=1e-3, epochs=4, warmup_epochs=1), steps_per_epoch=10)
    rates = [float(schedule(step)) for step in range(40)]
    assert rates[0] == pytest.approx(1e-5, rel=0.01)
    assert rates[10] == pytest.approx(1e-3, rel=0.01) and max(rates) <= 1e-3 * 1.001
    assert all(a < b for a, b in zip(rates[:10], rates[1:11], strict=True))
    assert all(a >= b for a, b in zip(rates[10:-1], rates[11:], strict=True)) and rates[-1] < 1e-4
    plain = fine_tune_schedule(train_config(lr=1e-3, epochs=4, warmup_epochs=0), steps_per_epoch=10)
    assert float(plain(0)) == pytest.approx(1e-3)
