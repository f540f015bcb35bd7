"""Fine-tuning the upper part of a backbone plus an age head, on cached activations or on photos.

The loop is written out with ``strategy.run`` (TensorFlow's engine, as in Keras' own trainer)
because Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy``: before the first step it
all-reduces a batch of inputs to build the model, which the multi-worker strategy cannot do. One
loop serves one CPU, several GPUs and several machines alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from functools import partial

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from agecheck.config import TrainConfig
from agecheck.errors import AgecheckError, one_line
from agecheck.model.heads import age_head, mirror_averaged
from agecheck.model.outputs import AGE, AGE_PROBS, FEATURES
from agecheck.training.batches import Examples, epoch_batches, epoch_steps
from agecheck.training.checkpoints import EpochCheckpoints
from agecheck.training.distribution import StallWatchdog
from agecheck.training.losses import age_error, ldl_loss

EpochLogger = Callable[[int, dict[str, float]], None]
#: Several workers: stop when no step finishes for this long (a step takes well under a second here,
#: an epoch's validation and checkpoint seconds).
STALL_SECONDS = 600.0


def nested_layers(model: keras.Model) -> Iterator[layers.Layer]:
    """Every layer inside ``model``, those of models nested in it too (``Model.layers`` is one level;
    none of our custom layers holds layers of its own)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from nested_layers(layer)


def freeze_batchnorm(model: keras.Model) -> None:
    """Keep every BatchNormalization layer in inference mode (usual when fine-tuning)."""
    for layer in nested_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False


def pool(x: keras.KerasTensor) -> keras.KerasTensor:
    """Average a feature map over its positions (faceres ends in a 1x1 map: its vector)."""
    return layers.GlobalAveragePooling2D(name="pool")(x)


