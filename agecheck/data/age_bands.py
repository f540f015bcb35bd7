"""The age bands used for stratified splitting and for per-band error reporting."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Lower edge of each band; the last band is open-ended.
BAND_EDGES: tuple[int, ...] = (0, 13, 18, 25, 35, 50, 65)
BAND_LABELS: tuple[str, ...] = ("0-12", "13-17", "18-24", "25-34", "35-49", "50-64", "65+")


def age_band(ages: pd.Series | np.ndarray) -> pd.Series:
    """Label each age with its band (``"0-12"`` ... ``"65+"``), as an ordered categorical."""
    bins = [*BAND_EDGES, np.inf]
    return pd.Series(
        pd.cut(np.asarray(ages, dtype=float), bins=bins, right=False, labels=BAND_LABELS),
        index=getattr(ages, "index", None),
    )


def band_balance_weights(ages: pd.Series | np.ndarray, power: float) -> np.ndarray:
    """Sample weights that count every age band as ``(photos in band) ** -power``, mean 1.

    0 weighs every photo alike; 1 gives every band the same total weight. The rare bands (13-17
    has 3.6% of the training photos) are otherwise pulled towards the common middle ages.
    """
    bands = age_band(ages)
    counts = bands.map(bands.value_counts()).to_numpy(dtype=float)
    weights = counts**-power
    return (weights / weights.mean()).astype(np.float32)
