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
