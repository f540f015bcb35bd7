"""dlib's face-recognition ResNet as a Keras 3 model, with the weights of its ``.dat`` file.

dlib's output is the raw 128-d ``fc_no_bias`` output: its ``loss_metric`` does not L2-normalise it.
For age estimation the registry uses the network up to its last residual block (a 256-channel map).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
from keras import layers

from agecheck.model.backbones.dlib_format import (
    BLOCKS,
    DLIB_INPUT_SCALE,
    DLIB_RGB_MEAN,
    EMBEDDING_DIM,
    EMBEDDING_NAME,
    DlibResnetWeights,
    read_dlib_weights,
)

Tensor = keras.KerasTensor

WEIGHTS_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"


def block_output_layer_name(i: int) -> str:
    """Name of the layer whose output is the output of residual block ``i`` (0-based, as our backbones)."""
    return f"block{i}_out"


STEM_OUTPUT_NAME = "stem_out"
#: Output layers of the 14 residual blocks, in order: cut after one to freeze the part below it.
BLOCK_OUTPUT_NAMES = tuple(block_output_layer_name(i) for i in range(len(BLOCKS)))
#: Output layers of dlib's five stages alevel4, alevel3, alevel2, alevel1, alevel0 (last block of each).
STAGE_OUTPUT_NAMES = tuple(block_output_layer_name(i) for i in (2, 6, 9, 12, 13))
#: The 256-d globally average-pooled features that feed the 128-d fc (a good place for a new head).
POOLED_FEATURES_NAME = "pooled"


def _max_dim(p, q):  # type: ignore[no-untyped-def]
    """max of two dims that are ints when static and tensors when not (keeps static shapes static)."""
    return max(p, q) if isinstance(p, int) and isinstance(q, int) else keras.ops.maximum(p, q)


@keras.saving.register_keras_serializable(package="agecheck")
class ChannelAffine(layers.Layer):
    """dlib's ``affine`` layer: per-channel ``x * gamma + beta`` (batch norm frozen into scale and shift).

    Kept as its own layer rather than folded into the conv so the converted weights map 1:1 onto dlib's.
    """

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):  # type: ignore[no-untyped-def]
        return x * self.gamma + self.beta


@keras.saving.register_keras_serializable(package="agecheck")
class ZeroPadAdd(layers.Layer):
    """dlib's ``add_prev``: sums two NHWC tensors whose shapes may differ.

    dlib's ``tt::add`` makes the output as large as the larger input in every dimension and treats missing
    elements as 0, aligned at index 0 (padding at the bottom, right and last channels). In this network that
    happens at every down-sampling block: the shortcut has fewer channels, and at 8x8 -> 4x4 and 4x4 -> 2x2
    the strided 3x3 conv (no padding) gives 3x3 and 1x1 where the 2x2 average pool gives 4x4 and 2x2.
    """

    def call(self, inputs):  # type: ignore[no-untyped-def]
        a, b = inputs
        sa, sb = keras.ops.shape(a), keras.ops.shape(b)
        size = [_max_dim(sa[i], sb[i]) for i in (1, 2, 3)]
        return self._pad(a, sa, size) + self._pad(b, sb, size)

    @staticmethod
    def _pad(x, shape, size):  # type: ignore[no-untyped-def]
        widths = [size[i - 1] - shape[i] for i in (1, 2, 3)]
        if all(isinstance(w, int) and w == 0 for w in widths):
            return x  # static and equal: a plain add
        return keras.ops.pad(x, [[0, 0]] + [[0, w] for w in widths])

    def compute_output_shape(self, input_shape):  # type: ignore[no-untyped-def]
        a, b = input_shape
        dims = [None if x is None or y is None else max(x, y) for x, y in zip(a[1:], b[1:], strict=True)]
        return (a[0], *dims)


def _conv_affine(x: Tensor, filters: int, kernel: int, stride: int, name: str) -> Tensor:
    # dlib's con pads kernel//2 at stride 1 and nothing at stride 2: Keras' 'same' and 'valid' here.
    padding = "same" if stride == 1 else "valid"
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=f"{name}_conv")(x)
    return ChannelAffine(name=f"{name}_affine")(x)


def _residual_block(x: Tensor, filters: int, down: bool, i: int) -> Tensor:
    shortcut = x
    y = _conv_affine(x, filters, 3, 2 if down else 1, f"block{i}_a")
    y = layers.ReLU(name=f"block{i}_a_relu")(y)
    y = _conv_affine(y, filters, 3, 1, f"block{i}_b")
    if down:  # residual_down: the shortcut is a 2x2/2 average pool of the block's input
        shortcut = layers.AveragePooling2D(2, 2, padding="valid", name=f"block{i}_pool")(shortcut)
    y = ZeroPadAdd(name=f"block{i}_add")([y, shortcut])
    return layers.ReLU(name=block_output_layer_name(i))(y)


def build_dlib_resnet(
    weights: DlibResnetWeights | str | Path | None = None,
    name: str = "dlib_resnet",
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
) -> keras.Model:
    """dlib's face ResNet: float RGB 0..255 images in, dlib's raw 128-d descriptor out.

    ``weights``: a parsed file, a path to the ``.dat``, or None for Keras' random init. dlib ran it on
    150x150 aligned chips (``dlib.get_face_chip``); other sizes work from 103 px up (below that the strided
    3x3 convs, which do not pad, run out of pixels).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(
        1.0 / DLIB_INPUT_SCALE, offset=[-m / DLIB_INPUT_SCALE for m in DLIB_RGB_MEAN], name="dlib_normalize"
    )(inputs)
    x = _conv_affine(x, 32, 7, 2, "stem")
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, 2, padding="valid", name=STEM_OUTPUT_NAME)(x)
    for i, (filters, down) in enumerate(BLOCKS):
        x = _residual_block(x, filters, down, i)
    x = layers.GlobalAveragePooling2D(name=POOLED_FEATURES_NAME)(x)
    outputs = layers.Dense(EMBEDDING_DIM, use_bias=False, name=EMBEDDING_NAME)(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_dlib_weights(model, weights)
    return model


def load_dlib_weights(model: keras.Model, weights: DlibResnetWeights | str | Path) -> None:
    """Copies dlib's weights into a model from :func:`build_dlib_resnet`, checking every name and shape."""
    if not isinstance(weights, DlibResnetWeights):
        weights = read_dlib_weights(weights)
    expected = {layer.name for layer in model.layers if layer.weights}
    if set(weights.layers) != expected:
        missing, extra = sorted(expected - set(weights.layers)), sorted(set(weights.layers) - expected)
        raise ValueError(f"dlib weights do not fit the model: missing {missing}, unexpected {extra}")
    for layer_name, arrays in weights.layers.items():
        model.get_layer(layer_name).set_weights(arrays)


def weights_file() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` inside the installed ``face_recognition_models``.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which new setuptools
    no longer has.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "face_recognition_models is not installed: pip install face-recognition-models==0.3.0 "
            f"(a 100 MB pure-data sdist that ships {WEIGHTS_FILENAME})"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / WEIGHTS_FILENAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"face_recognition_models is installed but has no models/{WEIGHTS_FILENAME}")


def build_dlib_backbone(pretrained: bool = True, weights_path: str = "") -> keras.Model:
    """The face ResNet up to its last residual block (2x2x256 at 150 px): the age model's backbone.

    Weights from ``weights_path`` or the installed ``face-recognition-models``; random if not pretrained.
    """
    weights = (weights_path or weights_file()) if pretrained else None
    full = build_dlib_resnet(weights)
    return keras.Model(full.input, full.get_layer(BLOCK_OUTPUT_NAMES[-1]).output, name="dlib_resnet")
