"""What the model does at the till, measured on photos it never trained on: the calibration file that
travels with the model, and the per-photo till estimates the simulations use as customers.

Every photo goes through the one till pipeline (find the faces, the customer's is the largest,
align, estimate), as at a till. ``models/age_model.calibration.json`` (from the validation photos)
holds the Challenge 25 rates at the policy threshold, how well the probabilities of the alcohol rule
match the truth, and the per-year confusion matrix (true age x estimated age, counts) that the
shopping profiles group as they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agecheck.config import PolicyConfig
from agecheck.faces.table import split_photos
from agecheck.till.estimates_log import softmax_matrix
from agecheck.till.pipeline import Till, customer_index
from agecheck.till.policy import asks_for_id

#: The per-photo table: the photo, its true age, and the till's estimate for its customer's face.
CUSTOMER_COLUMNS = ("id", "source", "age", "found", "estimate", "p_under_legal", "p_under_threshold")
#: Reliability bins of the probabilities (equal width).
BINS = 10
DECIMALS = 4


def till_customers(
    till: Till, table: pd.DataFrame, shards: Path, batch_size: int = 64
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every photo of a split's table through the till: :data:`CUSTOMER_COLUMNS` (NaN estimates where
    no face was found) in the table's order, and the customers' softmaxes (N x 101, float32; NaN rows
    without a face)."""
    position = {member: i for i, member in enumerate(table["member"])}
    rows: list[dict[str, Any]] = [{} for _ in range(len(table))]
    probs: list[np.ndarray | None] = [None] * len(table)
    batch: list[tuple[str, Any]] = []

    def judge() -> None:
        results = till.run([photo.convert("RGB") for _, photo in batch], batch_size=batch_size)
        for (member, _), faces in zip(batch, results, strict=True):
            index = customer_index(faces)
            face = faces[index] if index is not None else None
            under = face.under if face is not None else None
            rows[position[member]] = {
                "found": face is not None,
                "estimate": np.nan if face is None else round(face.estimate.age, 3),
                "p_under_legal": np.nan if under is None else round(under.legal, DECIMALS),
                "p_under_threshold": np.nan if under is None else round(under.threshold, DECIMALS),
            }
            probs[position[member]] = None if face is None else face.estimate.probs
        batch.clear()

    with tqdm(total=len(table), desc="till", unit="photo", mininterval=10) as bar:
        for member, photo in split_photos(table, shards):
            batch.append((member, photo))
            if len(batch) == batch_size:
                judge()
                bar.update(batch_size)
        left = len(batch)
        if batch:
            judge()
        bar.update(left)
    customers = pd.concat(
        [table[["id", "source", "age"]].reset_index(drop=True), pd.DataFrame(rows)], axis=1
    )[list(CUSTOMER_COLUMNS)]
    return customers, softmax_matrix(probs)


def _rate(hits: np.ndarray) -> dict[str, Any]:
    return {"rate": round(float(hits.mean()), DECIMALS) if len(hits) else None, "count": int(len(hits))}


def _reliability(predicted: np.ndarray, observed: np.ndarray) -> dict[str, Any]:
    """The Brier score and, per bin of the predicted probability, its mean against the observed share."""
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, BINS - 1)
    bins = []
    for b in range(BINS):
        inside = which == b
        if inside.any():
            bins.append(
                {
                    "from": round(float(edges[b]), 2),
                    "to": round(float(edges[b + 1]), 2),
                    "count": int(inside.sum()),
                    "predicted": round(float(predicted[inside].mean()), DECIMALS),
                    "observed": round(float(observed[inside].mean()), DECIMALS),
                }
            )
    brier = float(np.mean((predicted - observed) ** 2)) if len(predicted) else None
    return {"brier": None if brier is None else round(brier, DECIMALS), "bins": bins}


def calibration(customers: pd.DataFrame, policy: PolicyConfig) -> dict[str, Any]:
    """The calibration file's content from the till's estimates of photos with known ages."""
    found = customers[customers["found"].astype(bool)]
    true, estimate = found["age"].to_numpy(float), found["estimate"].to_numpy(float)
    asked = asks_for_id(estimate, found["p_under_threshold"].to_numpy(float), policy)
    adults, minors = true >= policy.adult_age, true < policy.legal_age
    teens = minors & (true >= 13)
    confusion = pd.crosstab(found["age"].astype(int), np.rint(estimate).astype(int))
    counts = [[int(t), int(e), int(n)] for (t, e), n in confusion.stack().items() if n]
    out: dict[str, Any] = {
        "photos": len(customers),
        "faces_found": round(float(customers["found"].astype(bool).mean()), DECIMALS),
        "threshold": policy.threshold,
        "legal_age": policy.legal_age,
        "adult_age": policy.adult_age,
    }
    for name, rate in (
        ("adult_asked", _rate(asked[adults])),
        ("minor_served", _rate(~asked[minors])),
        ("teen_served", _rate(~asked[teens])),
    ):
        out[f"{name}_rate"], out[f"{name.split('_')[0]}s"] = rate["rate"], rate["count"]
    out["probabilities"] = {
        "p_under_legal": _reliability(found["p_under_legal"].to_numpy(float), minors.astype(float)),
        "p_under_threshold": _reliability(
            found["p_under_threshold"].to_numpy(float), (true < policy.threshold).astype(float)
        ),
    }
    out["confusion"] = {
        "what": "validation photos with a face found: [true age, estimated age (rounded), count]",
        "counts": counts,
    }
    return out
