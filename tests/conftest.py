"""The ``e2e`` marker, and the tiny saved models every test module shares (built once per run)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tiny_models import save_dex_model, save_regression_model


def pytest_configure(config: pytest.Config) -> None:
    """Registered here, not in pyproject.toml, so ``-m "not e2e"`` (the quick loop) works unwarned."""
    config.addinivalue_line(
        "markers",
        "e2e: end to end: a real dvc repro, clone, server or worker processes (minutes); "
        'deselect with -m "not e2e"',
    )


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _shared(path: Path) -> Iterator[Path]:
    """Hand out a saved model; on leaving, check that no test changed its files (they are shared)."""
    before = _digests(path.parent)
    yield path
    assert _digests(path.parent) == before, f"a test changed the shared {path.name}: give it its own copy"


@pytest.fixture(scope="session")
def dex_model_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A random DEX model (age and age_probs, mirror-averaged), 32 px, from ``save_dex_model``: saving
    a Keras model costs seconds, so once per run, for every module."""
    yield from _shared(save_dex_model(tmp_path_factory.mktemp("tiny_dex") / "dex.keras"))


@pytest.fixture(scope="session")
def regression_model_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Age = 10 + 20 x the sum of the mean channel brightness (0..1 each), val_mae 4.5, 32 px, from
    ``save_regression_model``; once per run."""
    yield from _shared(save_regression_model(tmp_path_factory.mktemp("tiny_regression") / "regression.keras"))
