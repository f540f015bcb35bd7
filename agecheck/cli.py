"""The ``agecheck`` command: estimate ages of photos, measure a model on labelled photos, serve HTTP.

Only argument parsing lives at module level: the heavy libraries (TensorFlow, pandas, the
service) are imported by the command that needs them, so ``--help`` and ``--version`` are instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agecheck.config import DEFAULT_MODEL, DEFAULT_PARAMS, Params, load_params
from agecheck.errors import AgecheckError, exit_on_error

if TYPE_CHECKING:
    import pandas as pd

    from agecheck.till.pipeline import Till

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
OUTPUT_FORMATS = (".csv", ".json")
#: Columns of ``predict``'s rows: one per face, or one per photo without a face (``status``).
FACE_COLUMNS = (
    *("file", "face", "left", "top", "width", "height", "score"),
    *("age", "age_low", "age_high", "age_sd", "interval", "decision", "status"),
)
#: Photos read and predicted together: bounds the memory used on huge folders.
CHUNK = 256
T = TypeVar("T")

EXIT_CODES = """exit status:
  0    done (predict: at least one photo was read)
  1    predict: no photo could be read
  2    bad input or usage (a one-line "error: ..." on stderr)
  130  interrupted"""


# --- input --------------------------------------------------------------------------------------


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


def _chunked(files: Sequence[Path], batch_size: int, run: Callable[[Sequence[Path]], list[T]]) -> list[T]:
    """``run`` on ``files`` in chunks of :data:`CHUNK`, results in order (progress bar on stderr)."""
    from tqdm import tqdm

    results: list[T] = []
    with tqdm(total=len(files), unit="photo", disable=len(files) <= batch_size, file=sys.stderr) as bar:
        for start in range(0, len(files), CHUNK):
            chunk = files[start : start + CHUNK]
            results.extend(run(chunk))
            bar.update(len(chunk))
    return results


def _load_till(args: argparse.Namespace) -> tuple[Till, Params]:
    """The till pipeline for ``--model`` with the ``detect``, ``policy`` and ``serve`` params."""
    from agecheck.model.age_model import AgeModel
    from agecheck.till.pipeline import Till

    params = load_params(args.params)
    model = AgeModel.load(args.model)
    return Till(model, params.detect, params.policy, params.serve.interval), params


def _faces_of(
    till: Till, params: Params, files: Sequence[Path], detect: bool, batch_size: int
) -> Iterator[Any]:
    """``(file, reason, faces)`` per file: ``reason`` empty when read, ``faces`` a list of results."""
    from agecheck.data.images import PhotoRejected, read_photo

    images, reasons = {}, {}
    for path in files:
        try:
            images[path] = read_photo(path, params.validate_)
        except PhotoRejected as err:
            reasons[path] = err.reason
    results = dict(zip(images, till.run(list(images.values()), detect, batch_size), strict=True))
    for path in files:
        yield path, reasons.get(path, ""), results.get(path, [])


# --- output -------------------------------------------------------------------------------------


def write_table(table: pd.DataFrame, output: Path | None) -> None:
    """``table`` as CSV on stdout, or as a CSV or JSON file (by extension; empty cells become null)."""
    import json

    import pandas as pd

    if output is None:
        table.to_csv(sys.stdout, index=False, float_format="%.1f", lineterminator="\n")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".json":
        rows = [
            {key: None if (value == "" or pd.isna(value)) else value for key, value in row.items()}
            for row in table.to_dict("records")
        ]
        output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    else:
        table.to_csv(output, index=False, float_format="%.1f")


def _report_skipped(what: str, reasons: Sequence[str]) -> None:
    """One stderr line counting skipped items by reason."""
    from collections import Counter

    if reasons:
        counts = ", ".join(f"{reason} {n}" for reason, n in Counter(reasons).most_common())
        print(f"skipped {len(reasons)} {what}: {counts}", file=sys.stderr)


def _face_rows(file: Path, reason: str, faces: list[Any]) -> list[dict[str, Any]]:
    """One row per face (box flattened), or one row saying why the photo has none."""
    if reason or not faces:
        return [{"file": str(file), "face": None, "status": reason or "no_face"}]
    rows = []
    for index, face in enumerate(faces):
        record = face.record()
        box = record.pop("box") or {}
        rows.append({"file": str(file), "face": index, **box, **record, "status": "ok"})
    return rows


# --- commands -----------------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    """``agecheck predict``: 0 when at least one photo was read, else 1."""
    import pandas as pd

    _check_output(args.output, OUTPUT_FORMATS)
    files = find_photos(args.paths)
    till, params = _load_till(args)
    detect = not args.no_detect
    found = _chunked(
        files, args.batch_size, lambda chunk: list(_faces_of(till, params, chunk, detect, args.batch_size))
    )
    unread = [(file, reason) for file, reason, _ in found if reason]
    for file, reason in unread:
        print(f"cannot read {file}: {reason}", file=sys.stderr)
    if detect:
        table = pd.DataFrame([row for item in found for row in _face_rows(*item)], columns=list(FACE_COLUMNS))
        table["face"] = table["face"].astype("Int64")
        faces = sum(len(item[2]) for item in found)
        print(f"{faces} faces in {len(files) - len(unread)} of {len(files)} photos", file=sys.stderr)
    else:  # each photo is one face crop: file, age (and why not, for unreadable ones)
        ages = [round(faces[0].estimate.age, 1) if faces else None for _, _, faces in found]
        table = pd.DataFrame(
            {"file": [str(f) for f, _, _ in found], "age": ages, "error": [r for _, r, _ in found]}
        )
        if args.output is None:
            table = table.drop(columns="error")
    write_table(table, args.output)
    done = len(files) - len(unread)
    if args.output is not None:
        print(f"predicted {done} of {len(files)} photos -> {args.output}", file=sys.stderr)
    return 0 if done else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``agecheck evaluate``: metrics of the model on a labelled folder of face crops."""
    import json

    import numpy as np
    import pandas as pd

    from agecheck.data.labels import check_rows, read_labels
    from agecheck.evaluation.evaluate import (
        GROUP_COLUMNS,
        evaluate_predictions,
        summary_line,
        write_evaluation,
    )

    _check_output(args.output, (".json",))
    folder = Path(args.folder)
    if not (folder / "labels.csv").is_file() or not (folder / "final_files").is_dir():
        raise AgecheckError(f"{folder} must contain labels.csv and final_files/")
    till, params = _load_till(args)
    checked = check_rows(
        read_labels((folder / "labels.csv").read_bytes(), str(folder / "labels.csv")), params.validate_
    )
    _report_skipped("label rows", list(checked.loc[checked["reason"] != "", "reason"]))
    labels = checked[checked["reason"] == ""]
    if labels.empty:
        raise AgecheckError(f"no usable label rows in {folder / 'labels.csv'}")
    files = [folder / "final_files" / name for name in labels["file_name"]]
    found = _chunked(
        files, args.batch_size, lambda chunk: list(_faces_of(till, params, chunk, False, args.batch_size))
    )
    _report_skipped("photos", [reason for _, reason, _ in found if reason])
    ok = np.array([not reason for _, reason, _ in found])
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
    predicted = np.array([faces[0].estimate.age for _, reason, faces in found if not reason])
    predictions, metrics = evaluate_predictions(table, predicted, params.policy)
    print(f"evaluate {folder}: {summary_line(metrics)}", file=sys.stderr)
    if args.plots is not None:
        write_evaluation(predictions, metrics, args.plots, params.policy)
    if args.output is None:
        print(json.dumps(metrics, indent=2))
    else:
        from agecheck.outputs import write_json

        write_json(args.output, metrics)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``agecheck serve``: the HTTP service until interrupted."""
    import os

    import uvicorn

    from agecheck.till import service

    params = load_params(args.params)
    host, port = args.host or params.serve.host, args.port or params.serve.port
    workers = args.workers or params.serve.workers
    if workers == 1:
        app = service.build_app(args.model, params)  # a bad model fails here, with a one-line error
        uvicorn.run(app, host=host, port=port, log_level="info")
    else:  # each worker process loads its own model through the factory
        from agecheck.model.age_model import AgeModel

        AgeModel.load(args.model)  # fail early, with a one-line error, on a bad model
        os.environ[service.ENV_MODEL], os.environ[service.ENV_PARAMS] = str(args.model), str(args.params)
        uvicorn.run(f"{service.__name__}:app_from_env", factory=True, host=host, port=port, workers=workers)
    return 0


# --- command line -------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _command(
    commands: Any, name: str, run: Callable[[argparse.Namespace], int], help: str, examples: str
) -> Any:
    """A subcommand with its examples, the exit codes, and the options every command takes."""
    sub = commands.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(run=run)
    sub.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help=f"trained model (default: {DEFAULT_MODEL})"
    )
    sub.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help=f"parameter file (default: {DEFAULT_PARAMS})"
    )
    return sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agecheck",
        description="Estimate ages from face photos; Challenge 25 decisions at the till.",
        epilog=f"'agecheck COMMAND --help' shows a command's options and examples.\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agecheck {version('agecheck')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = _command(
        commands,
        "predict",
        cmd_predict,
        "estimate the age of every face in photos (files or folders)",
        "  agecheck predict frame.jpg                 one row per face: box, age, interval, decision\n"
        "  agecheck predict photos/ --output faces.json\n"
        "  agecheck predict crops/ --no-detect        photos are face crops: file,age per photo",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="photo files or folders (recursive)")
    predict.add_argument("--output", type=Path, help="write a .csv or .json file instead of printing")
    predict.add_argument(
        "--no-detect", action="store_true", help="photos are face crops already: one age per photo, no boxes"
    )

    evaluate = _command(
        commands,
        "evaluate",
        cmd_evaluate,
        "measure the model on a labelled folder of face crops (final_files/ + labels.csv)",
        "  agecheck evaluate ../shared/datasets/aaf --output aaf.json --plots aaf_plots/",
    )
    evaluate.add_argument("folder", metavar="DIR", help="folder with final_files/ and labels.csv")
    evaluate.add_argument("--output", type=Path, help="metrics .json file (default: print to stdout)")
    evaluate.add_argument(
        "--plots", type=Path, help="folder for predictions.csv, details.json and the figures"
    )
    for sub in (predict, evaluate):
        sub.add_argument(
            "--batch-size", type=_positive, default=64, help="faces per model call (default: 64)"
        )

    serve = _command(
        commands,
        "serve",
        cmd_serve,
        "run the HTTP service (POST /predict, GET /health, /docs)",
        "  agecheck serve                             http://127.0.0.1:8000 (serve: in params.yaml)\n"
        "  curl --data-binary @frame.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/predict",
    )
    serve.add_argument("--host", help="default: serve.host in the params")
    serve.add_argument("--port", type=int, help="default: serve.port in the params")
    serve.add_argument(
        "--workers", type=_positive, help="processes, each with the model (default: serve.workers)"
    )
    return parser


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors exit with status 2)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
