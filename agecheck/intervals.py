"""The one confidence interval of a share that every page and metric reports: Wilson's (SciPy's)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest


def wilson_interval(hits: ArrayLike, counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The 95% Wilson score interval of each share ``hits / counts`` (NaN where the count is 0).

    Unlike share ± 1.96 standard errors it stays inside 0..1 and keeps its coverage at small counts
    and at shares near 0 or 1, which is where the alcohol rule's rates live.
    """
    hits, counts = np.broadcast_arrays(np.asarray(hits, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    low, high = np.full(hits.shape, np.nan), np.full(hits.shape, np.nan)
    for i in np.ndindex(counts.shape):
        if counts[i] == 0:
            continue
        ci = binomtest(int(hits[i]), int(counts[i])).proportion_ci(method="wilson")
        low[i], high[i] = ci.low, ci.high
    return low, high
