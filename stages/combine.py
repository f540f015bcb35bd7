"""Stage combine: the released model, the members' age distributions averaged with the weights that give
the lowest MAE on the validation photos, each member on its own crop cut from the till's crop; and the
under-age heads (``model.heads``) on the members' pooled features, trained on the training photos'
(stage train) and chosen and calibrated on the validation photos' as the till cuts them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel
from agecheck.model.ensemble import Head, Member, ensemble_model, members_model
from agecheck.model.outputs import FEATURES
from agecheck.training.ensemble_weights import choose_weights, expected_ages
from agecheck.training.members import MemberPaths
from agecheck.training.under_age_heads import fit_under_age_head

MODEL = Path("models/age_model.keras")


@exit_on_error
def main() -> None:
    params = load_params()
    size, till_scale = params.model.image_size, params.align.face_scale
    members, infos = [], {}
    for name, config in params.model.members.items():
        trained = AgeModel.load(MemberPaths(name).model)
        members.append(Member(name, trained.model, config.face_scale / till_scale, config.image_size))
        infos[name] = {"backbone": trained.info["backbone"], "val_mae_cached": trained.info["val_mae"]}
    table = pd.read_csv("data/split/val.csv", dtype={"file_name": str})
    started = time.monotonic()
    faces = read_faces(Path("data/faces/faces.csv"))
    crops = model_inputs(table, Path("data/validated"), faces, params.align, size)
    with_heads = bool(params.model.heads)
    outputs = members_model(members, size, features=with_heads).predict(
        crops.astype(np.float32), batch_size=64, verbose=0
    )
    ages = table["age"].to_numpy(np.float64)
    for member in members:
        mae = float(np.mean(np.abs(expected_ages(np.asarray(outputs[member.name], np.float64)) - ages)))
        infos[member.name]["val_mae"] = round(mae, 3)
    weights, mae = choose_weights([outputs[m.name] for m in members], ages)
    for member, weight in zip(members, weights, strict=True):
        infos[member.name]["weight"] = weight
    info = {"face_scale": till_scale, "members": infos, "val_mae": round(mae, 3)}
    heads = []
    if with_heads:
        train_x = np.concatenate([np.load(MemberPaths(m.name).pooled / "train.npy") for m in members], axis=1)
        train_ages = pd.read_csv("data/split/train.csv", dtype={"file_name": str})["age"].to_numpy(np.float64)
        val_x = np.concatenate([np.asarray(outputs[f"{m.name}_{FEATURES}"]) for m in members], axis=1)
        info["heads"] = {}
        for age in params.model.heads:
            head = fit_under_age_head(train_x, train_ages, val_x, ages, age, params.train.age_balance)
            heads.append(Head(age, head.kernel, head.bias))
            info["heads"][str(age)] = {"strength": head.strength, "val_log_loss": head.val_log_loss}
    AgeModel.save(ensemble_model(members, weights, size, heads), MODEL, size, info)
    mix = ", ".join(
        f"{name} {info['weight']:.2f} (val MAE {info['val_mae']:.3f})" for name, info in infos.items()
    )
    print(f"combine: {mix} -> val MAE {mae:.3f} in {time.monotonic() - started:.0f} s -> {MODEL}")


if __name__ == "__main__":
    main()
