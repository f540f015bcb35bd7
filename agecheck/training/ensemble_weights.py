"""Choosing the members' weights in the ensemble: the mix with the lowest validation MAE."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

import numpy as np

#: Weights are multiples of 1 / STEPS (0.05): fine enough for two or three members, 231 mixes for three.
STEPS = 20


def simplex_grid(members: int, steps: int = STEPS) -> Iterator[tuple[float, ...]]:
    """Every mix of ``members`` non-negative weights in multiples of 1/``steps`` adding up to 1."""
    for bars in combinations(range(steps + members - 1), members - 1):
        edges = (-1, *bars, steps + members - 1)
        yield tuple((b - a - 1) / steps for a, b in zip(edges, edges[1:], strict=False))


def expected_ages(outputs: np.ndarray) -> np.ndarray:
    """Ages from a member's outputs: expected values of softmaxes (N x K) or the ages (N)."""
    return outputs @ np.arange(outputs.shape[1]) if outputs.ndim == 2 else outputs


def choose_weights(outputs: Sequence[np.ndarray], ages: np.ndarray) -> tuple[tuple[float, ...], float]:
    """(weights, MAE) of the mix of the members' ``outputs`` on the same photos with the lowest MAE
    against ``ages``; ties go to the first mix found (the grid lists the first member's weight last)."""
    member_ages = np.stack([expected_ages(np.asarray(o, dtype=np.float64)) for o in outputs])
    best: tuple[tuple[float, ...], float] | None = None
    for weights in simplex_grid(len(outputs)):
        mae = float(np.mean(np.abs(np.asarray(weights) @ member_ages - ages)))
        if best is None or mae < best[1] - 1e-12:
            best = (weights, mae)
    assert best is not None
    return best
