"""Pretrained backbones by name, and cutting them into a frozen lower and a trainable upper part.

Every backbone takes float RGB 0..255 (any square size) and does its own input normalization.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from agecheck.backbones import efficientnet_lite as lite
from agecheck.errors import AgecheckError
from agecheck.torch_legacy import load_legacy_state_dict

RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
#: Output layers of ResNet50's 16 bottleneck blocks, in order.
RESNET50_BLOCKS = tuple(
    f"conv{stage}_block{b}_out" for stage, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)
)
BACKBONES = (*lite.VARIANTS, "resnet50")


@keras.saving.register_keras_serializable(package="agecheck")
class CaffePreprocess(layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet means (what Keras' ResNet50 weights expect)."""

    def call(self, x):  # type: ignore[no-untyped-def]
        return x[..., ::-1] - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _resnet50(pretrained: bool, weights_path: str) -> keras.Model:
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


def build_backbone(name: str, pretrained: bool = True, weights_path: str = "") -> keras.Model:
    """The backbone ``name`` without classifier, input (None, None, 3); random init if not pretrained."""
    if name == "resnet50":
        return _resnet50(pretrained, weights_path)
    if name not in lite.VARIANTS:
        raise AgecheckError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    state = None
    if pretrained:
        try:
            state = load_legacy_state_dict(weights_path) if weights_path else lite.pretrained_state_dict(name)
        except (ImportError, ValueError, OSError) as err:
            raise AgecheckError(f"cannot read {name} weights: {err}") from None
    return lite.build_efficientnet_lite(name, (None, None, 3), state_dict=state, name=name)


def block_names(model: keras.Model) -> tuple[str, ...]:
    """The names of the layers that end each block, in order."""
    if model.name == "resnet50":
        return RESNET50_BLOCKS
    return tuple(lite.block_output_layer_name(i) for i in range(lite.num_blocks(model.name)))


def split_backbone(model: keras.Model, cut_block: int) -> tuple[keras.Model | None, keras.Model]:
    """(lower, upper): lower runs the blocks 0..cut_block, upper the rest (sharing layers).

    ``cut_block`` -1 means nothing is frozen: lower is None and upper is the whole model.
    """
    if cut_block < 0:
        return None, model
    names = block_names(model)
    if cut_block >= len(names) - 1:
        raise AgecheckError(f"model.cut_block must be below {len(names) - 1} for {model.name}")
    cut = model.get_layer(names[cut_block]).output
    return keras.Model(model.input, cut, name="frozen_lower"), keras.Model(cut, model.output, name="upper")
