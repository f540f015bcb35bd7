"""dlib's serialization of its face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

The weights are plain little-endian float32 tensors inside dlib's own stream format; this module reads
them with numpy, checking the architecture as it goes, so neither dlib nor torch is needed. The ``.dat``
ships (CC0) inside the pure-data PyPI package ``face-recognition-models``. The network is the
``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``:

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: dlib's ``input_rgb_image`` mean per channel (R, G, B); it then divides by 256 (not by a std).
DLIB_RGB_MEAN = (122.782, 117.001, 104.298)
DLIB_INPUT_SCALE = 256.0
EMBEDDING_DIM = 128

#: (filters, downsamples) of the 14 residual blocks, input to output (dlib's alevel4 .. alevel0).
BLOCKS: tuple[tuple[int, bool], ...] = (
    *((32, False),) * 3,
    (64, True),
    *((64, False),) * 3,
    (128, True),
    *((128, False),) * 2,
    (256, True),
    *((256, False),) * 2,
    (256, True),
)
EMBEDDING_NAME = "embedding"


@dataclass
class DlibResnetWeights:
    """The parsed ``.dat``: Keras-layout float32 arrays per Keras layer name, in network order."""

    layers: dict[str, list[np.ndarray]]
    rgb_mean: tuple[float, float, float]
    input_size: tuple[int, int]
    loss: dict[str, float] = field(default_factory=dict)
    #: The dlib version tag of every serialized layer object seen (``con_4``, ``affine_`` ...), for reports.
    formats: dict[str, int] = field(default_factory=dict)

    @property
    def num_weights(self) -> int:
        """Number of float weights (conv kernels and biases, affine scales and shifts, fc matrix)."""
        return sum(a.size for arrays in self.layers.values() for a in arrays)


class _Reader:
    """A cursor over dlib's stream: packed ints, '0'/'1' bools, float_details and LE float32 tensors."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"dlib file truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        # dlib's pack_int: a control byte (0x80 negative, low nibble byte count), then little-endian bytes.
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise ValueError(f"bad dlib integer control byte {ctrl:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def expect_int(self, expected: int | tuple[int, ...], what: str) -> int:
        value = self.int()
        if value not in (expected if isinstance(expected, tuple) else (expected,)):
            raise ValueError(f"{what}: expected {expected}, found {value} (byte {self.pos})")
        return value

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise ValueError(f"bad dlib bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def str(self) -> str:
        return self._take(self.int()).decode("ascii")

    def float(self) -> float:
        # float_details: int64 mantissa and int16 exponent, value = mantissa * 2**exponent.
        mantissa, exponent = self.int(), self.int()
        specials = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        return specials[exponent] if exponent in specials else float(np.ldexp(float(mantissa), exponent))

    def tensor(self) -> np.ndarray:
        self.expect_int(2, "tensor version")
        shape = tuple(self.int() for _ in range(4))  # num_samples, k, nr, nc
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self) -> tuple[int, ...]:
        self.expect_int(1, "alias_tensor version")
        return tuple(self.int() for _ in range(4))


@dataclass(frozen=True)
class _Layer:
    """One object in dlib's nested type, innermost first; ``name`` is the Keras layer for weighted ones."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip
    name: str = ""
    filters: int = 0
    kernel: int = 0
    stride: int = 1


def _dlib_layers() -> list[_Layer]:
    """dlib's ``anet_type`` above the input layer, innermost (input side) first."""
    plan = [
        _Layer("con", "stem_conv", 32, 7, 2),
        _Layer("affine", "stem_affine"),
        _Layer("relu"),
        _Layer("max_pool", kernel=3, stride=2),
    ]
    for i, (filters, down) in enumerate(BLOCKS):
        plan += [
            _Layer("tag"),
            _Layer("con", f"block{i}_a_conv", filters, 3, 2 if down else 1),
            _Layer("affine", f"block{i}_a_affine"),
            _Layer("relu"),
            _Layer("con", f"block{i}_b_conv", filters, 3, 1),
            _Layer("affine", f"block{i}_b_affine"),
        ]
        if down:  # add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<...>>>>>
            plan += [_Layer("tag"), _Layer("skip"), _Layer("avg_pool", kernel=2, stride=2)]
        plan += [_Layer("add_prev"), _Layer("relu")]
    plan += [_Layer("avg_pool", kernel=0, stride=1), _Layer("fc", EMBEDDING_NAME, EMBEDDING_DIM)]
    return plan


def _read_con(r: _Reader, version: str, spec: _Layer, out: DlibResnetWeights) -> None:
    params = r.tensor().ravel()
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
    pad = spec.kernel // 2 if spec.stride == 1 else 0  # dlib's default con padding
    found = (num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x)
    if found != (spec.filters, spec.kernel, spec.kernel, spec.stride, spec.stride, pad, pad):
        raise ValueError(f"{spec.name}: unexpected con geometry {found}")
    filters = r.alias_tensor()  # (num_filters, k, nr, nc)
    r.alias_tensor()  # biases, (1, num_filters) or empty
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    use_bias = r.bool() if version in ("con_5", "con_6") else True
    if version == "con_6" and r.bool():
        raise ValueError(f"{spec.name}: a con with fused relu is not expected in this network")
    n_filt = int(np.prod(filters))
    if filters[0] != num_filters or params.size != n_filt + (num_filters if use_bias else 0):
        raise ValueError(f"{spec.name}: params size {params.size} does not fit filters {filters}")
    kernel = params[:n_filt].reshape(filters).transpose(2, 3, 1, 0)  # dlib OIHW -> Keras HWIO
    bias = params[n_filt:] if use_bias else np.zeros(num_filters, np.float32)
    out.layers[spec.name] = [np.ascontiguousarray(kernel), bias.copy()]


def _read_affine(r: _Reader, version: str, spec: _Layer, out: DlibResnetWeights) -> None:
    params = r.tensor().ravel()
    gamma_shape = r.alias_tensor()
    r.alias_tensor()  # beta has gamma's shape
    if version.startswith("bn_"):  # a batch-norm layer read as affine: fold running stats like dlib does
        for _ in range(2):  # means, invstds of the last mini-batch
            r.tensor()
        running_mean, running_var = r.tensor().ravel(), r.tensor().ravel()
        r.int()  # num_updates
        r.int()  # running_stats_window_size
        for _ in range(4):
            r.float()
        eps = r.float()
        n = int(np.prod(gamma_shape))
        gamma = params[:n] / np.sqrt(running_var + np.float32(eps))
        beta = params[n:] - gamma * running_mean
        out.layers[spec.name] = [gamma.astype(np.float32), beta.astype(np.float32)]
        return
    mode = r.int()
    if version == "affine_2" and r.bool():
        raise ValueError(f"{spec.name}: disabled affine layers are not expected")
    n = int(np.prod(gamma_shape))
    if mode != 0 or gamma_shape != (1, n, 1, 1) or params.size != 2 * n:
        raise ValueError(f"{spec.name}: expected a CONV_MODE affine, found mode {mode} shape {gamma_shape}")
    out.layers[spec.name] = [params[:n].copy(), params[n:].copy()]


def _read_pool(r: _Reader, spec: _Layer) -> None:
    found = tuple(r.int() for _ in range(6))  # nr, nc, stride_y, stride_x, padding_y, padding_x
    pad = spec.kernel // 2 if spec.stride == 1 else 0
    if found != (spec.kernel, spec.kernel, spec.stride, spec.stride, pad, pad):
        raise ValueError(f"unexpected pooling geometry {found}")


def _read_fc(r: _Reader, version: str, spec: _Layer, out: DlibResnetWeights) -> None:
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().ravel()
    weights, _ = r.alias_tensor(), r.alias_tensor()
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    if version == "fc_3":
        r.bool()  # use_bias
    if bias_mode != 1 or num_outputs != spec.filters or params.size != num_inputs * num_outputs:
        raise ValueError(f"expected fc_no_bias<{spec.filters}>, found {num_outputs} outputs mode {bias_mode}")
    # dlib computes x @ W with W of shape (num_inputs, num_outputs): Keras' Dense kernel layout.
    out.layers[spec.name] = [params.reshape(weights[0], weights[1]).copy()]


_DETAIL_VERSIONS = {
    "con": ("con_4", "con_5", "con_6"),
    "affine": ("affine_", "affine_2", "bn_con2"),
    "relu": ("relu_", "relu_2"),
    "max_pool": ("max_pool_2",),
    "avg_pool": ("avg_pool_2",),
    "add_prev": ("add_prev_",),
    "fc": ("fc_2", "fc_3"),
}


def _read_details(r: _Reader, spec: _Layer, out: DlibResnetWeights) -> None:
    version = r.str()
    if version not in _DETAIL_VERSIONS[spec.kind]:
        raise ValueError(f"expected a dlib {spec.kind} layer, found {version!r} at byte {r.pos}")
    out.formats[version] = out.formats.get(version, 0) + 1
    if spec.kind == "con":
        _read_con(r, version, spec, out)
    elif spec.kind == "affine":
        _read_affine(r, version, spec, out)
    elif spec.kind == "relu" and version == "relu_2" and r.bool():
        raise ValueError("disabled relu layers are not expected")
    elif spec.kind in ("max_pool", "avg_pool"):
        _read_pool(r, spec)
    elif spec.kind == "fc":
        _read_fc(r, version, spec, out)


def _read_layer_state(r: _Reader) -> None:
    # add_layer's bookkeeping after the details: 3 flags and x_grad, cached_output (empty in a clean net).
    for _ in range(3):
        r.bool()
    for _ in range(2):
        r.tensor()


def read_dlib_weights(path: str | Path) -> DlibResnetWeights:
    """Parses dlib's serialized ``anet_type`` (the ``.dat``) into float32 arrays per Keras layer name.

    dlib writes a network recursively, outermost layer first: every wrapper writes its version number, then
    its sub-network, then its own details. So the file is: the loss layer, a run of version numbers down to
    the input, then the input layer and every layer's details from the input side up. The parser walks the
    known architecture and checks every version tag and geometry, then that the whole file was consumed.
    """
    r = _Reader(Path(path).read_bytes())
    out = DlibResnetWeights(layers={}, rgb_mean=(0.0, 0.0, 0.0), input_size=(0, 0))
    r.expect_int(1, "add_loss_layer version")
    loss_version = r.str()
    if loss_version == "loss_metric_2":
        out.loss = {"margin": r.float(), "distance_threshold": r.float()}
    elif loss_version != "loss_metric_":
        raise ValueError(f"expected dlib's loss_metric, found {loss_version!r}: not the face ResNet file?")
    plan = _dlib_layers()
    wrapper_versions = []
    for spec in reversed(plan[1:]):  # outermost first
        is_add_layer = spec.kind not in ("tag", "skip")
        wrapper_versions.append(r.expect_int((1, 2) if is_add_layer else 1, f"{spec.kind} wrapper version"))
    bottom_version = r.expect_int((2, 3), "input add_layer version")
    if r.str() != "input_rgb_image_sized":
        raise ValueError("expected dlib's input_rgb_image_sized")
    out.rgb_mean = (r.float(), r.float(), r.float())
    out.input_size = (r.int(), r.int())
    _read_details(r, plan[0], out)
    _read_layer_state(r)
    r.tensor()  # grad_final
    if bottom_version >= 3:
        r.int()  # sample_expansion_factor
    for spec, version in zip(plan[1:], reversed(wrapper_versions), strict=True):
        if spec.kind in ("tag", "skip"):
            continue
        _read_details(r, spec, out)
        _read_layer_state(r)
        if version == 2:
            r.tensor()  # params_grad
    if r.pos != len(r.data):
        raise ValueError(f"{len(r.data) - r.pos} unread bytes after the network")
    return out
