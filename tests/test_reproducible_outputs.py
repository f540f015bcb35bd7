"""Outputs whose bytes depend only on their inputs, so a fresh clone's ``dvc repro`` reproduces the
committed ``dvc.lock``: the raw tars (whatever the photos' owner, times and permission bits) and the
``.keras`` files (whenever they are saved)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras

from agecheck.data.ingest import pack_source
from agecheck.model.saving import save_keras


def _source(folder: Path, mode: int, mtime: float) -> Path:
    (folder / "final_files").mkdir(parents=True)
    (folder / "labels.csv").write_text("file_name,real_age\na.jpg,30\nb.jpg,41\n")
    for name, data in (("b.jpg", b"\xff\xd8second"), ("a.jpg", b"\xff\xd8first")):
        (folder / "final_files" / name).write_bytes(data)
    for path in [folder / "labels.csv", *(folder / "final_files").iterdir()]:
        os.utime(path, (mtime, mtime))
        path.chmod(mode)
    return folder


def test_the_tar_of_a_source_ignores_permissions_times_and_listing_order(tmp_path: Path) -> None:
    writable = _source(tmp_path / "one", 0o664, 1_000_000)
    read_only = _source(tmp_path / "two", 0o444, 2_000_000)
    pack_source(writable, tmp_path / "one.tar")
    pack_source(read_only, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    (read_only / "final_files" / "a.jpg").chmod(0o644)
    (read_only / "final_files" / "a.jpg").write_bytes(b"\xff\xd8changed")
    pack_source(read_only, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() != (tmp_path / "two.tar").read_bytes()


def test_a_keras_file_saved_twice_has_the_same_bytes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    save_keras(model, tmp_path / "a.keras")
    time.sleep(1.1)  # Keras stamps saves to the second
    save_keras(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]  # no temporary left
    loaded = keras.saving.load_model(tmp_path / "a.keras")
    assert [w.tolist() for w in loaded.get_weights()] == [w.tolist() for w in model.get_weights()]
    model.layers[0].kernel.assign(model.layers[0].kernel + 1)
    save_keras(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() != (tmp_path / "b.keras").read_bytes()


SAVE_A_MIRRORED_MODEL = """
import sys
import keras
from agecheck.model.heads import age_head, mirror_averaged
from agecheck.model.saving import save_keras
keras.utils.set_random_seed(0)
image = keras.Input((8, 8, 3))
pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image))
core = keras.Model(image, age_head(pooled, "dex", 0.2))
save_keras(mirror_averaged(core, 8), __import__("pathlib").Path(sys.argv[1]))
"""


def test_two_processes_save_the_same_model_with_the_same_bytes(tmp_path: Path) -> None:
    """Keras names shared objects (a nested model used twice shares its layers' dtype policies) by
    their memory address, which differs from process to process."""
    import subprocess
    import sys

    import numpy as np

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    paths = [tmp_path / "a.keras", tmp_path / "b.keras"]
    for path in paths:
        subprocess.run([sys.executable, "-c", SAVE_A_MIRRORED_MODEL, str(path)], env=env, check=True)
    assert b'"shared_object_id"' in __import__("zipfile").ZipFile(paths[0]).read("config.json")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    import agecheck.model.heads  # noqa: F401 - registers the custom layers

    model = keras.saving.load_model(paths[0])
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    assert np.isfinite(model.predict_on_batch(images)["age"]).all()
