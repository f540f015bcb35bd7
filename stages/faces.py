"""Stage faces: find the face (box and keypoints) in every usable photo once, with the till's detector."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.faces.find import find_faces
from agecheck.outputs import fresh_dir, write_json

PHOTOS = Path("data/validated")
OUT = Path("data/faces")
METRICS = Path("metrics/faces.json")
NOT_FOUND = Path("metrics/faces/not_found.csv")


@exit_on_error
def main() -> None:
    detect = load_params().detect
    photos = pd.read_csv(PHOTOS / "photos.csv", dtype={"member": str, "source": str, "shard": str})
    started = time.monotonic()
    faces = find_faces(photos, PHOTOS, detect)
    fresh_dir(OUT)
    faces.to_csv(OUT / "faces.csv", index=False)
    missed = faces.loc[~faces["found"], ["member", "source"]].assign(reason="no_face")
    fresh_dir(NOT_FOUND.parent)
    missed.to_csv(NOT_FOUND, index=False)
    per_source = {
        source: {
            "photos": len(group),
            "found": int(group["found"].sum()),
            "share": round(group["found"].mean(), 4),
        }
        for source, group in faces.groupby("source")
    }
    seconds = round(time.monotonic() - started, 1)
    write_json(METRICS, {"faces_found": per_source})  # no time: the output depends on its inputs alone
    shares = ", ".join(f"{s} {m['found']}/{m['photos']}" for s, m in per_source.items())
    print(f"faces: found in {shares} in {seconds} s -> {OUT}; not found (centre crop) -> {NOT_FOUND}")


if __name__ == "__main__":
    main()
