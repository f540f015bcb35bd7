"""Fine-tuning the upper part of a backbone plus an age head (on cached activations or on photos)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import keras
import numpy as np
from keras import layers

from agecheck.heads import MAX_AGE, age_head

LOSSES = ("l1", "ldl")


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` block of ``params.yaml``."""

    mode: str = "cached"  # cached: train on the features stage's outputs; full: on photos (GPU)
    head: str = "dex"
    hidden: int = 0
    dropout: float = 0.2
    lr_head: float = 1e-3
    lr: float = 3e-4
    weight_decay: float = 1e-4
    head_epochs: int = 2
    epochs: int = 10
    warmup_epochs: float = 0.0  # linear warm-up of the fine-tuning rate before the cosine decay
    batch_size: int = 64
    patience: int = 3
    seed: int = 42
    flip: bool = True
    tta_flip: bool = True
    loss: str = "l1"  # l1 on the age; ldl: l1 + ldl_weight * KL(Gaussian label distribution || softmax)
    ldl_sigma: float = 3.0  # years: width of the Gaussian around the true age (ldl only)
    ldl_weight: float = 1.0

    @classmethod
    def from_params(cls, block: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(block) - known
        if unknown:
            raise ValueError(f"unknown train params: {', '.join(sorted(unknown))}")
        config = cls(**block)
        if config.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {', '.join(LOSSES)} (got {config.loss!r})")
        if config.loss == "ldl" and (config.head != "dex" or config.ldl_sigma <= 0):
            raise ValueError("train.loss: ldl needs train.head: dex and train.ldl_sigma > 0")
        return config


def _expected_age(probabilities):  # type: ignore[no-untyped-def]
    return keras.ops.sum(probabilities * keras.ops.arange(MAX_AGE + 1, dtype="float32"), axis=-1)


def _age_error(y_true, probabilities):  # type: ignore[no-untyped-def]
    """Absolute error of the softmax's expected age."""
    y = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
    return keras.ops.abs(_expected_age(probabilities) - y)


def ldl_loss(sigma: float, weight: float):  # type: ignore[no-untyped-def]
    """Label-distribution learning for a DEX softmax (Geng et al.; Gao et al., DLDL): the L1 error
    of its expected age plus ``weight`` times the KL divergence from a Gaussian of width ``sigma``
    around the true age to the softmax.
    """
    ages = keras.ops.arange(MAX_AGE + 1, dtype="float32")

    def loss(y_true, probabilities):  # type: ignore[no-untyped-def]
        y = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1, 1))
        target = keras.ops.exp(-0.5 * keras.ops.square((ages - y) / sigma))
        target = target / keras.ops.sum(target, axis=-1, keepdims=True)
        kl = keras.ops.sum(
            target * (keras.ops.log(target + 1e-8) - keras.ops.log(probabilities + 1e-8)), axis=-1
        )
        return _age_error(y_true, probabilities) + weight * kl

    return loss


class Batches(keras.utils.PyDataset):
    """Shuffled batches of ``(x, y)``; with ``x_flip`` each sample is mirrored at random."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        x_flip: np.ndarray | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.x, self.x_flip, self.y = x, x_flip, y.astype(np.float32)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(x))
        self.mirror = np.zeros(len(x), dtype=bool)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        x = self.x[rows].astype(np.float32)
        if self.x_flip is not None:
            flip = self.mirror[rows]
            x[flip] = self.x_flip[rows[flip]].astype(np.float32)
        return x, self.y[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)
        if self.x_flip is not None:
            self.mirror = self.rng.random(len(self.x)) < 0.5


@keras.saving.register_keras_serializable(package="agecheck")
class FlipAverage(layers.Layer):
    """Average of a model's output on the photos and on their mirror images."""

    def __init__(self, inner: keras.Model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, images):  # type: ignore[no-untyped-def]
        return (self.inner(images) + self.inner(keras.ops.flip(images, axis=2))) / 2.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FlipAverage:
        config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
        return cls(**config)


