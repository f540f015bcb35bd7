"""Model building, a training step per backbone, and the saved model's round trip."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from agecheck.config import DEFAULT_PARAMS, parse_params
from agecheck.data.age_bands import band_balance_weights
from agecheck.errors import AgecheckError
from agecheck.model.age_model import AgeModel
from agecheck.model.backbones.registry import BACKBONES, build_backbone, split_backbone
from agecheck.model.outputs import AGE, AGE_PROBS, FEATURES
from agecheck.training.batches import Examples, epoch_batches
from agecheck.training.checkpoints import EpochCheckpoints, inputs_fingerprint
from agecheck.training.distribution import StallWatchdog, read_cluster
from agecheck.training.losses import ldl_loss
from agecheck.training.trainer import AgeNet, Trainer, fine_tune_schedule, nested_layers
from tests.support import synthetic as syn
from tests.support.params import train_config

SIZE = 32
CUTS = {
    "efficientnet_lite0": 10,
    "efficientnet_lite1": 12,
    "efficientnet_lite2": 12,
    "resnet50": 12,
    "dlib_resnet": 9,
    "faceres": 12,  # the pipeline cuts after the pooling (14): here 12, so that batch norms are trained past
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
    cfg = train_config(head="regression", loss="l1", head_epochs=0, epochs=1, batch_size=4, lr=1e-3)
    net = AgeNet(lower, upper, cfg)
    before = [w.copy() for w in net.train_model.get_weights()]
    examples = Examples(features, np.array([10, 20, 30, 40], dtype=np.float32))
    assert np.isfinite(Trainer(net, tf.distribute.get_strategy(), examples, examples).fit())
    changed = [not np.array_equal(a, b) for a, b in zip(before, net.train_model.get_weights(), strict=True)]
    assert any(changed)
    frozen = [
        layer
        for layer in nested_layers(net.train_model)
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
    trainer = Trainer(
        net, tf.distribute.get_strategy(), Examples(feats, ages, x_flip=flipped), Examples(feats, ages)
    )
    best = trainer.fit()
    assert np.isfinite(best)
    expected = net.predict_ages(feats, flipped, 8)
    AgeModel.save(net.full_model(SIZE), tmp_path / "m.keras", SIZE, {"backbone": "efficientnet_lite0"})
    model = AgeModel.load(tmp_path / "m.keras")
    got = model.predict(images)
    assert model.input_size == SIZE and model.has_distribution
    assert model.info["outputs"] == [AGE, AGE_PROBS, FEATURES]  # a member: its pooled features too
    assert np.allclose(got, expected, atol=0.05)  # cached activations are float16
    pooled = net.pooled_features(feats, flipped, 8)
    saved = model.model.predict(images.astype(np.float32), verbose=0)[FEATURES]
    assert pooled.shape == saved.shape and np.allclose(pooled, saved, atol=0.05)
    assert ((got >= 0) & (got <= 100)).all()


def _epoch(examples: Examples, batch: int, pipelines: int, epoch: int = 0, **kw: object) -> list:
    """Every pipeline's batches of one epoch (one replica per pipeline), as numpy tuples."""
    shares = []
    for index in range(pipelines):
        context = tf.distribute.InputContext(pipelines, index, num_replicas_in_sync=pipelines)
        dataset = epoch_batches(examples, batch, context, seed=7, epoch=epoch, **kw)
        shares.append([tuple(np.asarray(t) for t in element) for element in dataset])
    return shares


def test_each_worker_reads_its_share_of_every_batch() -> None:
    ages = np.arange(45, dtype=np.float32)  # 45 rows, global batch 8: 6 steps, 3 rows of padding
    examples = Examples(ages[:, None], ages, weights=np.where(ages < 10, 2.0, 1.0))
    first, second = _epoch(examples, 8, pipelines=2)
    assert len(first) == len(second) == 6  # the same number of steps on every worker
    real = [a[r > 0] for share in (first, second) for (_, a, _, r) in share]
    assert sorted(np.concatenate(real).tolist()) == ages.tolist()  # every row once, padding marked
    for (x1, a1, w1, r1), (_, a2, w2, r2) in zip(first, second, strict=True):
        assert x1.shape == (4, 1) and np.array_equal(x1[:, 0], a1)
        real_rows = r1.sum() + r2.sum()
        raw = np.where(np.concatenate([a1, a2]) < 10, 2.0, 1.0) * np.concatenate([r1, r2])
        assert np.allclose(np.concatenate([w1, w2]), raw / real_rows)  # weighted mean over the batch
    again = _epoch(examples, 8, pipelines=2)[0]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))  # (seed, epoch) decide
    other = _epoch(examples, 8, pipelines=2, epoch=1)[0]
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))
    in_order = _epoch(examples, 8, pipelines=1, shuffle=False)[0]
    assert np.concatenate([a for _, a, _, r in in_order])[:45].tolist() == ages.tolist()


