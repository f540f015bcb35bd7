"""The exported LiteRT and ONNX models against the Keras model: the same ages on val photos? How fast?

    python -m benchmarks.export_parity [--model models/age_model.keras] [--split val] [--runs 200]

Exports the model (LiteRT with float32 and float16 weights, ONNX) to a temporary folder with
``agecheck export``'s own function, runs each on the split's aligned faces (as in training), and
prints per model: file size, MAE, the largest and the mean absolute difference of the age from the
Keras model's, and the p50/p95 latency of one face (the till's case) and per face in a batch of
16. Float16 is worth using only if its MAE stays within 0.1 years of the Keras model's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import DEFAULT_MODEL, load_params
from agecheck.export.formats import export_model
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel


def latency_ms(model: AgeModel, faces: np.ndarray, runs: int) -> tuple[float, float]:
    """p50 and p95 of ``model.predict`` on ``faces`` (after a warm-up), in ms."""
    for _ in range(3):
        model.predict(faces)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict(faces)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    table = pd.read_csv(Path("data/split") / f"{args.split}.csv", dtype={"id": str, "member": str})
    keras_model = AgeModel.load(args.model)
    faces = read_faces(Path("data/faces/faces.csv"))
    images = model_inputs(table, Path("data/validated"), faces, load_params().align, keras_model.input_size)
    truth = table["age"].to_numpy(float)
    reference = keras_model.predict(images)
    print(f"{args.split} split: {len(table)} aligned faces; Keras model {args.model}")
    columns = ["model", "file MiB", "MAE", "max abs diff (years)", "mean abs diff", "1 face p50 / p95 ms"]
    print("| " + " | ".join([*columns, "per face in 16, p50 ms"]) + " |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        models = {"keras": (keras_model, args.model.stat().st_size)}
        for fmt, quantize in (("tflite", "none"), ("tflite", "float16"), ("onnx", "none")):
            path = Path(tmp) / f"age_{quantize}.{fmt}"
            export_model(keras_model, path, fmt, quantize)  # type: ignore[arg-type]
            models[f"{fmt} {quantize}"] = (AgeModel.load(path), path.stat().st_size)
        for name, (model, size) in models.items():
            ages = reference if name == "keras" else model.predict(images)
            diff = np.abs(ages - reference)
            one = latency_ms(model, images[:1], args.runs)
            sixteen = latency_ms(model, images[:16], max(20, args.runs // 10))[0] / 16
            print(
                f"| {name} | {size / 2**20:.1f} | {np.mean(np.abs(ages - truth)):.3f} | {diff.max():.4f} | "
                f"{diff.mean():.4f} | {one[0]:.1f} / {one[1]:.1f} | {sixteen:.2f} |"
            )


if __name__ == "__main__":
    main()
