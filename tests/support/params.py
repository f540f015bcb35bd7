"""The project's own ``params.yaml``, read once, for tests that need a section of it."""

from __future__ import annotations

from typing import Any, TypeVar

from agecheck.config import DEFAULT_PARAMS, TrainConfig, load_params

PARAMS = load_params(DEFAULT_PARAMS)
T = TypeVar("T")


def train_config(**changes: Any) -> TrainConfig:
    """The ``train`` params with ``changes``."""
    return changed(PARAMS.train, **changes)


def changed(section: T, **changes: Any) -> T:
    """A copy of a params section with ``changes``, validated like the file itself."""
    return type(section).model_validate({**section.model_dump(), **changes})