class AgeNet:
    """The frozen ``lower`` part of a backbone, its trainable ``upper`` part and an age head.

    ``age_model`` maps ``upper``'s input to ages, ``train_model`` to what the loss reads (the
    softmax for ``ldl``, the age for ``l1``); both share the layers. :meth:`full_model`
    assembles the saved model (photos in, named outputs out).
    """

    def __init__(self, lower: keras.Model | None, upper: keras.Model, config: TrainConfig) -> None:
        self.lower, self.upper, self.config = lower, upper, config
        inputs = keras.Input(upper.input_shape[1:], name="input")
        pooled = pool(upper(inputs))
        features = keras.Input(pooled.shape[1:], name="features")
        self.head = keras.Model(
            features, age_head(features, config.head, config.dropout, config.hidden), name="age_head"
        )
        outputs = self.head(pooled)
        self.age_model = keras.Model(inputs, outputs[AGE], name="age_model")
        self.features_model = keras.Model(inputs, pooled, name="features_model")
        self.train_model = keras.Model(
            inputs, outputs[AGE_PROBS if config.loss == "ldl" else AGE], name="train_model"
        )

    def losses(self, ages: tf.Tensor, outputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Per row: the training loss and the absolute error of the age, from ``train_model``'s outputs."""
        cfg = self.config
        if cfg.loss == "ldl":
            return ldl_loss(cfg.ldl_sigma, cfg.ldl_weight)(ages, outputs), age_error(ages, outputs)
        error = ops.abs(ops.reshape(outputs, (-1,)) - ages)
        return error, error

    def set_upper_trainable(self, trainable: bool) -> None:
        self.upper.trainable = trainable
        freeze_batchnorm(self.upper)

    def predict_ages(self, x: np.ndarray, x_flip: np.ndarray | None, batch_size: int) -> np.ndarray:
        """Ages for ``upper``'s inputs, averaged with those of their mirror images when given."""
        return self._averaged(self.age_model, x, x_flip, batch_size).reshape(-1)

    def pooled_features(self, x: np.ndarray, x_flip: np.ndarray | None, batch_size: int) -> np.ndarray:
        """The features the age head reads, for ``upper``'s inputs (averaged with their mirror images'
        when given, as the saved model averages them): the under-age heads' inputs."""
        return self._averaged(self.features_model, x, x_flip, batch_size)

    @staticmethod
    def _averaged(
        model: keras.Model, x: np.ndarray, x_flip: np.ndarray | None, batch_size: int
    ) -> np.ndarray:
        """``model`` on ``x`` (and ``x_flip``, averaged), in batches.

        Plain calls, not ``predict``: under a multi-worker strategy ``predict`` would gather every
        worker's rows, while each worker here predicts all rows itself.
        """
        parts = (x,) if x_flip is None else (x, x_flip)
        outputs = [
            np.concatenate(
                [
                    np.asarray(model(part[i : i + batch_size].astype(np.float32), training=False))
                    for i in range(0, len(part), batch_size)
                ]
            )
            for part in parts
        ]
        return np.mean(outputs, axis=0)

    def full_model(self, image_size: int, name: str = "age_model") -> keras.Model:
        """Photos (RGB 0..255) in; ``age``, for DEX ``age_probs``, and the pooled ``features`` the head
        reads out; mirror-averaged if set."""
        image = keras.Input((image_size, image_size, 3), name="image")
        x = self.lower(image) if self.lower is not None else image
        features = pool(self.upper(x))
        outputs = {**self.head(features), FEATURES: layers.Identity(name=FEATURES)(features)}
        if self.config.tta_flip:
            return mirror_averaged(keras.Model(image, outputs, name=f"{name}_core"), image_size, name)
        return keras.Model(image, outputs, name=name)


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


class Trainer:
    """The head's warm-up (``head_epochs``, upper blocks frozen), then fine-tuning of the upper
    blocks with early stopping on validation MAE, under ``strategy``; the best epoch's weights
    are kept. After every epoch the whole state (weights, both optimizers, the best weights, the
    epoch, the log) goes to ``checkpoints``, so a killed run resumes at the next epoch.
    """

    def __init__(
        self,
        net: AgeNet,
        strategy: tf.distribute.Strategy,
        train: Examples,
        val: Examples,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.net, self.strategy, self.train, self.val = net, strategy, train, val
        # several machines: a worker that dies must not leave the others waiting for good
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.watchdog = StallWatchdog(stall_seconds) if multi_worker else None
        cfg, replicas = net.config, strategy.num_replicas_in_sync
        # every replica takes an equal share of a batch: round the batch up to a multiple of them
        self.global_batch = -(-cfg.batch_size // replicas) * replicas
        self.steps_per_epoch = epoch_steps(len(train), self.global_batch)
        with strategy.scope():
            self.head_optimizer = keras.optimizers.AdamW(cfg.lr_head, weight_decay=cfg.weight_decay)
            self.tune_optimizer = keras.optimizers.AdamW(
                fine_tune_schedule(cfg, self.steps_per_epoch), weight_decay=cfg.weight_decay
            )
            # built now, so that a checkpoint can be restored into them before the first step
            net.set_upper_trainable(False)
            self.head_optimizer.build(net.train_model.trainable_variables)
            net.set_upper_trainable(True)
            self.tune_optimizer.build(net.train_model.trainable_variables)
        self.best_weights = [tf.Variable(np.asarray(w), trainable=False) for w in net.train_model.weights]
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.log = tf.Variable("{}", dtype=tf.string, trainable=False)  # JSON: history, early stopping
        self.state = tf.train.Checkpoint(
            variables=list(net.train_model.variables),  # the dropout's random state too
            best_weights=self.best_weights,
            head_optimizer=self.head_optimizer,
            tune_optimizer=self.tune_optimizer,
            epoch=self.epoch,
            log=self.log,
        )
        self._steps: dict[bool, Callable] = {}

    @property
    def digest(self) -> str:
        """What this worker trains: the params, the rows and shapes, the global batch. Workers must
        agree on it (one with other params would apply the shared gradients its own way)."""
        described = {
            "train": self.net.config.model_dump(),
            "rows": [len(self.train), len(self.val)],
            "inputs": [list(self.train.x.shape[1:]), str(self.train.x.dtype)],
            "global_batch": self.global_batch,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def fit(self, checkpoints: EpochCheckpoints | None = None, on_epoch: EpochLogger | None = None) -> float:
        """Train; returns the best validation MAE of fine-tuning. ``on_epoch(epoch, logs)`` sees
        every epoch's logs, those of epochs replayed from a checkpoint first."""
        cfg, on_epoch = self.net.config, on_epoch or (lambda epoch, logs: None)
        try:
            with self.watchdog or contextlib.nullcontext():
                self._resume(checkpoints, on_epoch)
                log = json.loads(self.log.numpy().decode())
                best = self._epochs(checkpoints, on_epoch, log, cfg.head_epochs + cfg.epochs)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as err:
            if self.watchdog is None:
                raise
            raise AgecheckError(
                f"another worker stopped ({one_line(err.message, 160)}): start the same command on every "
                "worker again; training resumes after the last saved epoch"
            ) from None
        if np.isfinite(best):
            self.net.train_model.set_weights([w.numpy() for w in self.best_weights])
        return best

    def _resume(self, checkpoints: EpochCheckpoints | None, on_epoch: EpochLogger) -> None:
        """Restore the latest epoch every worker saved, if any, and replay its log to ``on_epoch``."""
        saved = checkpoints.epochs() if checkpoints is not None else []
        start = self._common_epoch(max(saved, default=0))
        if checkpoints is None:
            return
        if start == 0:
            checkpoints.clear()  # nothing every worker can resume from: all start afresh
            return
        if start not in saved:  # a worker two epochs behind: only if checkpoints were moved around
            raise AgecheckError(
                f"the other workers resume after epoch {start}, which this one has not saved "
                f"(it has {saved}): remove models/train_checkpoint on every worker"
            )
        checkpoints.restore(self.state, start)
        print(f"train: resuming after epoch {start} from {checkpoints.directory}")
        for epoch, logs in enumerate(json.loads(self.log.numpy().decode()).get("history", [])):
            on_epoch(epoch, logs)

    def _epochs(
        self, checkpoints: EpochCheckpoints | None, on_epoch: EpochLogger, log: dict, total: int
    ) -> float:
        """The epochs still to run, from the state in ``log``; returns the best validation MAE."""
        cfg = self.net.config
        history: list[dict[str, float]] = log.get("history", [])
        best, wait = log.get("best", float("inf")), log.get("wait", 0)
        while int(self.epoch.numpy()) < total and not log.get("stopped", False):
            epoch = int(self.epoch.numpy())
            tuning = epoch >= cfg.head_epochs
            started = time.monotonic()
            logs = self._run_epoch(epoch, tuning)
            history.append(logs)
            on_epoch(epoch, logs)
            print(
                f"epoch {epoch + 1}/{total} ({'fine-tuning' if tuning else 'head'}): "
                + " ".join(f"{k} {v:.3f}" for k, v in logs.items())
                + f" ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            if tuning:
                if logs["val_mae"] < best:
                    best, wait = logs["val_mae"], 0
                    for kept, weight in zip(self.best_weights, self.net.train_model.weights, strict=True):
                        kept.assign(weight.value)
                else:
                    wait += 1
            log = {"history": history, "best": best, "wait": wait, "stopped": tuning and wait >= cfg.patience}
            self.log.assign(json.dumps(log))
            self.epoch.assign_add(1)
            if checkpoints is not None:
                checkpoints.save(self.state, epoch + 1)
        return best

    def _common_epoch(self, latest: int) -> int:
        """The epoch every worker can resume after: the smallest of their latest checkpoints (a
        worker that died before its last save is one behind; one with none starts all afresh).
        Stops when the workers do not train the same thing (:attr:`digest`)."""
        if self.strategy.num_replicas_in_sync == 1:
            return latest
        mine = int(self.digest[:15], 16)

        @tf.function
        def gathered() -> tf.Tensor:
            values = self.strategy.run(lambda: tf.constant([[latest, mine]], tf.int64))
            return self.strategy.gather(values, axis=0)

        table = gathered().numpy()
        if (table[:, 1] != mine).any():
            raise AgecheckError(
                "the workers do not train the same thing (params, training rows or batch differ): "
                "run every worker on the same commit, params.yaml and data"
            )
        return int(table[:, 0].min())

    def _run_epoch(self, epoch: int, tuning: bool) -> dict[str, float]:
        """One pass over the training rows, then the validation rows; metrics summed over replicas."""
        cfg = self.net.config
        self.net.set_upper_trainable(tuning)
        step = self._steps.get(tuning) or self._steps.setdefault(tuning, self._train_step(tuning))
        train = self.strategy.distribute_datasets_from_function(
            partial(epoch_batches, self.train, self.global_batch, seed=cfg.seed, epoch=epoch, flip=cfg.flip)
        )
        loss, errors, rows = self._sum(step, train)
        logs = {"loss": loss / self.steps_per_epoch, "mae": errors / rows}
        val = self.strategy.distribute_datasets_from_function(
            partial(epoch_batches, self.val, self.global_batch, seed=0, epoch=0, shuffle=False)
        )
        loss, errors, rows = self._sum(self._evaluate_step, val)
        return {**logs, "val_loss": loss / rows, "val_mae": errors / rows}

    def _sum(self, step: Callable, batches: tf.distribute.DistributedDataset) -> tuple[float, float, float]:
        totals = np.zeros(3)
        for batch in batches:
            totals += [float(t) for t in step(batch)]
            if self.watchdog is not None:
                self.watchdog.beat()
        return float(totals[0]), float(totals[1]), float(totals[2])

    def _train_step(self, tuning: bool) -> Callable:
        optimizer = self.tune_optimizer if tuning else self.head_optimizer
        model, variables = self.net.train_model, self.net.train_model.trainable_variables

        def replica_step(x, ages, weight, real):  # type: ignore[no-untyped-def]
            with tf.GradientTape() as tape:
                loss, error = self.net.losses(ages, model(x, training=True))
                total = tf.reduce_sum(weight * loss)
            optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
            return total, tf.reduce_sum(real * error), tf.reduce_sum(real)

        return tf.function(partial(self._across_replicas, replica_step))

    @tf.function
    def _evaluate_step(self, batch: tuple) -> tuple:
        def replica_step(x, ages, weight, real):  # type: ignore[no-untyped-def]
            loss, error = self.net.losses(ages, self.net.train_model(x, training=False))
            return tf.reduce_sum(real * loss), tf.reduce_sum(real * error), tf.reduce_sum(real)

        return self._across_replicas(replica_step, batch)

    def _across_replicas(self, replica_step: Callable, batch: tuple) -> tuple:
        sums = self.strategy.run(replica_step, args=batch)
        return tuple(self.strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in sums)
