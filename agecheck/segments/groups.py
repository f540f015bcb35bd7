"""The marketing age groups, and how the model moves customers between them.

The groups are ``segments.groups`` (their first ages); the customers under the first are a group of
their own, reported apart. The calibration file that travels with the model has the per-year
confusion matrix of the validation photos through the till (true age x estimated age, rounded):
grouped here into the counts of photos per (true group, estimated group), from which
P(estimated group | true group) comes, and which the bootstrap resamples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecheck.config import SegmentsConfig
from agecheck.errors import AgecheckError


@dataclass(frozen=True)
class Groups:
    """The age groups: under ``starts[0]`` (from ``min_age``), then one from each start."""

    starts: tuple[int, ...]
    min_age: int

    @classmethod
    def from_config(cls, config: SegmentsConfig) -> Groups:
        return cls(tuple(config.groups), config.min_age)

    @property
    def names(self) -> list[str]:
        """``under 18``, ``18-24``, ..., ``65+``."""
        ends = [f"{start}-{end - 1}" for start, end in zip(self.starts, self.starts[1:], strict=False)]
        return [f"under {self.starts[0]}", *ends, f"{self.starts[-1]}+"]

    def __len__(self) -> int:
        return len(self.starts) + 1

    def of_age(self, ages: np.ndarray) -> np.ndarray:
        """The group of each age (whole or not): 0 under the first start."""
        return np.searchsorted(np.asarray(self.starts, dtype=np.float64), ages, side="right")

    def of_estimate(self, estimates: np.ndarray) -> np.ndarray:
        """The group of each estimate, rounded to whole years as the calibration file's matrix is."""
        return self.of_age(np.rint(estimates))

    def of_years(self, width: int) -> np.ndarray:
        """Which group each whole year 0..width-1 of a softmax belongs to: width x groups, 0/1."""
        return np.eye(len(self), dtype=np.float32)[self.of_age(np.arange(width))]


@dataclass(frozen=True)
class Confusion:
    """Validation photos per true group (rows) and estimated group (columns), from ``source``."""

    counts: np.ndarray
    source: str

    def matrix(self) -> np.ndarray:
        """P(estimated group | true group), estimated groups in rows: each column adds up to 1."""
        return (self.counts / self.counts.sum(axis=1, keepdims=True)).T

    def resampled(self, rng: np.random.Generator) -> Confusion:
        """The counts of a resample of the validation photos: each true group's photos drawn again
        with replacement (a multinomial with the group's own count and shares)."""
        totals = self.counts.sum(axis=1)
        drawn = np.stack([rng.multinomial(n, row / n) for n, row in zip(totals, self.counts, strict=True)])
        return Confusion(drawn, self.source)

    def true_shares(self) -> np.ndarray:
        """The validation photos' own mix of true groups (the customers' may differ)."""
        totals = self.counts.sum(axis=1)
        return totals / totals.sum()


def _cells(path: Path) -> np.ndarray:
    """The calibration file's ``confusion.counts``: rows of [true age, estimated age, count]."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["confusion"]["counts"]
        table = np.asarray(cells, dtype=np.float64).reshape(-1, 3)
    except FileNotFoundError:
        raise AgecheckError(
            f"calibration file not found: {path} (stage calibrate writes it beside the model; "
            "or give --calibration)"
        ) from None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise AgecheckError(
            f"{path} has no usable confusion.counts ([true age, estimated age, count] rows: "
            f"{type(err).__name__}: {err})"
        ) from None
    if not len(table) or (table[:, 2] < 0).any() or not np.isfinite(table).all():
        raise AgecheckError(f"{path}: confusion.counts must be rows of [true age, estimated age, count >= 0]")
    return table


def read_confusion(path: Path, groups: Groups) -> Confusion:
    """The calibration file's matrix grouped into ``groups``; the photos under ``groups.min_age`` left
    out (children in the validation photos are not shoppers: their errors are not a teenager's). A
    true group without photos cannot be corrected: an error."""
    cells = _cells(path)
    cells = cells[cells[:, 0] >= groups.min_age]
    true, estimated = groups.of_age(cells[:, 0]), groups.of_age(cells[:, 1])
    counts = np.zeros((len(groups), len(groups)))
    np.add.at(counts, (true, estimated), cells[:, 2])
    empty = [name for name, n in zip(groups.names, counts.sum(axis=1), strict=True) if n == 0]
    if empty:
        raise AgecheckError(
            f"{path} has no validation photos aged {', '.join(empty)} (from {groups.min_age}): the model's "
            "errors there are unknown, so the shares cannot be corrected"
        )
    return Confusion(counts, str(path))
