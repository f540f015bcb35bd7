"""Matplotlib figures written next to the DVC plot data."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agecheck.age_bands import BAND_LABELS, age_band  # noqa: E402


def save(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def split_age_bands(photos: pd.DataFrame, path: Path) -> None:
    """Grouped bars: share of each split's photos in each age band."""
    bands = pd.crosstab(age_band(photos["age"]), photos["split"], normalize="columns") * 100
    bands = bands.reindex(index=list(BAND_LABELS), columns=["train", "val", "test"], fill_value=0)
    fig, ax = plt.subplots(figsize=(8, 4))
    bands.plot.bar(ax=ax, rot=0, width=0.8)
    counts = photos["split"].value_counts()
    ax.legend([f"{s} (n={counts.get(s, 0)})" for s in bands.columns])
    ax.set_xlabel("age band (years)")
    ax.set_ylabel("share of the split's photos (%)")
    ax.set_title("Age distribution per split")
    save(fig, path)
