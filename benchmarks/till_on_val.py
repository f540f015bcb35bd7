"""The evaluate stage's till figures on the validation split, for choosing ``detect``/``align`` params.

    python -m benchmarks.till_on_val [--model models/age_model.keras] [-S detect.tiles=1 ...]

Runs :func:`agecheck.evaluation.till_check.till_metrics` (the whole ``aaf_whole`` photos of the
split's AAF photos, and every photo in a synthetic till frame, each through ``agecheck predict``'s
path) on val instead of test, with params overridden as ``dvc exp run -S`` does, and prints the
figures as JSON beside the MAE on the pipeline's crops. Needs ``dvc repro faces`` and a model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from agecheck.config import DEFAULT_MODEL, parse_params
from agecheck.evaluation.predict import predict_split
from agecheck.evaluation.till_check import till_metrics
from agecheck.faces.table import read_faces
from agecheck.model.age_model import AgeModel

SHARDS = Path("data/validated")


def overridden(raw: dict, settings: list[str]) -> dict:
    """``raw`` params with each ``section.key=value`` (value read as YAML) set."""
    for setting in settings:
        name, _, value = setting.partition("=")
        *sections, key = name.split(".")
        target = raw
        for section in sections:
            target = target[section]
        target[key] = yaml.safe_load(value)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("-S", dest="settings", action="append", default=[], help="section.key=value")
    args = parser.parse_args()
    params = parse_params(overridden(yaml.safe_load(Path("params.yaml").read_text()), args.settings))
    model = AgeModel.load(args.model)
    faces = read_faces(Path("data/faces/faces.csv"))
    table, ages, _ = predict_split(model, Path("data/split/val.csv"), SHARDS, faces, params)
    table = table.assign(predicted=ages)
    print(json.dumps({"settings": args.settings, **till_metrics(model, params, table, faces, SHARDS)}))


if __name__ == "__main__":
    main()
