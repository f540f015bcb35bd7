"""Fine-tuning the upper part of a backbone plus an age head (on cached activations or on photos)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from agecheck.config import TrainConfig
from agecheck.model.batches import Batches
from agecheck.model.heads import AGE, AGE_PROBS, age_head, mirror_averaged
from agecheck.model.losses import age_error, ldl_loss


def freeze_batchnorm(model: keras.Model) -> None:
    """Keep every BatchNormalization layer in inference mode (usual when fine-tuning)."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False


class AgeNet:
    """The frozen ``lower`` part of a backbone, its trainable ``upper`` part and an age head.

    ``age_model`` maps ``upper``'s input to ages, ``train_model`` to what the loss reads (the
    softmax for ``ldl``, the age for ``l1``); both share the layers. :meth:`full_model`
    assembles the saved model (photos in, named outputs out).
    """

    def __init__(self, lower: keras.Model | None, upper: keras.Model, config: TrainConfig) -> None:
        self.lower, self.upper, self.config = lower, upper, config
        inputs = keras.Input(upper.input_shape[1:], name="input")
        pooled = layers.GlobalAveragePooling2D(name="pool")(upper(inputs))
        features = keras.Input(pooled.shape[1:], name="features")
        self.head = keras.Model(
            features, age_head(features, config.head, config.dropout, config.hidden), name="age_head"
        )
        outputs = self.head(pooled)
        self.age_model = keras.Model(inputs, outputs[AGE], name="age_model")
        self.train_model = keras.Model(
            inputs, outputs[AGE_PROBS if config.loss == "ldl" else AGE], name="train_model"
        )

    def compile(self, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
        cfg = self.config
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay)
        if cfg.loss == "ldl":
            mae = keras.metrics.MeanMetricWrapper(age_error, name="mae")
            self.train_model.compile(
                optimizer=optimizer, loss=ldl_loss(cfg.ldl_sigma, cfg.ldl_weight), metrics=[mae]
            )
        else:
            self.train_model.compile(optimizer=optimizer, loss="mae", metrics=["mae"])

    def set_upper_trainable(self, trainable: bool) -> None:
        self.upper.trainable = trainable
        freeze_batchnorm(self.upper)

    def predict_ages(self, x: np.ndarray, x_flip: np.ndarray | None, batch_size: int) -> np.ndarray:
        """Ages for ``upper``'s inputs, averaged with those of their mirror images when given."""
        mirrored = () if x_flip is None else (x_flip,)
        predictions = [
            self.age_model.predict(
                Batches(part, np.zeros(len(part)), batch_size, 0, shuffle=False), verbose=0
            )
            for part in (x, *mirrored)
        ]
        return np.mean(predictions, axis=0).reshape(-1)

    def full_model(self, image_size: int) -> keras.Model:
        """Photos (RGB 0..255) in; ``age`` and, for DEX, ``age_probs`` out; mirror-averaged if set."""
        image = keras.Input((image_size, image_size, 3), name="image")
        x = self.lower(image) if self.lower is not None else image
        outputs = self.head(layers.GlobalAveragePooling2D(name="pool")(self.upper(x)))
        core = keras.Model(image, outputs, name="age_model_core")
        return mirror_averaged(core, image_size) if self.config.tta_flip else core


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
        net.train_model.fit(
            train, validation_data=val, epochs=cfg.head_epochs, callbacks=callbacks, verbose=2
        )
    net.set_upper_trainable(True)
    net.compile(fine_tune_schedule(cfg, len(train)))
    stop = keras.callbacks.EarlyStopping(
        monitor="val_mae", patience=cfg.patience, restore_best_weights=True, mode="min"
    )
    history = net.train_model.fit(
        train,
        validation_data=val,
        epochs=cfg.head_epochs + cfg.epochs,
        initial_epoch=cfg.head_epochs,
        callbacks=[*callbacks, stop],
        verbose=2,
    )
    return float(min(history.history["val_mae"]))
