"""Deterministic train/val/test split, stratified by source and age band, grouped by duplicates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from agecheck.data.age_bands import age_band

SPLITS = ("train", "val", "test")
MIN_STRATUM = 6


def _strata(groups: pd.DataFrame) -> pd.Series:
    """Stratum per group: ``source:band``; rare strata merge into ``source:rare``, then ``rare``."""
    strata = groups["source"].astype(str) + ":" + age_band(groups["age"]).astype(str)
    for fallback in (groups["source"].astype(str) + ":rare", pd.Series("rare", index=groups.index)):
        counts = strata.map(strata.value_counts())
        strata = strata.where(counts >= MIN_STRATUM, fallback)
    return strata


def _two_way(ids: np.ndarray, strata: pd.Series, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``ids`` into (rest, part of ``size``), stratified when the strata allow it."""
    if size <= 0:
        return ids, ids[:0]
    try:
        return train_test_split(ids, test_size=size, stratify=strata.to_numpy(), random_state=seed)
    except ValueError as err:  # too few photos per stratum for the requested sizes
        warnings.warn(f"split not stratified: {err}", stacklevel=2)
        return train_test_split(ids, test_size=size, random_state=seed)


def assign_splits(photos: pd.DataFrame, val_size: float, test_size: float, seed: int) -> pd.Series:
    """Return each photo's split name. Photos sharing a ``group`` always land in the same split."""
    if not 0 <= val_size < 1 or not 0 <= test_size < 1 or val_size + test_size >= 1:
        raise ValueError(f"val_size {val_size} and test_size {test_size} must be in [0, 1) and sum below 1")
    group_key = photos["group"].fillna(photos["id"])
    groups = photos.assign(group=group_key).drop_duplicates("group").set_index("group")
    strata = _strata(groups)
    rest, test = _two_way(groups.index.to_numpy(), strata, test_size, seed)
    val_share = val_size / (1 - test_size)
    _, val = _two_way(rest, strata.loc[rest], val_share, seed + 1)
    names = pd.Series("train", index=groups.index)
    names.loc[val] = "val"
    names.loc[test] = "test"
    return group_key.map(names).rename("split")


def split_summary(photos: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Photo counts per split, by source and by age band."""
    summary: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        part = photos[photos["split"] == name]
        counts = {"total": len(part)}
        counts.update({f"source_{k}": int(v) for k, v in part["source"].value_counts().sort_index().items()})
        bands = age_band(part["age"]).value_counts().sort_index()
        counts.update({f"band_{k}": int(v) for k, v in bands.items()})
        summary[name] = counts
    return summary


def age_distribution(photos: pd.DataFrame, max_age: int = 100) -> pd.DataFrame:
    """Share of each split's photos (percent) at each age; ages above ``max_age`` are pooled."""
    ages = photos["age"].clip(upper=max_age)
    table = pd.crosstab(ages, photos["split"], normalize="columns") * 100
    table = table.reindex(index=range(0, max_age + 1), columns=list(SPLITS), fill_value=0.0)
    return table.rename_axis("age").reset_index().round(3)
