"""Pretrained backbones by name, and cutting them into a frozen lower and a trainable upper part.

Every backbone takes float RGB 0..255 (any square size) and does its own input normalization.
"""

from __future__ import annotations

import keras

from agecheck.errors import AgecheckError, one_line
from agecheck.model.backbones import dlib_resnet, faceres
from agecheck.model.backbones import efficientnet_lite as lite
from agecheck.model.backbones.resnet50 import RESNET50_BLOCKS, build_resnet50
from agecheck.model.backbones.torch_legacy import load_legacy_state_dict

BACKBONES = (*lite.VARIANTS, "resnet50", "dlib_resnet", "faceres")


def build_backbone(name: str, pretrained: bool = True, weights_path: str = "") -> keras.Model:
    """The backbone ``name`` without classifier, input (None, None, 3); random init if not pretrained."""
    if name == "resnet50":
        return build_resnet50(pretrained, weights_path)
    if name == "dlib_resnet":
        try:
            return dlib_resnet.build_dlib_backbone(pretrained, weights_path)
        except (ValueError, OSError) as err:  # FileNotFoundError included
            raise AgecheckError(f"cannot read dlib_resnet weights: {err}") from None
    if name == "faceres":  # HSE's float32 "deep" weights; cut_block 14 = after the pooled 1024-d vector
        try:
            return faceres.build_faceres("faceres_deep", pretrained, (None, None, 3), weights_path)
        except (ValueError, KeyError, OSError) as err:
            raise AgecheckError(f"cannot read faceres weights: {one_line(err, 300)}") from None
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
    if model.name == "dlib_resnet":
        return dlib_resnet.BLOCK_OUTPUT_NAMES
    if model.name in faceres.VARIANTS:
        return faceres.BLOCK_OUTPUT_NAMES
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
