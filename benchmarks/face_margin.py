"""Where the face detector finds the face inside the training photos, and the crop that matches.

    python benchmarks/face_margin.py [--per-source 300] [--check-model models/age_model.keras]

Each sampled photo is reduced to what the model sees (its centre square, ``preprocess``), pasted
into the middle of a grey canvas twice its size (so the detector sees the face at a frame-like
scale), and the best detected box is compared with the square: box side / square side, and the
offset of the square's centre from the box centre in box sides. The crop that reproduces the
training photos from a detected box is then ``margin = square side / box side`` and
``shift = square centre - box centre`` (``margin``, ``shift_x``, ``shift_y`` of
``agecheck.config.DetectConfig``; set in ``params.yaml``, ``detect:``).

With ``--check-model`` the script also cuts every detected face back out of the canvas with each
candidate crop and compares the model's MAE with that on the untouched photo. Photos come from
the validation split (``data/split/val.csv``: crops are chosen there, never on test) when it
exists, else from each source folder. Nothing is written: the figures are printed, and recorded
by hand in ``docs/serving.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agecheck.config import DEFAULT_PARAMS, DetectConfig, Params, load_params  # noqa: E402
from agecheck.data.images import PhotoRejected, read_photo, square_resize  # noqa: E402
from agecheck.till.detection import MODELS, FaceDetector  # noqa: E402
from agecheck.till.pipeline import crop_face  # noqa: E402

#: The crop fields of ``DetectConfig`` this script measures.
CROP_FIELDS = ("margin", "shift_x", "shift_y")


@dataclass
class Sample:
    source: str
    age: float | None
    canvas: Image.Image
    side: int


def sample_photos(params: Params, per_source: int, seed: int) -> list[Sample]:
    """Centre squares of up to ``per_source`` photos per source, each in a grey canvas."""
    sources = {name: Path(path) for name, path in params.data.sources.items()}
    split = Path("data/split/val.csv")
    samples = []
    for name, folder in sources.items():
        if split.is_file():
            table = pd.read_csv(split)
            table = table[table["source"] == name]
            rows = table.sample(min(per_source, len(table)), random_state=seed)
            items = list(zip(rows["file_name"], rows["age"].astype(float), strict=True))
        else:
            files = sorted(p.name for p in (folder / "final_files").iterdir())
            picked = np.random.default_rng(seed).choice(
                len(files), min(per_source, len(files)), replace=False
            )
            items = [(files[i], None) for i in sorted(picked)]
        for file_name, age in items:
            try:
                photo = read_photo(folder / "final_files" / file_name, params.validate_)
            except PhotoRejected:
                continue
            side = min(photo.size)
            canvas = Image.new("RGB", (2 * side, 2 * side), (128, 128, 128))
            canvas.paste(Image.fromarray(square_resize(photo, side)), (side // 2, side // 2))
            samples.append(Sample(name, age, canvas, side))
    return samples


def measure(samples: list[Sample], detector: FaceDetector) -> pd.DataFrame:
    """One row per sample: found, box side / square side, square centre - box centre (box sides)."""
    rows = []
    for s in samples:
        boxes = detector.detect(s.canvas)
        row = {"source": s.source, "found": bool(boxes), "ratio": np.nan, "dx": np.nan, "dy": np.nan}
        if boxes:
            box = boxes[0]
            cx, cy = box.centre
            row |= {
                "ratio": box.side / s.side,
                "dx": (s.side - cx) / box.side,
                "dy": (s.side - cy) / box.side,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def crop_for(table: pd.DataFrame, detect: DetectConfig) -> DetectConfig:
    """``detect`` with the crop that reproduces the median training photo of ``table`` from its box."""
    found = table[table["found"]]
    return detect.model_copy(
        update={
            "margin": round(float(np.median(1 / found["ratio"])), 2),
            "shift_x": round(float(np.median(found["dx"])), 2),
            "shift_y": round(float(np.median(found["dy"])), 2),
        }
    )


def report(table: pd.DataFrame, detect: DetectConfig) -> dict[str, DetectConfig]:
    """Print the geometry per source and return the matching crops (per source and pooled)."""
    crops = {}
    print("source    found      box/side (q25 median q75)   centre offset x, y (box sides)   crop")
    for name, part in [*table.groupby("source"), ("all", table)]:
        found = part[part["found"]]
        q = np.percentile(found["ratio"], [25, 50, 75])
        crops[name] = crop_for(part, detect)
        c = crops[name]
        print(
            f"{name:<9} {len(found):>4}/{len(part):<4}  {q[0]:.3f} {q[1]:.3f} {q[2]:.3f}"
            f"            {np.median(found['dx']):+.3f}, {np.median(found['dy']):+.3f}"
            f"                  margin {c.margin}, shift_x {c.shift_x}, shift_y {c.shift_y}"
        )
    return crops


def blend(a: DetectConfig, b: DetectConfig, w: float) -> DetectConfig:
    """The crop ``w`` of the way from ``a`` to ``b`` (the other settings of ``a``)."""
    return a.model_copy(
        update={
            field: round(float(getattr(a, field) + w * (getattr(b, field) - getattr(a, field))), 2)
            for field in CROP_FIELDS
        }
    )


def check_model(
    samples: list[Sample], detector: FaceDetector, crops: dict[str, DetectConfig], model: Path
) -> None:
    """MAE per source with each candidate crop of the detected face, against the plain photo."""
    from agecheck.model.age_model import AgeModel

    predictor = AgeModel.load(model)
    labelled = [s for s in samples if s.age is not None]
    if not labelled:
        print("no labels (no data/split/val.csv): MAE check skipped")
        return
    boxes = [detector.detect(s.canvas) for s in labelled]
    keep = [i for i, b in enumerate(boxes) if b]
    ages = np.array([labelled[i].age for i in keep])
    sources = np.array([labelled[i].source for i in keep])
    plain = [
        labelled[i].canvas.crop((labelled[i].side // 2,) * 2 + (labelled[i].side * 3 // 2,) * 2) for i in keep
    ]
    candidates = {"photo as trained": None, **{f"crop of {name}": crop for name, crop in crops.items()}}
    names = sorted(set(sources))
    if len(names) == 2:  # crops between the two sources' own
        for w in (0.25, 0.5, 0.75):
            candidates[f"{w:.2f} from {names[0]} to {names[1]}"] = blend(crops[names[0]], crops[names[1]], w)
    print(f"\nMAE on {len(keep)} detected validation photos ({model}):")
    for label, crop in candidates.items():
        images = plain if crop is None else [crop_face(labelled[i].canvas, boxes[i][0], crop) for i in keep]
        label = label if crop is None else f"{label} ({crop.margin}, {crop.shift_x:+}, {crop.shift_y:+})"
        arrays = np.stack([square_resize(image, predictor.input_size) for image in images])
        errors = np.abs(predictor.predict(arrays) - ages)
        per_source = ", ".join(f"{src} {errors[sources == src].mean():.2f}" for src in sorted(set(sources)))
        print(f"  {label:<38} all {errors.mean():.2f}  ({per_source})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-source", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument(
        "--detector", choices=sorted(MODELS), help="BlazeFace model (default: params.yaml detect.model)"
    )
    parser.add_argument("--check-model", type=Path, help="also compare the model's MAE per crop")
    args = parser.parse_args()
    params = load_params(args.params)
    model_name = args.detector or params.detect.model
    # every detected face counts, however small (min_face 1 px: DetectConfig allows no 0)
    detect = params.detect.model_copy(update={"model": model_name, "min_face": 1})
    detector = FaceDetector(detect)
    samples = sample_photos(params, args.per_source, args.seed)
    print(f"detector BlazeFace {model_name}, {len(samples)} photos\n")
    crops = report(measure(samples, detector), detect)
    if args.check_model:
        check_model(samples, detector, crops, args.check_model)


if __name__ == "__main__":
    main()
