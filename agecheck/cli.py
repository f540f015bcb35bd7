"""The ``agecheck`` command: estimate ages of photos, measure a model on labelled photos, serve HTTP.

Only argument parsing lives at module level: the heavy libraries (TensorFlow, pandas, the
service) are imported by the command that needs them, so ``--help`` and ``--version`` are instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from agecheck import cli_io
from agecheck.config import DEFAULT_MODEL, DEFAULT_PARAMS, IN_CHECKOUT, load_params, or_default
from agecheck.errors import AgecheckError, exit_on_error

#: How to get what the pipeline commands need beyond the till (``agecheck evaluate``, ``export``).
PIPELINE_INSTALL = "pip install 'agecheck[pipeline]'"


@contextmanager
def needs_pipeline(command: str) -> Iterator[None]:
    """Imports of a command that only ``agecheck[pipeline]`` installs (SciPy, scikit-learn,
    matplotlib): in a till install, one line naming the missing package and the extra."""
    try:
        yield
    except ImportError as err:
        raise AgecheckError(f"agecheck {command} needs {err.name}: {PIPELINE_INSTALL}") from None


#: Where ``agecheck export`` writes by default (git-ignored; not a DVC output).
EXPORT_DIR = Path("export")

EXIT_CODES = """exit status:
  0    done (predict: at least one photo was read)
  1    predict: no photo could be read
  2    bad input or usage (a one-line "error: ..." on stderr)
  130  interrupted"""


# --- commands -----------------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    """``agecheck predict``: 0 when at least one photo was read, else 1."""
    import pandas as pd

    from agecheck.till.estimates_log import EstimatesLog

    cli_io.check_output(args.output, cli_io.OUTPUT_FORMATS)
    files = cli_io.find_photos(args.paths)
    till, params = cli_io.load_till(args)
    log = EstimatesLog.open(args.log or "")  # before the work: a log that cannot be written fails at once
    detect = not args.no_detect
    found = cli_io.chunked(
        files,
        args.batch_size,
        lambda chunk: list(cli_io.faces_of(till, params, chunk, detect, args.batch_size)),
    )
    unread = [(file, reason) for file, reason, _ in found if reason]
    for file, reason in unread:
        print(f"cannot read {file}: {reason}", file=sys.stderr)
    if detect:
        table = pd.DataFrame(
            [row for item in found for row in cli_io.face_rows(*item)], columns=list(cli_io.FACE_COLUMNS)
        )
        table = table.astype({"face": "Int64", "customer": "boolean"})
        faces = sum(len(item[2]) for item in found)
        print(f"{faces} faces in {len(files) - len(unread)} of {len(files)} photos", file=sys.stderr)
    else:  # each photo is one face crop: file, age (and why not, for unreadable ones)
        ages = [round(faces[0].estimate.age, 1) if faces else None for _, _, faces in found]
        table = pd.DataFrame(
            {"file": [str(f) for f, _, _ in found], "age": ages, "error": [r for _, r, _ in found]}
        )
        if args.output is None:
            table = table.drop(columns="error")
    cli_io.write_table(table, args.output)
    if log is not None:
        with log:
            cli_io.log_estimates(log, found, params.policy)
        print(f"estimates of {len(found)} photos appended to {args.log}", file=sys.stderr)
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

    with needs_pipeline("evaluate"):
        from agecheck.evaluation.evaluate import (
            GROUP_COLUMNS,
            evaluate_predictions,
            summary_line,
            write_evaluation,
        )

    cli_io.check_output(args.output, (".json",))
    folder = Path(args.folder)
    if not (folder / "labels.csv").is_file() or not (folder / "final_files").is_dir():
        raise AgecheckError(f"{folder} must contain labels.csv and final_files/")
    till, params = cli_io.load_till(args)
    checked = check_rows(
        read_labels((folder / "labels.csv").read_bytes(), str(folder / "labels.csv")), params.validate_
    )
    cli_io.report_skipped("label rows", list(checked.loc[checked["reason"] != "", "reason"]))
    labels = checked[checked["reason"] == ""]
    if labels.empty:
        raise AgecheckError(f"no usable label rows in {folder / 'labels.csv'}")
    files = [folder / "final_files" / name for name in labels["file_name"]]
    found = cli_io.chunked(
        files,
        args.batch_size,
        lambda chunk: list(cli_io.faces_of(till, params, chunk, False, args.batch_size)),
    )
    cli_io.report_skipped("photos", [reason for _, reason, _ in found if reason])
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
    predictions, evaluation = evaluate_predictions(table, predicted, params.policy)
    print(f"evaluate {folder}: {summary_line(evaluation)}", file=sys.stderr)
    if args.plots is not None:
        write_evaluation(predictions, evaluation, args.plots, params.policy)
    if args.output is None:
        print(json.dumps(evaluation.model_dump(), indent=2))
    else:
        evaluation.write(args.output)
    return 0


def _customer_estimates(
    args: argparse.Namespace,
    sales: Any,
    folder: Path,
    needed: Any = None,
    noun: str = "sales log",
    with_probs: bool = False,
) -> tuple[Any, Any]:
    """Each sale's customer estimate (indexed by ``sale_id``) and the customers' softmaxes (rows alike;
    None from a log read without ``with_probs``): from the estimates log (``--estimates``), or the
    frames of the needed sales through the till in batches, each frame once however many sales it is
    behind."""
    from agecheck.audit import estimates, photos

    if args.estimates is not None:
        return estimates.log_estimates(args.estimates, load_params(args.params).policy, with_probs)
    files = photos.photo_files(sales, folder, needed, noun)
    frames = list(dict.fromkeys(files))
    till, params = cli_io.load_till(args)
    judged = cli_io.chunked(
        frames,
        args.batch_size,
        lambda chunk: [item[1:] for item in cli_io.faces_of(till, params, chunk, True, args.batch_size)],
    )
    by_frame = dict(zip(frames, judged, strict=True))
    return photos.photo_estimates(list(files.index), [by_frame[file] for file in files])


def cmd_audit(args: argparse.Namespace) -> int:
    """``agecheck audit``: which cashiers sell alcohol without an ID check to young-looking customers."""
    with needs_pipeline("audit"):
        from agecheck.audit import estimates, run
        from agecheck.audit.sales import read_sales

    params = load_params(args.params)
    sales = read_sales(args.sales, photos=args.estimates is None)
    calibration = run.read_calibration(
        args.calibration or args.model.with_suffix(".calibration.json"), args.calibration is not None
    )
    found, _ = _customer_estimates(args, sales, args.sales.parent)
    joined = estimates.join_estimates(sales, found, str(args.estimates or "the frames"))
    audit = run.audit_sales(joined, params.policy, params.audit, args.review, calibration)
    run.write_audit(audit, args.output)
    print(f"audit {args.sales}: {run.summary_line(audit)} -> {args.output}/", file=sys.stderr)
    return 0


def cmd_segments(args: argparse.Namespace) -> int:
    """``agecheck segments``: what each age group buys, corrected for the model's errors."""
    with needs_pipeline("segments"):
        from agecheck.segments import run
        from agecheck.segments.groups import Groups, read_confusion
        from agecheck.segments.receipts import read_receipts

    params = load_params(args.params)
    receipts = read_receipts(args.receipts, photos=args.estimates is None)
    groups = Groups.from_config(params.segments)
    confusion = read_confusion(args.calibration or args.model.with_suffix(".calibration.json"), groups)
    everyone = run.every_sale(receipts)
    found, probs = _customer_estimates(
        args, receipts.sales, args.receipts.parent, everyone, "receipts log", True
    )
    receipts, probs = run.join(receipts, found, probs, str(args.estimates or "the frames"))
    segments = run.segment(receipts, groups, confusion, params.segments, probs)
    run.write_segments(segments, args.output)
    print(f"segments {args.receipts}: {run.summary_line(segments)} -> {args.output}/", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``agecheck export``: the model as one LiteRT or ONNX file (and the face detector beside it)."""
    import importlib.util
    import shutil

    from agecheck.export.formats import export_model
    from agecheck.faces.detection import detector_file
    from agecheck.model.age_model import EXPORT_SUFFIXES, AgeModel

    if importlib.util.find_spec("tensorflow") is None:
        raise AgecheckError(f"agecheck export needs TensorFlow: {PIPELINE_INSTALL}")
    params = load_params(args.params)
    output = args.output or EXPORT_DIR / Path(args.model).with_suffix(EXPORT_SUFFIXES[args.format]).name
    export_model(AgeModel.load(args.model), output, args.format, args.quantize)
    detector = detector_file(params.detect.model)
    shutil.copyfile(detector, output.parent / detector.name)
    size = output.stat().st_size / 2**20
    print(
        f"export: {output} ({size:.1f} MiB, weights {args.quantize}) + {output.name}.json; "
        f"face detector {output.parent / detector.name} (BlazeFace {params.detect.model})",
        file=sys.stderr,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``agecheck serve``: the HTTP service until interrupted."""
    import os

    import uvicorn

    from agecheck.service import app as service
    from agecheck.service.access import check_exposure, load_tokens
    from agecheck.till.estimates_log import EstimatesLog

    params = load_params(args.params)
    host, port = args.host or params.serve.host, args.port or params.serve.port
    workers = args.workers or params.serve.workers
    tokens = load_tokens(params.serve)
    check_exposure(host, tokens, args.open)
    if (log := EstimatesLog.open(params.serve.estimates_log)) is not None:
        log.close()  # each worker opens it for itself: fail here, with a one-line error, if it cannot
    if workers == 1:
        app = service.build_app(args.model, params)  # a bad model fails here, with a one-line error
    else:  # each worker process loads its own model through the factory
        from agecheck.model.age_model import AgeModel

        AgeModel.load(args.model)  # fail early, with a one-line error, on a bad model
        os.environ[service.ENV_MODEL], os.environ[service.ENV_PARAMS] = str(args.model), str(args.params)
    if not tokens:
        print(
            f"warning: no API token configured (serve.token_env, serve.token_file): whatever can reach "
            f"{host}:{port} may send photos; never put a proxy in front of it without a token",
            file=sys.stderr,
        )
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info")
    else:
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
    sub.add_argument("--model", type=Path, help=f"trained model ({_default_text(DEFAULT_MODEL)})")
    sub.add_argument("--params", type=Path, help=f"parameter file ({_default_text(DEFAULT_PARAMS)})")
    return sub


def _default_text(default: Path) -> str:
    return f"default: {default}" if IN_CHECKOUT else "required: agecheck is not in its project checkout"


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
        "--no-detect",
        action="store_true",
        help="each photo is one face (a crop): one age per photo, no boxes; still aligned on its best face",
    )
    predict.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="also append one estimates-log line per photo to FILE (docs/serving.md: the estimates log)",
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
    audit = _command(
        commands,
        "audit",
        cmd_audit,
        "find cashiers who sell alcohol without an ID check to customers the till estimated under the "
        "threshold more often than their store's other cashiers (docs/audit.md)",
        "  agecheck audit sales.csv --estimates estimates.jsonl   the estimates from the till's log\n"
        "  agecheck audit sales.csv                               frames (photo column) through the till\n"
        "  agecheck audit sales.jsonl --estimates estimates.jsonl --output audit/2025-03 --review 500",
    )
    audit.add_argument(
        "sales", type=Path, metavar="SALES", help="sales log: .csv, or .jsonl/.json (JSON lines)"
    )
    audit.add_argument(
        "--estimates",
        type=Path,
        metavar="LOG",
        help="the till's estimates log (serve.estimates_log, predict --log); without it, SALES has a photo "
        "column",
    )
    audit.add_argument(
        "--output",
        type=Path,
        default=Path("audit"),
        metavar="DIR",
        help="folder of the results (default: audit)",
    )
    audit.add_argument(
        "--review",
        type=_positive,
        metavar="N",
        help="unchecked alcohol sales listed for review (default: audit.review)",
    )
    audit.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="the model's calibration file, for adult_asked_rate (default: beside --model, if there)",
    )
    segments = _command(
        commands,
        "segments",
        cmd_segments,
        "what each age group buys: per group, its share of the shoppers and of each category, corrected for "
        "the model's errors (docs/segments.md)",
        "  agecheck segments receipts.csv --estimates estimates.jsonl   the estimates from the till's log\n"
        "  agecheck segments receipts.csv                               frames (photo column) through the "
        "till\n"
        "  agecheck segments receipts.jsonl --estimates estimates.jsonl --output segments/2025-03",
    )
    segments.add_argument(
        "receipts",
        type=Path,
        metavar="RECEIPTS",
        help="receipts log, one row per sale and category: .csv, or .jsonl/.json (JSON lines)",
    )
    segments.add_argument(
        "--estimates",
        type=Path,
        metavar="LOG",
        help="the till's estimates log (serve.estimates_log, predict --log); without it, RECEIPTS has a "
        "photo column",
    )
    segments.add_argument(
        "--output",
        type=Path,
        default=Path("segments"),
        metavar="DIR",
        help="folder of the results (default: segments)",
    )
    segments.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="the model's calibration file, for its confusion matrix (default: beside --model)",
    )
    for sub in (predict, evaluate, audit, segments):
        sub.add_argument(
            "--batch-size", type=_positive, default=64, help="faces per model call (default: 64)"
        )

    export = _command(
        commands,
        "export",
        cmd_export,
        "write the model as a LiteRT (.tflite) or ONNX file for a till PC without TensorFlow",
        "  agecheck export                       export/age_model.tflite (+ .tflite.json, + the detector)\n"
        "  agecheck export --quantize float16 --output till/age_model_fp16.tflite\n"
        "  agecheck export --format onnx         export/age_model.onnx (+ .onnx.json, + the detector)\n"
        "  agecheck predict frame.jpg --model export/age_model.tflite",
    )
    export.add_argument(
        "--output",
        type=Path,
        help=f"the exported file (default: {EXPORT_DIR}/ + the model's name + .tflite or .onnx)",
    )
    export.add_argument(
        "--format",
        choices=("tflite", "onnx"),
        default="tflite",
        help="tflite (LiteRT) or onnx (ONNX Runtime); neither needs TensorFlow at the till (default: tflite)",
    )
    export.add_argument(
        "--quantize",
        choices=("none", "float16"),
        default="none",
        help="weights (default: none, float32; float16: tflite only)",
    )

    serve = _command(
        commands,
        "serve",
        cmd_serve,
        "run the HTTP service (POST /predict, GET /health, /docs)",
        "  agecheck serve                             http://127.0.0.1:8000 (serve: in params.yaml)\n"
        "  curl --data-binary @frame.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/predict\n"
        "  AGECHECK_TOKEN=$(cat /etc/agecheck/token) agecheck serve --host 10.0.0.5\n"
        "  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: image/jpeg' \\\n"
        "       --data-binary @frame.jpg http://10.0.0.5:8000/predict",
    )
    serve.add_argument("--host", help="default: serve.host in the params")
    serve.add_argument("--port", type=int, help="default: serve.port in the params")
    serve.add_argument(
        "--workers", type=_positive, help="processes, each with the model (default: serve.workers)"
    )
    serve.add_argument(
        "--open",
        action="store_true",
        help="serve a non-loopback host without an API token (anyone on the network may send photos)",
    )
    return parser


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors exit with status 2)."""
    quiet_tensorflow()
    args = build_parser().parse_args(argv)
    missing = " and ".join(f"--{name}" for name in ("model", "params") if getattr(args, name) is None)
    args.model = or_default(args.model, DEFAULT_MODEL, missing)
    args.params = or_default(args.params, DEFAULT_PARAMS, missing)
    return args.run(args)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up logging (C++ INFO and WARNING lines, on every command that loads it)
    off stderr, errors still shown; set before anything imports it, and a user's own
    ``TF_CPP_MIN_LOG_LEVEL`` (0: everything) wins. The lines TensorFlow and LiteRT print before they
    read it are dropped by :func:`agecheck.model.runtimes.native_notices_dropped`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


if __name__ == "__main__":
    sys.exit(main())
