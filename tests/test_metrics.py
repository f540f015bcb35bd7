"""``age_metrics`` on numbers computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agecheck.evaluation.metrics import age_metrics

TRUE = [10, 20, 30, 70]
PREDICTED = [12, 20, 25, 60]  # absolute errors 2, 0, 5, 10


def test_overall() -> None:
    metrics = age_metrics(np.array(TRUE), np.array(PREDICTED))
    assert metrics["count"] == 4
    assert metrics["mae"] == 4.25
    assert metrics["rmse"] == round(math.sqrt((4 + 0 + 25 + 100) / 4), 3)
    assert metrics["median_ae"] == 3.5
    assert "mae_by_source" not in metrics
    json.dumps(metrics)  # JSON-ready


def test_per_age_band_only_bands_with_photos() -> None:
    metrics = age_metrics(TRUE + [13], PREDICTED + [16])  # 13 is in band 13-17, error 3
    assert metrics["mae_by_age_band"] == {"0-12": 2.0, "13-17": 3.0, "18-24": 0.0, "25-34": 5.0, "65+": 10.0}
    assert metrics["count_by_age_band"] == {"0-12": 1, "13-17": 1, "18-24": 1, "25-34": 1, "65+": 1}
    assert list(metrics["mae_by_age_band"]) == ["0-12", "13-17", "18-24", "25-34", "65+"]


def test_band_edges_and_rounding() -> None:
    metrics = age_metrics([24, 25, 25], [25, 25, 26])
    assert metrics["mae_by_age_band"] == {"18-24": 1.0, "25-34": 0.5}
    assert age_metrics([1, 1, 1], [2, 1, 1])["mae"] == 0.333


def test_per_source() -> None:
    metrics = age_metrics(TRUE, PREDICTED, np.array(["b", "a", "b", "a"]))
    assert metrics["mae_by_source"] == {"a": 5.0, "b": 3.5}  # a: (0 + 10) / 2, b: (2 + 5) / 2
    assert metrics["count_by_source"] == {"a": 2, "b": 2}


def test_empty_and_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="at least one photo"):
        age_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="4 true ages but 3"):
        age_metrics(TRUE, PREDICTED[:3])
