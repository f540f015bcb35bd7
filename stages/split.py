"""Stage split: stratified, duplicate-aware train/val/test tables and the age-distribution plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agecheck.config import load_params
from agecheck.data.split import SPLITS, age_distribution, assign_splits, split_summary
from agecheck.errors import exit_on_error
from agecheck.outputs import fresh_dir, write_json

PHOTOS = Path("data/validated/photos.csv")
OUT = Path("data/split")
RESULTS = Path("metrics/split")


@exit_on_error
def main() -> None:
    params = load_params().split
    photos = pd.read_csv(PHOTOS, dtype={"file_name": str, "source": str})
    photos["split"] = assign_splits(photos, params.val_size, params.test_size, params.seed)
    fresh_dir(OUT)
    for name in SPLITS:
        photos[photos["split"] == name].to_csv(OUT / f"{name}.csv", index=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    age_distribution(photos).to_csv(RESULTS / "age_distribution.csv", index=False)
    summary = split_summary(photos)
    write_json(Path("metrics/split.json"), summary)
    print("split: " + ", ".join(f"{name} {summary[name]['total']}" for name in SPLITS))


if __name__ == "__main__":
    main()
