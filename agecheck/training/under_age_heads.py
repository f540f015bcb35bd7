"""Heads that estimate P(age < 18) and P(age < 25) straight from the members' pooled features.

The alcohol rule needs a decision at two ages, not an age: a head trained for "under 25?" can spend
all its capacity near that boundary, where the age head's softmax is blurred by its pull towards the
middle ages. Each head is a logistic regression on the members' pooled features (the inputs of their
age heads), standardised on the training photos, cost-weighted (both classes weigh the same, and
within them each photo by its age band's rarity, as in training), its L2 strength chosen on the
validation photos by log loss, then calibrated there (Platt: a logistic regression on its logit), so
that its probability means what it says. All of it folds into one dense layer of the released model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from agecheck.data.age_bands import band_balance_weights

#: The L2 strengths tried on val (sklearn's C: the inverse strength).
STRENGTHS = (0.001, 0.01, 0.1, 1.0)


@dataclass(frozen=True)
class UnderAgeHead:
    """P(age < ``age``) = sigmoid(features @ kernel + bias), calibration folded in."""

    age: int
    kernel: np.ndarray  # (features,)
    bias: float
    strength: float  # the chosen C
    val_log_loss: float

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(np.asarray(features, np.float64) @ self.kernel + self.bias)))


def _weights(ages: np.ndarray, labels: np.ndarray, balance: float) -> np.ndarray:
    """Age-band balance within each class, then both classes the same total weight."""
    weights = band_balance_weights(ages, balance).astype(np.float64) if balance else np.ones(len(ages))
    for label in (False, True):
        chosen = labels == label
        if chosen.any():
            weights[chosen] *= 0.5 * len(ages) / weights[chosen].sum()
    return weights


def fit_under_age_head(
    train_x: np.ndarray,
    train_ages: np.ndarray,
    val_x: np.ndarray,
    val_ages: np.ndarray,
    age: int,
    balance: float,
    seed: int = 0,
) -> UnderAgeHead:
    """The head for ``age``: trained on the train photos' features, chosen and calibrated on val's."""
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    z_train, z_val = (train_x - mean) / scale, (val_x - mean) / scale
    y_train, y_val = train_ages < age, val_ages < age
    if y_train.all() or not y_train.any() or y_val.all() or not y_val.any():
        raise ValueError(f"the under-{age} head needs photos on both sides of {age} in train and val")
    weights = _weights(train_ages, y_train, balance)
    best: tuple[float, float, LogisticRegression, LogisticRegression] | None = None
    for strength in STRENGTHS:
        head = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
        head.fit(z_train, y_train, sample_weight=weights)
        logit = head.decision_function(z_val).reshape(-1, 1)
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y_val)
        loss = log_loss(y_val, platt.predict_proba(logit)[:, 1])
        if best is None or loss < best[1]:
            best = (strength, loss, head, platt)
    assert best is not None
    strength, loss, head, platt = best
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    w = head.coef_[0] / scale
    kernel = a * w
    bias = a * (float(head.intercept_[0]) - float(w @ mean)) + b
    return UnderAgeHead(age, kernel, bias, strength, round(float(loss), 4))
