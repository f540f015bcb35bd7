"""Richer under-age heads? The released heads against variants, each at its operating point chosen on val.

    python -m benchmarks.under_age_heads

The released under-25 head is a logistic regression on the two members' pooled features (256 + 256),
trained on the training photos and calibrated on val (stage combine). This measures, on the same
features and photos, whether more would ask fewer adults 25+ for ID at the same protection of
13-17-year-olds:

- ``logistic``: the released recipe (:func:`fit_under_age_head`), refitted here;
- ``logistic+softmax``: the same, with each member's P(age < 25) read off its own age softmax (as a
  logit) added to the features;
- ``mlp``: a one-hidden-layer network (scikit-learn), same weights and inputs, Platt-calibrated on val;
- ``softmax``: no head at all: P(age < 25) from the ensemble's averaged softmax.

For each: the log loss and ROC AUC (13-17 against 25+) on val, and the operating point of
:func:`agecheck.evaluation.tradeoff.operating_point` (the cut that asks the fewest val adults while
serving at most ``policy.max_teen_pass_rate`` of val's teens), with what it does on test. Choose on
val; test is reported, never used to choose. Needs ``dvc repro combine`` done (the members, their
pooled training features, the faces table).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.neural_network import MLPClassifier

from agecheck.config import CHALLENGE_AGE, load_params
from agecheck.evaluation.tradeoff import operating_point, scores
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel
from agecheck.model.ensemble import Member, members_model
from agecheck.model.outputs import FEATURES
from agecheck.till.policy import probability_under
from agecheck.training.ensemble_weights import expected_ages
from agecheck.training.members import MemberPaths
from agecheck.training.under_age_heads import _weights, fit_under_age_head

AGE = int(CHALLENGE_AGE)


def _logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, with probabilities of exactly 0 or 1 kept finite."""
    return logit(np.clip(p, 1e-6, 1 - 1e-6))


def _age_head(model: keras.Model) -> keras.Model:
    """A member's age head (pooled features in, ``age_probs`` out), inside its mirror-averaging core."""
    cores = [layer for layer in model.layers if layer.name.endswith("_core")]
    return (cores[0] if cores else model).get_layer("age_head")


def _mlp(x: dict[str, np.ndarray], ages: dict[str, np.ndarray], balance: float) -> dict[str, np.ndarray]:
    """A one-hidden-layer network, its L2 strength chosen on val by log loss, Platt-calibrated on val."""
    mean, scale = x["train"].mean(axis=0), x["train"].std(axis=0) + 1e-6
    z = {k: (v - mean) / scale for k, v in x.items()}
    y_train, y_val = ages["train"] < AGE, ages["val"] < AGE
    # MLPClassifier takes no sample weights: resample the training photos by the released heads' weights
    weights = _weights(ages["train"], y_train, balance)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(weights), size=len(weights), p=weights / weights.sum())
    best: tuple[float, dict[str, np.ndarray]] | None = None
    for alpha in (1e-3, 1e-2, 1e-1, 1.0):
        net = MLPClassifier((64,), alpha=alpha, max_iter=200, early_stopping=True, random_state=0)
        net.fit(z["train"][chosen], y_train[chosen])
        raw = {k: _logit(net.predict_proba(v)[:, 1]) for k, v in z.items()}
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw["val"].reshape(-1, 1), y_val)
        probs = {k: platt.predict_proba(v.reshape(-1, 1))[:, 1] for k, v in raw.items()}
        loss = log_loss(y_val, probs["val"])
        if best is None or loss < best[0]:
            best = (loss, probs)
    assert best is not None
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    params = load_params()
    size, till_scale = params.model.image_size, params.align.face_scale
    members, weights, heads = [], [], []
    ensemble = AgeModel.load("models/age_model.keras")
    for name, config in params.model.members.items():
        trained = AgeModel.load(MemberPaths(name).model)
        members.append(Member(name, trained.model, config.face_scale / till_scale, config.image_size))
        weights.append(ensemble.info["members"][name]["weight"])
        heads.append(_age_head(trained.model))
    started = time.monotonic()
    faces = read_faces(Path("data/faces/faces.csv"))
    model = members_model(members, size, features=True)
    tables, ages, x, soft, ens = {}, {}, {}, {}, {}
    for split in ("train", "val", "test"):
        tables[split] = pd.read_csv(f"data/split/{split}.csv", dtype={"file_name": str})
        ages[split] = tables[split]["age"].to_numpy(np.float64)
        if split == "train":  # stage train's pooled features (mirror-averaged), through each member's head
            feats = [np.load(MemberPaths(m.name).pooled / "train.npy") for m in members]
            probs = [np.asarray(h(f)["age_probs"], np.float64) for h, f in zip(heads, feats, strict=True)]
        else:  # as combine and the released model see them: cut from the till's crop
            crops = model_inputs(tables[split], Path("data/validated"), faces, params.align, size)
            out = model.predict(crops.astype(np.float32), batch_size=64, verbose=0)
            feats = [np.asarray(out[f"{m.name}_{FEATURES}"]) for m in members]
            probs = [np.asarray(out[m.name], np.float64) for m in members]
        x[split] = np.concatenate(feats, axis=1)
        soft[split] = np.stack([_logit(probability_under(p, AGE)) for p in probs], axis=1)
        average = sum(w * p for w, p in zip(weights, probs, strict=True))
        ens[split] = (expected_ages(average), probability_under(average, AGE))
    print(f"features of {sum(len(t) for t in tables.values())} photos in {time.monotonic() - started:.0f} s")

    balance = params.train.age_balance
    variants: dict[str, dict[str, np.ndarray]] = {}
    for name, inputs in (
        ("logistic", x),
        ("logistic+softmax", {k: np.concatenate([x[k], soft[k]], axis=1) for k in x}),
    ):
        head = fit_under_age_head(inputs["train"], ages["train"], inputs["val"], ages["val"], AGE, balance)
        variants[name] = {k: head.probabilities(inputs[k]) for k in ("val", "test")}
    variants["mlp"] = _mlp(x, ages, balance)
    variants["softmax"] = {k: ens[k][1] for k in ("val", "test")}

    target = params.policy.max_teen_pass_rate
    columns = ("heads", "val log loss", "val AUC (13-17 vs 25+)", "cut", "adults asked val", "test")
    print("| " + " | ".join((*columns, "13-17 served val", "test", "val + test")) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, probs in variants.items():
        y_val = ages["val"] < AGE
        pair = (ages["val"] >= 13) & ((ages["val"] < 18) | (ages["val"] >= AGE))
        auc = roc_auc_score(ages["val"][pair] < 18, probs["val"][pair])
        loss = log_loss(y_val, np.clip(probs["val"], 1e-6, 1 - 1e-6))
        val, test = (scores(tables[k], ens[k][0], {AGE: probs[k]}) for k in ("val", "test"))
        point = operating_point(val, test, "heads", target)
        if point["cut"] is None:
            print(f"| {name} | {loss:.4f} | {auc:.4f} | none | | | | | |")
            continue
        both = point["teens_served_val_test"]
        rates = [point[s][r]["rate"] for r in ("adults_asked", "teens_served") for s in ("val", "test")]
        print(
            f"| {name} | {loss:.4f} | {auc:.4f} | {point['cut']:.2f} | "
            + " | ".join(f"{100 * r:.1f}%" for r in rates)
            + f" | {both['hits']} of {both['count']} (at most {100 * both['upper95']:.1f}%) |"
        )


if __name__ == "__main__":
    main()
