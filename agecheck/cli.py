"""The ``agecheck`` command: predict ages of photos, or evaluate a model on a labelled photo folder."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from agecheck.challenge25 import Policy, load_policy
from agecheck.errors import AgecheckError, exit_on_error
from agecheck.estimates import AgeEstimator
from agecheck.evaluation import GROUP_COLUMNS, evaluate_predictions, summary_line, write_evaluation
from agecheck.faces import Box, CropSpec, FaceDetector
from agecheck.images import PhotoRejected, read_photo
from agecheck.labels import AgeRange, check_rows, read_labels
from agecheck.model_io import DEFAULT_MODEL, AgePredictor
from agecheck.params import DEFAULT_PARAMS, load_params
from agecheck.preprocess import square_resize
from agecheck.till import decision, detect_settings, face_crops

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
OUTPUT_FORMATS = (".csv", ".json")
#: Photos read and predicted together: bounds the memory used on huge folders.
CHUNK = 256
T = TypeVar("T")


@dataclass(frozen=True)
class Prediction:
    """The predicted age of one photo file, or why it could not be read."""

    file: Path
    age: float | None
    error: str = ""


# --- shared by predict and evaluate -------------------------------------------------------------


def _chunks(files: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(files), size):
        yield files[start : start + size]


def _predict_chunk(predictor: AgePredictor, files: Sequence[Path], batch_size: int) -> list[Prediction]:
    """Read and predict some files; unreadable ones get their rejection reason."""
    arrays: dict[Path, np.ndarray] = {}
    rejected: dict[Path, str] = {}
    for path in files:
        image, reason = _read(path)
        if image is None:
            rejected[path] = reason
        else:
            arrays[path] = square_resize(image, predictor.input_size)
    ages = predictor.predict_arrays(np.stack(list(arrays.values())), batch_size) if arrays else []
    found = {path: Prediction(path, float(age)) for path, age in zip(arrays, ages, strict=True)}
    return [found.get(path) or Prediction(path, None, rejected[path]) for path in files]


def _chunked(files: Sequence[Path], batch_size: int, run: Callable[[Sequence[Path]], list[T]]) -> list[T]:
    """``run`` on ``files`` in chunks of :data:`CHUNK`, results in order (progress bar on stderr)."""
    results: list[T] = []
    with tqdm(total=len(files), unit="photo", disable=len(files) <= batch_size, file=sys.stderr) as bar:
        for chunk in _chunks(files, CHUNK):
            results.extend(run(chunk))
            bar.update(len(chunk))
    return results


def predict_files(predictor: AgePredictor, files: Sequence[Path], batch_size: int) -> list[Prediction]:
    """Predictions for ``files`` in order, in chunks of :data:`CHUNK` (progress bar on stderr)."""
    return _chunked(files, batch_size, lambda chunk: _predict_chunk(predictor, chunk, batch_size))


def _read(path: Path) -> tuple[object, str]:
    """The upright photo at ``path``, or ``None`` and the reason it cannot be used."""
    try:
        return read_photo(path), ""
    except PhotoRejected as err:
        return None, "file_missing" if not path.exists() else err.reason


def _report_skipped(what: str, reasons: Sequence[str]) -> None:
    """One stderr line counting skipped items by reason."""
    if reasons:
        counts = ", ".join(f"{reason} {n}" for reason, n in Counter(reasons).most_common())
        print(f"skipped {len(reasons)} {what}: {counts}", file=sys.stderr)


# --- predict ------------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_photos(paths: Sequence[str]) -> list[Path]:
    """Photo files named directly, and image files inside folders (recursive, sorted)."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(_images_in(path))
        elif path.is_file():
            files.append(path)
        else:
            raise AgecheckError(f"no such photo or folder: {name}")
    if not files:
        raise AgecheckError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {', '.join(paths)}")
    return files


def _check_output(output: Path | None, allowed: Sequence[str]) -> None:
    if output is not None and output.suffix.lower() not in allowed:
        raise AgecheckError(f"--output must end with {' or '.join(allowed)} (got {output.name})")


def _predictions_table(results: Sequence[Prediction]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": [str(r.file) for r in results],
            "age": [None if r.age is None else round(r.age, 1) for r in results],
            "error": [r.error for r in results],
        }
    )


def write_table(table: pd.DataFrame, output: Path) -> None:
    """Write ``table`` as CSV or JSON (by the extension of ``output``; empty cells become null)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".json":
        rows = [
            {key: None if (value == "" or pd.isna(value)) else value for key, value in row.items()}
            for row in table.to_dict("records")
        ]
        output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    else:
        table.to_csv(output, index=False)


def write_predictions(results: Sequence[Prediction], output: Path) -> None:
    """Write ``file, age, error`` rows as CSV or JSON (by the extension of ``output``)."""
    write_table(_predictions_table(results), output)


def print_predictions(results: Sequence[Prediction]) -> None:
    """``file,age`` on stdout for every photo (age empty when unreadable)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["file", "age"])
    for r in results:
        writer.writerow([str(r.file), "" if r.age is None else f"{r.age:.1f}"])


