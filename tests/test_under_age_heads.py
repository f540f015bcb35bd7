"""The under-age heads: fit on features, calibrated on val, folded into the released model as
``p_under_AGE`` outputs, and the alcohol rule that can decide on them (``policy.rule: heads``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.evaluation.tradeoff import Scores, tradeoff
from agecheck.till.policy import ASK_FOR_ID, NO_ID_NEEDED, UnderAge, asks_for_id, decision
from agecheck.training.under_age_heads import fit_under_age_head
from tests.support.params import PARAMS, changed


def _features(ages: np.ndarray, seed: int) -> np.ndarray:
    """Eight features, one of them the age plus noise (as a face network's features carry it)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (len(ages), 8))
    noise[:, 3] += (ages - 30) / 8
    return noise


def _ages(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(2, 80, count)


def test_a_head_is_calibrated_on_val() -> None:
    train_ages, val_ages, test_ages = _ages(6000, 0), _ages(3000, 1), _ages(3000, 2)
    head = fit_under_age_head(_features(train_ages, 0), train_ages, _features(val_ages, 1), val_ages, 25, 0.5)
    p, truth = head.probabilities(_features(test_ages, 2)), test_ages < 25
    assert abs(p.mean() - truth.mean()) < 0.03  # calibrated: as many under-25s predicted as there are
    for low in (0.1, 0.3, 0.5, 0.7):
        chosen = (p >= low) & (p < low + 0.2)
        assert abs(truth[chosen].mean() - p[chosen].mean()) < 0.1
    brier, base = np.mean((p - truth) ** 2), truth.mean() * (1 - truth.mean())
    assert brier < 0.6 * base  # it knows something
    assert head.strength in (0.001, 0.01, 0.1, 1.0) and head.val_log_loss > 0


def test_the_released_model_gives_the_heads(tmp_path: Path) -> None:
    from agecheck.model.age_model import AgeModel
    from agecheck.model.ensemble import Head, Member, ensemble_model, members_model
    from tests.support.tiny_models import save_dex_model

    member = AgeModel.load(save_dex_model(tmp_path / "m.keras", 32, "member_m"))
    members = [Member("m", member.model, 1.0, 32)]
    crops = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    features = members_model(members, 32, features=True).predict(crops.astype(np.float32), verbose=0)[
        "m_features"
    ]
    kernel = np.linspace(-1, 1, features.shape[1])
    heads = [Head(18, kernel, 0.3), Head(25, -kernel, -0.2)]
    AgeModel.save(ensemble_model(members, (1.0,), 32, heads), tmp_path / "e.keras", 32, {})
    model = AgeModel.load(tmp_path / "e.keras")
    assert sorted(model.head_ages.values()) == [18, 25]
    ages, probabilities = model.predict_with_heads(crops)
    expected = 1 / (1 + np.exp(-(features @ kernel + 0.3)))
    assert np.allclose(probabilities[18], expected, atol=1e-5)
    estimates = model.estimate(crops, 0.8)
    assert [e.heads[25] for e in estimates] == list(probabilities[25].astype(float))
    assert np.allclose([e.age for e in estimates], ages)


def test_rule_heads_decides_on_the_probability() -> None:
    heads = changed(PARAMS.policy, rule="heads", heads_cut=0.4)
    threshold = changed(PARAMS.policy, rule="threshold")
    assert decision(40.0, heads, UnderAge(0.01, 0.5)) == ASK_FOR_ID  # looks 40, the head says under 25
    assert decision(20.0, heads, UnderAge(0.01, 0.3)) == NO_ID_NEEDED
    assert decision(20.0, threshold, UnderAge(0.01, 0.3)) == ASK_FOR_ID
    assert decision(20.0, heads, None) == ASK_FOR_ID  # no probabilities: the threshold decides
    asked = asks_for_id([40.0, 40.0, 20.0], [0.5, np.nan, 0.1], heads)
    assert asked.tolist() == [True, False, False]


def test_the_operating_points_are_chosen_on_val() -> None:
    """A head that sees the age exactly beats a noisy estimated age at the same teen target."""
    rng = np.random.default_rng(0)

    def split(count: int) -> Scores:
        ages = rng.uniform(10, 70, count)
        groups = pd.DataFrame({"gender": rng.choice(["f", "m"], count), "source": "s"})
        return Scores(ages, ages + rng.normal(0, 6, count), (ages < 25).astype(float) * 0.9 + 0.05, groups)

    curves, summary = tradeoff(split(4000), split(4000), 0.03)
    threshold, heads = summary["rules"]["threshold"], summary["rules"]["heads"]
    assert threshold["val"]["teens_served"]["rate"] <= 0.03
    assert heads["val"]["teens_served"]["rate"] <= 0.03
    assert heads["test"]["adults_asked"]["rate"] < 0.01 < threshold["test"]["adults_asked"]["rate"]
    assert summary["best_on_val"] == "heads"
    assert set(heads["adults_asked_by_group"]["gender"]) == {"f", "m"}
    assert set(curves["rule"]) == {"threshold", "heads"} and set(curves["split"]) == {"val", "test"}
