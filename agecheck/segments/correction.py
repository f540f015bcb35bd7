"""Undo the model's pull to the middle: from counts by estimated group to counts by true group.

Each sale's customer is in a true group t and the till puts them in an estimated group e with
P(e | t), the validation photos' confusion matrix M. So the expected count of sales in estimated
group e is sum_t M[e, t] N[t]: the observed counts are the true counts mixed through M. The same
holds for the sales that contain a category and for those that do not, when the model errs on a
buyer of the category as on anyone of the same true group (the assumption the correction rests on:
docs/segments.md).

Why not solve M x = observed (``numpy.linalg.solve``, or ``scipy.optimize.nnls`` to keep x >= 0):
M comes from about two thousand validation photos, and 18-24-year-olds are estimated 25-34 more
often than 18-24, so M is nearly singular there and its sampling noise comes out of the solution
several times larger (measured in docs/segments.md: the exact solution's errors were often larger
than no correction at all). The counts are unmixed instead by the EM algorithm of the Poisson
likelihood (iterative Bayesian unfolding, Richardson-Lucy), started from equal counts in every true
group and stopped after ``segments.iterations`` steps: a few steps undo most of the pull, and
stopping before convergence (convergence is the maximum-likelihood solution, as noisy as solving)
keeps the noise down. Every step keeps the counts non-negative and their total.
"""

from __future__ import annotations

import numpy as np


def unmix(matrix: np.ndarray, observed: np.ndarray, iterations: int) -> np.ndarray:
    """True counts (groups x K, >= 0) whose mixture through ``matrix`` (P(estimated | true), estimated
    groups in rows) explains ``observed`` (estimated groups x K), column by column: ``iterations`` EM
    steps from equal counts per true group."""
    groups = matrix.shape[1]
    counts = np.repeat(observed.sum(axis=0, keepdims=True) / groups, groups, axis=0)
    for _ in range(iterations):
        expected = matrix @ counts
        ratio = np.divide(observed, expected, out=np.zeros_like(counts[: len(matrix)]), where=expected > 0)
        counts = counts * (matrix.T @ ratio)
    return counts


def corrected(
    matrix: np.ndarray, sizes: np.ndarray, bought: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sales per true group and each group's purchase rates (categories x groups), from the sales
    per estimated group and, per category, those that contain it. A rate is the group's corrected
    count of sales with the category over that count plus the corrected count of sales without it:
    both unmixed the same way, so the rate stays within 0..1."""
    observed = np.column_stack([sizes, bought.T, (sizes[:, None] - bought.T)])
    solved = unmix(matrix, observed.astype(np.float64), iterations)
    categories = len(bought)
    with_it, without = solved[:, 1 : 1 + categories].T, solved[:, 1 + categories :].T
    return solved[:, 0], rates(with_it + without, with_it)


def rates(sizes: np.ndarray, bought: np.ndarray) -> np.ndarray:
    """The share of each group's sales that contain each category (``[..., categories, groups]``; NaN
    for an empty group)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, bought / sizes, np.nan)