def freeze_batchnorm(model: keras.Model) -> None:
    """Keep every BatchNormalization layer in inference mode (usual when fine-tuning)."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False


class AgeNet:
    """Trainable part (``upper`` + head) and the frozen ``lower`` part of an age model."""

    def __init__(self, lower: keras.Model | None, upper: keras.Model, config: TrainConfig) -> None:
        self.lower, self.upper, self.config = lower, upper, config
        inputs = keras.Input(upper.input_shape[1:], name="input")
        pooled = layers.GlobalAveragePooling2D(name="pool")(upper(inputs))
        features = keras.Input(pooled.shape[1:], name="features")
        self.head = keras.Model(
            features, age_head(features, config.head, config.dropout, config.hidden), name="age_head"
        )
        #: the trainable part with ages out (for prediction)
        self.age_model = keras.Model(inputs, self.head(pooled), name="trainable")
        self.trainable = self.age_model
        if config.loss == "ldl":  # trained on the softmax itself: same layers, probabilities out
            probs = keras.Model(self.head.inputs, self.head.get_layer("age_probs").output, name="probs")
            self.trainable = keras.Model(inputs, probs(pooled), name="trainable_ldl")

    def compile(self, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
        cfg = self.config
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay)
        if cfg.loss == "ldl":
            mae = keras.metrics.MeanMetricWrapper(_age_error, name="mae")
            self.trainable.compile(
                optimizer=optimizer, loss=ldl_loss(cfg.ldl_sigma, cfg.ldl_weight), metrics=[mae]
            )
        else:
            self.trainable.compile(optimizer=optimizer, loss="mae", metrics=["mae"])

    def set_upper_trainable(self, trainable: bool) -> None:
        self.upper.trainable = trainable
        freeze_batchnorm(self.upper)

    def full_model(self, image_size: int) -> keras.Model:
        """Photos (0..255) in, ages out: lower + upper + head, with flip averaging if configured."""
        inputs = keras.Input((image_size, image_size, 3), name="image")
        x = self.lower(inputs) if self.lower is not None else inputs
        core = keras.Model(
            inputs,
            self.head(layers.GlobalAveragePooling2D(name="pool")(self.upper(x))),
            name="age_model_core",
        )
        if not self.config.tta_flip:
            return core
        outer = keras.Input((image_size, image_size, 3), name="image")
        return keras.Model(outer, FlipAverage(core, name="flip_average")(outer), name="age_model")


def fine_tune_schedule(cfg: TrainConfig, steps_per_epoch: int) -> keras.optimizers.schedules.CosineDecay:
    """``cfg.lr`` decayed to 0 over the fine-tuning epochs (cosine), after a linear warm-up from
    ``cfg.lr / 100`` over ``cfg.warmup_epochs`` (unfrozen blocks would otherwise take full-size
    Adam steps before its moments are estimated).
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(cfg.warmup_epochs * steps_per_epoch)))
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(cfg.lr, total)
    return keras.optimizers.schedules.CosineDecay(
        cfg.lr / 100, total - warmup, warmup_target=cfg.lr, warmup_steps=warmup
    )


def fit(net: AgeNet, train: Batches, val: Batches, callbacks: list[keras.callbacks.Callback]) -> float:
    """Head-only warm-up, then fine-tuning of the upper blocks; returns the best validation MAE."""
    cfg = net.config
    keras.utils.set_random_seed(cfg.seed)
    net.set_upper_trainable(False)
    net.compile(cfg.lr_head)
    if cfg.head_epochs:
        net.trainable.fit(train, validation_data=val, epochs=cfg.head_epochs, callbacks=callbacks, verbose=2)
    net.set_upper_trainable(True)
    net.compile(fine_tune_schedule(cfg, len(train)))
    stop = keras.callbacks.EarlyStopping(
        monitor="val_mae", patience=cfg.patience, restore_best_weights=True, mode="min"
    )
    history = net.trainable.fit(
        train,
        validation_data=val,
        epochs=cfg.head_epochs + cfg.epochs,
        initial_epoch=cfg.head_epochs,
        callbacks=[*callbacks, stop],
        verbose=2,
    )
    return float(min(history.history["val_mae"]))


def predict_mean(model: keras.Model, x: np.ndarray, x_flip: np.ndarray | None, batch_size: int) -> np.ndarray:
    """Predictions of ``model``, averaged with those on ``x_flip`` when given."""
    out = model.predict(Batches(x, np.zeros(len(x)), batch_size, 0, shuffle=False), verbose=0).reshape(-1)
    if x_flip is not None:
        flipped = Batches(x_flip, np.zeros(len(x)), batch_size, 0, shuffle=False)
        out = (out + model.predict(flipped, verbose=0).reshape(-1)) / 2
    return out
