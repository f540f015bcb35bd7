"""Group shares and purchase rates, and how sure they are: a bootstrap over customers.

A customer can be behind several sales (one photo, one loyalty card), and the model's error on that
customer is the same in all of them: the customers are what is resampled, with replacement, and
their sales go along. The validation photos behind the correction are resampled too (per true
group), so the intervals include what the model's measured errors are unsure of.

Speed: every count the profiles need is linear in the customers' weights. Each customer's counts
(sales per group, sales per group and category; by the estimate, the summed softmax and, in a
simulation, the truth) are one sparse row, built once; a batch of resamples is then one product of
that matrix with the customers' multiplicities (``numpy.bincount`` of the drawn indices).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from agecheck.segments.correction import corrected, rates
from agecheck.segments.groups import Confusion

#: How a sale's group is known: the group of its estimate, its softmax spread over the groups, the
#: estimate's counts corrected through the confusion matrix, and (simulations only) the truth.
ESTIMATE, SOFTMAX, CORRECTED, TRUE = "estimate", "softmax", "corrected", "true"
#: Resamples drawn at once (the customers' multiplicities of a batch: BATCH x customers floats).
BATCH = 16


@dataclass(frozen=True)
class Sample:
    """The sales with an estimate as arrays: each sale's customer (0..customers-1) and group by the
    estimate (and the truth, in a simulation), its softmax's mass per group (None when not every sale
    has a softmax), and the (sale, category) pairs."""

    customer: np.ndarray
    groups: dict[str, np.ndarray]
    soft: np.ndarray | None
    sale: np.ndarray
    category: np.ndarray
    n_groups: int
    n_categories: int

    @property
    def kinds(self) -> list[str]:
        """The kinds of counts this sample has (in :data:`ESTIMATE`, :data:`SOFTMAX`, :data:`TRUE`)."""
        found = [ESTIMATE] + ([SOFTMAX] if self.soft is not None else [])
        return found + ([TRUE] if TRUE in self.groups else [])


@dataclass(frozen=True)
class Profile:
    """Sales per group (``[..., groups]``) and purchase rates (``[..., categories, groups]``) per kind,
    and each category's rate among all sales (``[..., categories]``); the leading axis, when there is
    one, is the resample."""

    sizes: dict[str, np.ndarray]
    rates: dict[str, np.ndarray]
    overall: np.ndarray

    def shares(self, kind: str) -> np.ndarray:
        """Each group's share of the sales."""
        sizes = self.sizes[kind]
        return sizes / sizes.sum(axis=-1, keepdims=True)

    def lifts(self, kind: str) -> np.ndarray:
        """A group's purchase rate over all customers' (1: as the average shopper)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.rates[kind] / self.overall[..., :, None]


def _block(sample: Sample, kind: str) -> sparse.csr_matrix:
    """Customers x (groups + categories x groups): each customer's sales per group and per (category,
    group), by one kind: a sale counts 1 in its group, or its softmax's mass in each group."""
    g, c, customer = sample.n_groups, sample.n_categories, sample.customer
    pair = customer[sample.sale]
    column = g + sample.category * g  # the first column of each pair's category
    if kind == SOFTMAX:
        assert sample.soft is not None
        every = np.arange(g)
        rows = np.concatenate([np.repeat(customer, g), np.repeat(pair, g)])
        cols = np.concatenate([np.tile(every, len(customer)), (column[:, None] + every).ravel()])
        values = np.concatenate([sample.soft.ravel(), sample.soft[sample.sale].ravel()])
    else:
        group = sample.groups[kind]
        rows = np.concatenate([customer, pair])
        cols = np.concatenate([group, column + group[sample.sale]])
        values = np.ones(len(rows))
    customers = int(customer.max()) + 1 if len(customer) else 0
    return sparse.csr_matrix((values, (rows, cols)), shape=(customers, g + c * g))


def _features(sample: Sample) -> tuple[sparse.csr_matrix, list[str]]:
    """Every kind's block side by side, one row per customer."""
    kinds = sample.kinds
    return sparse.hstack([_block(sample, kind) for kind in kinds], format="csr"), kinds


def _profile(
    totals: np.ndarray, kinds: list[str], sample: Sample, matrices: list[np.ndarray], iterations: int
) -> Profile:
    """Profiles from the summed features (resamples x features) and each resample's confusion matrix."""
    g, c = sample.n_groups, sample.n_categories
    width = g + c * g
    sizes: dict[str, np.ndarray] = {}
    rate: dict[str, np.ndarray] = {}
    for i, kind in enumerate(kinds):
        block = totals[:, i * width : (i + 1) * width]
        sizes[kind] = block[:, :g]
        rate[kind] = rates(sizes[kind][:, None, :], block[:, g:].reshape(-1, c, g))
    bought = np.nan_to_num(rate[ESTIMATE] * sizes[ESTIMATE][:, None, :])  # an empty group bought nothing
    fixed = [
        corrected(m, n, k, iterations) for m, n, k in zip(matrices, sizes[ESTIMATE], bought, strict=True)
    ]
    sizes[CORRECTED], rate[CORRECTED] = np.stack([n for n, _ in fixed]), np.stack([r for _, r in fixed])
    overall = bought.sum(axis=2) / sizes[ESTIMATE].sum(axis=1, keepdims=True)
    return Profile(sizes, rate, overall)


def _squeeze(profile: Profile) -> Profile:
    """The one profile of a single resample, without the resample axis."""
    return Profile(
        {k: v[0] for k, v in profile.sizes.items()},
        {k: v[0] for k, v in profile.rates.items()},
        profile.overall[0],
    )


def profiles(
    sample: Sample, confusion: Confusion, iterations: int, resamples: int, seed: int
) -> tuple[Profile, Profile]:
    """The profile of the sales as they are (every customer once, the validation photos' matrix) and
    ``resamples`` bootstrap profiles (stacked), from the fixed ``seed``; ``iterations``: the
    correction's EM steps."""
    features, kinds = _features(sample)
    customers = features.shape[0]
    point = _squeeze(
        _profile(np.asarray(features.sum(axis=0)), kinds, sample, [confusion.matrix()], iterations)
    )
    rng = np.random.default_rng(seed)
    totals, matrices = [], []
    for start in range(0, resamples, BATCH):
        size = min(BATCH, resamples - start)
        drawn = rng.integers(0, customers, size=(size, customers))
        weights = np.stack([np.bincount(row, minlength=customers) for row in drawn]).astype(np.float64)
        totals.append(np.asarray((features.T @ weights.T).T))
        matrices.extend(confusion.resampled(rng).matrix() for _ in range(size))
    return point, _profile(np.concatenate(totals), kinds, sample, matrices, iterations)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap ``values`` (resamples on the first axis)."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():  # a group empty in every resample: NaN, said by its status
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    return low, high