@dataclass(frozen=True)
class FaceRow:
    """One face found in a photo file, or a photo without a usable face (``status``)."""

    file: Path
    status: str  # ok, no_face, or why the photo cannot be read
    face: int | None = None
    box: Box | None = None
    age: float | None = None
    low: float | None = None
    high: float | None = None
    decision: str = ""

    def record(self) -> dict[str, object]:
        box = self.box.as_dict() if self.box else dict.fromkeys(("left", "top", "width", "height", "score"))
        rounded = {
            k: None if v is None else round(v, 1)
            for k, v in (("age", self.age), ("age_low", self.low), ("age_high", self.high))
        }
        return {
            "file": str(self.file),
            "face": self.face,
            **box,
            **rounded,
            "decision": self.decision,
            "status": self.status,
        }


@dataclass(frozen=True)
class Till:
    """What ``predict`` needs to find, crop and judge faces (params.yaml ``detect:``, ``policy:``)."""

    estimator: AgeEstimator
    detector: FaceDetector
    crop: CropSpec
    policy: Policy


def _faces_chunk(till: Till, files: Sequence[Path], batch_size: int) -> list[FaceRow]:
    """Detect the faces of some files and estimate their ages in one batched model run."""
    size = till.estimator.input_size
    found: list[tuple[Path, int, Box | None]] = []
    crops: list[np.ndarray] = []
    empty: dict[Path, str] = {}
    for path in files:
        image, reason = _read(path)
        faces = face_crops(image, size, till.detector, till.crop) if image is not None else None
        if faces is None or not faces.boxes:
            empty[path] = reason or "no_face"
            continue
        found += [(path, i, box) for i, box in enumerate(faces.boxes)]
        crops.append(faces.arrays)
    estimates = till.estimator.estimate(np.concatenate(crops), batch_size) if crops else []
    rows = {path: [FaceRow(path, status)] for path, status in empty.items()}
    for (path, index, box), e in zip(found, estimates, strict=True):
        row = FaceRow(path, "ok", index, box, e.age, e.low, e.high, decision(e.age, till.policy))
        rows.setdefault(path, []).append(row)
    return [row for path in files for row in rows[path]]


def predict_faces(till: Till, files: Sequence[Path], batch_size: int) -> list[FaceRow]:
    """One row per face (or per photo without one) for ``files`` in order, in chunks."""
    return _chunked(files, batch_size, lambda chunk: _faces_chunk(till, chunk, batch_size))


def _load_till(args: argparse.Namespace, predictor: AgePredictor) -> Till:
    """Detector, crop and policy from ``--params`` (the defaults when params.yaml is not here)."""
    params = load_params(args.params) if args.params != DEFAULT_PARAMS or args.params.is_file() else {}
    config, crop = detect_settings(params)
    return Till(AgeEstimator(predictor), FaceDetector(config), crop, Policy.from_params(params.get("policy")))


def _predict_photos(args: argparse.Namespace, files: Sequence[Path], predictor: AgePredictor) -> int:
    """``--no-detect``: every photo is one face crop; ``file,age`` rows. Returns the count done."""
    results = predict_files(predictor, files, args.batch_size)
    for r in results:
        if r.error:
            print(f"cannot read {r.file}: {r.error}", file=sys.stderr)
    if args.output is None:
        print_predictions(results)
    else:
        write_predictions(results, args.output)
    return sum(r.age is not None for r in results)


def _predict_faces(args: argparse.Namespace, files: Sequence[Path], predictor: AgePredictor) -> int:
    """Detection: one row per face with its box. Returns the number of photos read."""
    rows = predict_faces(_load_till(args, predictor), files, args.batch_size)
    unread = [r for r in rows if r.status not in ("ok", "no_face")]
    for r in unread:
        print(f"cannot read {r.file}: {r.status}", file=sys.stderr)
    table = pd.DataFrame([r.record() for r in rows])
    table["face"] = table["face"].astype("Int64")
    if args.output is None:
        table.to_csv(sys.stdout, index=False, float_format="%.1f", lineterminator="\n")
    else:
        write_table(table, args.output)
    faces = sum(r.status == "ok" for r in rows)
    print(f"{faces} faces in {len(files) - len(unread)} of {len(files)} photos", file=sys.stderr)
    return len(files) - len(unread)


