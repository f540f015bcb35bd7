"""ResNet50 from Keras applications, with its ImageNet weights from Keras' cache or a given file.

No reachable source here has the weights: the builder stops with a clear message instead of
falling back to random weights (Keras would try to download them).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from agecheck.errors import AgecheckError

RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
#: Output layers of ResNet50's 16 bottleneck blocks, in order.
RESNET50_BLOCKS = tuple(
    f"conv{stage}_block{b}_out" for stage, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)
)


@keras.saving.register_keras_serializable(package="agecheck")
class CaffePreprocess(layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet means (what Keras' ResNet50 weights expect)."""

    def call(self, x):  # type: ignore[no-untyped-def]
        return x[..., ::-1] - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def build_resnet50(pretrained: bool, weights_path: str) -> keras.Model:
    weights: str | None = None
    if pretrained:
        weights = weights_path or str(keras_cache_dir() / RESNET50_FILE)
        if not Path(weights).is_file():
            raise AgecheckError(
                f"ResNet50 ImageNet weights not found at {weights}: put {RESNET50_FILE} "
                f"(md5 {RESNET50_MD5}) in {keras_cache_dir()}/ or set model.weights_path in params.yaml"
            )
        if not weights_path:
            weights = "imagenet"  # Keras finds the cached file and checks its md5
    inputs = keras.Input((None, None, 3), name="image")
    x = CaffePreprocess(name="caffe_preprocess")(inputs)
    base = keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=x)
    return keras.Model(inputs, base.output, name="resnet50")