def test_batches_mirror_about_half_and_keep_labels() -> None:
    x = np.zeros((100, 1), dtype=np.float16)
    examples = Examples(x, np.arange(100, dtype=np.float32), x_flip=np.ones_like(x))
    (share,) = _epoch(examples, 10, pipelines=1, flip=True)
    assert sorted(np.concatenate([a for _, a, _, _ in share]).tolist()) == list(range(100))
    assert 30 < np.concatenate([x for x, _, _, _ in share]).sum() < 70
    (plain,) = _epoch(examples, 10, pipelines=1)
    assert np.concatenate([x for x, _, _, _ in plain]).sum() == 0


def _tiny_trainer(epochs: int = 3) -> Trainer:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4, 4, 8)).astype(np.float16)
    ages = (x.astype(np.float32).mean(axis=(1, 2, 3)) * 40 + 30).astype(np.float32)
    cfg = train_config(head="dex", loss="ldl", head_epochs=1, epochs=epochs, batch_size=16, patience=5)
    image = keras.Input((4, 4, 8))
    net = AgeNet(None, keras.Model(image, keras.layers.Conv2D(8, 3, padding="same")(image)), cfg)
    return Trainer(net, tf.distribute.get_strategy(), Examples(x, ages, x_flip=x[:, ::-1]), Examples(x, ages))


def test_a_killed_run_resumes_at_the_next_epoch(tmp_path: Path) -> None:
    whole = _tiny_trainer()
    whole_logs: list[dict] = []
    whole.fit(on_epoch=lambda epoch, logs: whole_logs.append(logs))

    def killed(epoch: int, logs: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt  # in epoch 2, after epochs 0 and 1 were saved

    checkpoints = EpochCheckpoints(tmp_path / "ckpt", "fingerprint")
    with pytest.raises(KeyboardInterrupt):
        _tiny_trainer().fit(checkpoints, killed)
    assert EpochCheckpoints(tmp_path / "ckpt", "fingerprint").epochs() == [1, 2]  # the last two kept
    seen: list[int] = []
    resumed = _tiny_trainer()
    best = resumed.fit(
        EpochCheckpoints(tmp_path / "ckpt", "fingerprint"), lambda epoch, logs: seen.append(epoch)
    )
    assert seen == [0, 1, 2, 3] and int(resumed.epoch.numpy()) == 4  # two replayed, two run
    assert best == pytest.approx(min(logs["val_mae"] for logs in whole_logs[1:]), abs=1e-4)
    for a, b in zip(whole.net.train_model.get_weights(), resumed.net.train_model.get_weights(), strict=True):
        assert np.allclose(a, b, atol=1e-5)
    # other params or inputs: the checkpoint is dropped, training starts at epoch 0
    seen.clear()
    _tiny_trainer().fit(EpochCheckpoints(tmp_path / "ckpt", "other"), lambda epoch, logs: seen.append(epoch))
    assert seen == [0, 1, 2, 3]


def test_inputs_fingerprint_follows_settings_and_files(tmp_path: Path) -> None:
    data = tmp_path / "x.npy"
    data.write_bytes(b"a")
    base = inputs_fingerprint({"lr": 1}, [data])
    assert inputs_fingerprint({"lr": 1}, [data]) == base
    assert inputs_fingerprint({"lr": 2}, [data]) != base
    data.write_bytes(b"a")  # written again, same bytes: still the same inputs
    assert inputs_fingerprint({"lr": 1}, [data]) == base
    data.write_bytes(b"b")
    assert inputs_fingerprint({"lr": 1}, [data]) != base


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


def test_a_stalled_worker_stops_instead_of_waiting_for_good(capsys: pytest.CaptureFixture[str]) -> None:
    stalled = threading.Event()
    with StallWatchdog(0.4, on_stall=stalled.set) as watchdog:
        for _ in range(6):  # steps keep coming: no alarm
            time.sleep(0.1)
            watchdog.beat()
        assert not stalled.is_set()
        assert stalled.wait(3)  # no step for longer than 0.4 s
    assert (
        "error: no training step finished for 0 s: a worker has probably stopped" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        ("{", "TF_CONFIG (see docs/scaling.md) is not JSON"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', 'has no "task"'),
        (
            '{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}',
            '"host:port" strings',
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            "task index 1 is not one of the 1",
        ),
        (
            '{"cluster": {"ps": ["a:1"]}, "task": {"type": "worker", "index": 0}}',
            "training uses only 'chief'",
        ),
    ],
)
def test_bad_tf_config_names_the_problem(tf_config: str, message: str) -> None:
    with pytest.raises(AgecheckError, match=re.escape(message)):
        read_cluster({"TF_CONFIG": tf_config})


def test_tf_config_ranks_the_chief_first() -> None:
    cluster = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    worker = read_cluster(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    )
    assert worker.workers == 3 and worker.rank == 2 and not worker.is_chief
    chief = read_cluster(
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})}
    )
    assert chief.is_chief and read_cluster({}).workers == 1
