"""Customers for the simulations without the research photos: true ages and estimates off by a known
error, as the calibrate stage writes them for the test photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from tests.support.params import PARAMS

POLICY = PARAMS.policy
MAE = 5.0


def synthetic_customers(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    """Photos aged 13..85 with estimates off by normal noise of mean absolute error :data:`MAE`, the
    probabilities that noise implies, and 3% without a face (NaN)."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(13, 86, n).round()
    sd = MAE * np.sqrt(np.pi / 2)
    estimate = age + rng.normal(0, sd, n)
    estimate[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "estimate": estimate,
            "p_under_legal": stats.norm.cdf((POLICY.legal_age - estimate) / sd),
            "p_under_threshold": stats.norm.cdf((POLICY.threshold - estimate) / sd),
        }
    )
