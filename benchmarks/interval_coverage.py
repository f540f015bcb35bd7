"""How often the age interval of the service (``agecheck.model.age_model``) holds the true age.

    python -m benchmarks.interval_coverage [--split val] [--coverage 0.8] [--model models/age_model.keras]

Runs the model on a split of the pipeline (aligned faces, as in training) and prints, overall and
per source, the share of photos whose true age lies inside the interval, and the interval's
median width. An honest 80 % interval holds the true age for about 80 % of the photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import DEFAULT_MODEL, load_params
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--coverage", type=float, default=0.8, help="nominal coverage of the interval")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    if not 0 < args.coverage < 1:  # checked before the photos are loaded
        parser.error(f"--coverage must be between 0 and 1 (got {args.coverage})")
    table = pd.read_csv(Path("data/split") / f"{args.split}.csv", dtype={"id": str, "member": str})
    model = AgeModel.load(args.model)
    faces = read_faces(Path("data/faces/faces.csv"))
    images = model_inputs(table, Path("data/validated"), faces, load_params().align, model.input_size)
    estimates = model.estimate(images, coverage=args.coverage)
    result = table[["source", "age"]].assign(
        low=[e.low for e in estimates], high=[e.high for e in estimates], kind=[e.interval for e in estimates]
    )
    result["inside"] = (result["low"] <= result["age"]) & (result["age"] <= result["high"])
    result["width"] = result["high"] - result["low"]
    kind = result["kind"].iloc[0]
    print(f"{args.split} split, {len(result)} photos, interval: {kind}, nominal {args.coverage:.0%}")
    for name, rows in [("all", result), *result.groupby("source")]:
        print(
            f"  {name:10s} holds the true age {rows['inside'].mean():6.1%}   "
            f"median width {np.median(rows['width']):5.1f} years   (n={len(rows)})"
        )


if __name__ == "__main__":
    main()
