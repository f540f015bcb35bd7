"""``scripts/exp_links.py``: a relative photo folder outside the repository (``../shared/...``) reaches
the same folder from DVC's experiment copies (``.dvc/tmp/exps/standalone/<tmp>/``: ``--temp`` and
``--dry``; ``.dvc/tmp/exps/<tmp>/``: ``--queue``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "exp_links.py"
spec = importlib.util.spec_from_file_location("exp_links", SCRIPT)
assert spec is not None and spec.loader is not None
exp_links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exp_links)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A repository beside a photo folder, as the checkout and ``../shared/datasets`` here."""
    (tmp_path / "shared" / "datasets" / "utkface" / "final_files").mkdir(parents=True)
    (tmp_path / "shared" / "datasets" / "utkface" / "labels.csv").write_text("file_name,real_age\n")
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


def test_the_relative_path_reaches_the_folder_from_every_copy(layout: Path) -> None:
    source = "../shared/datasets/utkface"
    made = exp_links.make_links(layout, [source, "", "/abs/photos", "data/in_repo"])
    assert sorted(p.relative_to(layout).as_posix() for p in made) == [
        ".dvc/tmp/exps/shared",
        ".dvc/tmp/exps/standalone/shared",
    ]
    for copy in (layout / ".dvc/tmp/exps/standalone/tmpabc", layout / ".dvc/tmp/exps/tmpxyz"):
        copy.mkdir(parents=True)
        assert os.path.samefile(copy / source / "labels.csv", layout / source / "labels.csv")
    # relative links: the repository and its neighbour can move together
    assert not any(os.path.isabs(os.readlink(p)) for p in made)
    assert exp_links.make_links(layout, [source]) == made  # idempotent


def test_deeper_paths_and_what_needs_no_link(layout: Path) -> None:
    links = exp_links.planned_links(layout, ["../../elsewhere/photos", "./data/x", "", "/abs"])
    assert {p.relative_to(layout).as_posix(): t for p, t in links.items()} == {
        ".dvc/tmp/exps/elsewhere": "../../../../../elsewhere",  # standalone: ../.. from <tmp> is exps/
        ".dvc/tmp/elsewhere": "../../../../elsewhere",  # queue: ../.. from <tmp> is .dvc/tmp/
    }
    assert exp_links.planned_links(layout, ["../../../../../../far"]) == {}  # would leave the repo


def test_something_else_in_the_way_is_an_error(layout: Path) -> None:
    (layout / ".dvc/tmp/exps/standalone/shared").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a link"):
        exp_links.make_links(layout, ["../shared/datasets/utkface"])