def cmd_predict(args: argparse.Namespace) -> int:
    """``agecheck predict``: 0 when at least one photo was read (and predicted), else 1."""
    _check_output(args.output, OUTPUT_FORMATS)
    files = find_photos(args.paths)
    predictor = AgePredictor.load(args.model)
    done = (_predict_photos if args.no_detect else _predict_faces)(args, files, predictor)
    if args.output is not None:
        print(f"predicted {done} of {len(files)} photos -> {args.output}", file=sys.stderr)
    return 0 if done else 1


# --- evaluate -----------------------------------------------------------------------------------


def usable_labels(folder: Path) -> pd.DataFrame:
    """The usable rows of ``folder/labels.csv`` (rejected rows reported on stderr)."""
    labels_path = folder / "labels.csv"
    if not labels_path.is_file() or not (folder / "final_files").is_dir():
        raise AgecheckError(f"{folder} must contain labels.csv and final_files/")
    checked = check_rows(read_labels(labels_path.read_bytes(), str(labels_path)), AgeRange())
    _report_skipped("label rows", list(checked.loc[checked["reason"] != "", "reason"]))
    return checked[checked["reason"] == ""]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``agecheck evaluate``: metrics of the model on a labelled photo folder."""
    _check_output(args.output, (".json",))
    folder = Path(args.folder)
    if not folder.is_dir():
        raise AgecheckError(f"no such folder: {folder}")
    labels = usable_labels(folder)
    if labels.empty:
        raise AgecheckError(f"no usable label rows in {folder / 'labels.csv'}")
    predictor = AgePredictor.load(args.model)
    files = [folder / "final_files" / name for name in labels["file_name"]]
    results = predict_files(predictor, files, args.batch_size)
    _report_skipped("photos", [r.error for r in results if r.error])
    ok = np.array([r.age is not None for r in results])
    table = pd.DataFrame(
        {
            "id": labels["file_name"].to_numpy()[ok],
            "source": folder.resolve().name,
            "age": labels["age"].to_numpy(dtype=int)[ok],
        }
    )
    for column in GROUP_COLUMNS:
        if column in labels:
            table[column] = labels[column].to_numpy()[ok]
    predicted = np.array([r.age for r in results if r.age is not None])
    policy = load_policy()
    predictions, metrics = evaluate_predictions(table, predicted, policy)
    print(f"evaluate {folder}: {summary_line(metrics)}", file=sys.stderr)
    write_evaluation(predictions, metrics, args.output, args.plots, policy)
    if args.output is None:
        print(json.dumps(metrics, indent=2))
    return 0


# --- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """``agecheck serve``: the HTTP service until interrupted."""
    import os

    import uvicorn

    from agecheck import service

    settings = service.load_settings(load_params(args.params))
    host, port = args.host or settings.serve.host, args.port or settings.serve.port
    workers = args.workers or settings.serve.workers
    predictor = AgePredictor.load(args.model)  # fails early, with a one-line error, on a bad model
    if workers == 1:
        app = service.create_app(AgeEstimator(predictor, settings.serve.interval), settings)
        uvicorn.run(app, host=host, port=port, log_level="info")
    else:  # each worker process loads its own model through the factory
        os.environ[service.ENV_MODEL], os.environ[service.ENV_PARAMS] = str(args.model), str(args.params)
        uvicorn.run(f"{service.__name__}:app_from_env", factory=True, host=host, port=port, workers=workers)
    return 0


# --- command line -------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agecheck", description="Estimate ages from face photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="predict the age of photos (files or folders)")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="photo files or folders (recursive)")
    predict.add_argument("--output", type=Path, help="write a .csv or .json file instead of printing")
    predict.add_argument(
        "--no-detect", action="store_true", help="photos are face crops already: one age per photo, no boxes"
    )
    predict.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="detect: and policy: settings")
    predict.set_defaults(run=cmd_predict)
    evaluate = commands.add_parser("evaluate", help="measure the model on a labelled folder")
    evaluate.add_argument("folder", metavar="DIR", help="folder with final_files/ and labels.csv")
    evaluate.add_argument("--output", type=Path, help="metrics .json file (default: print to stdout)")
    evaluate.add_argument("--plots", type=Path, help="folder for predictions.csv and the figures")
    evaluate.set_defaults(run=cmd_evaluate)
    serve = commands.add_parser("serve", help="run the HTTP service (POST /predict, GET /health, /docs)")
    serve.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="serve:, detect: and policy: settings"
    )
    serve.add_argument("--host", help="default: serve.host in params")
    serve.add_argument("--port", type=int, help="default: serve.port in params")
    serve.add_argument(
        "--workers", type=_positive, help="processes, each with the model (default: serve.workers)"
    )
    serve.set_defaults(run=cmd_serve)
    for sub in (predict, evaluate, serve):
        sub.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}")
    for sub in (predict, evaluate):
        sub.add_argument("--batch-size", type=_positive, default=64, help="photos per model call")
    return parser


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors exit with status 2)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
