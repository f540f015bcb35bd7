"""Reading photo files and writing result tables for the ``agecheck`` command line.

Heavy libraries are imported inside the functions, so ``agecheck --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agecheck.config import Params, load_params
from agecheck.errors import AgecheckError

if TYPE_CHECKING:
    import pandas as pd

    from agecheck.config import PolicyConfig
    from agecheck.till.estimates_log import EstimatesLog
    from agecheck.till.pipeline import Till

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
OUTPUT_FORMATS = (".csv", ".json")
#: Columns of ``predict``'s rows: one per face, or one per photo without a face (``status``).
FACE_COLUMNS = (
    *("file", "face", "left", "top", "width", "height", "score"),
    *("age", "age_low", "age_high", "age_sd", "interval", "decision"),
    *("customer", "p_under_legal", "p_under_threshold", "status"),
)
#: Photos read and predicted together: bounds the memory used on huge folders.
CHUNK = 256
T = TypeVar("T")


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


def check_output(output: Path | None, allowed: Sequence[str]) -> None:
    if output is not None and output.suffix.lower() not in allowed:
        raise AgecheckError(f"--output must end with {' or '.join(allowed)} (got {output.name})")


def chunked(files: Sequence[Path], batch_size: int, run: Callable[[Sequence[Path]], list[T]]) -> list[T]:
    """``run`` on ``files`` in chunks of :data:`CHUNK`, results in order (progress bar on stderr)."""
    from tqdm import tqdm

    results: list[T] = []
    with tqdm(total=len(files), unit="photo", disable=len(files) <= batch_size, file=sys.stderr) as bar:
        for start in range(0, len(files), CHUNK):
            chunk = files[start : start + CHUNK]
            results.extend(run(chunk))
            bar.update(len(chunk))
    return results


def load_till(args: argparse.Namespace) -> tuple[Till, Params]:
    """The till pipeline for ``--model`` with the ``detect``, ``policy`` and ``serve`` params."""
    from agecheck.model.age_model import AgeModel
    from agecheck.till.pipeline import Till

    params = load_params(args.params)
    model = AgeModel.load(args.model)
    return Till.from_params(model, params), params


def faces_of(
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
    """``table`` as CSV on stdout, or as a CSV or JSON file (by extension; empty cells become null).
    Numbers are written as rounded where they were made (``FaceResult.record``); true/false columns
    (dtype ``boolean``) as ``true``/``false`` in a CSV, as in JSON."""
    import json

    import pandas as pd

    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    if output is not None and output.suffix.lower() == ".json":
        rows = [
            {key: None if (value == "" or pd.isna(value)) else value for key, value in row.items()}
            for row in table.to_dict("records")
        ]
        output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        return
    lower = {True: "true", False: "false"}
    flags = {name: table[name].map(lower) for name in table if table[name].dtype == "boolean"}
    table.assign(**flags).to_csv(output or sys.stdout, index=False, lineterminator="\n")


def report_skipped(what: str, reasons: Sequence[str]) -> None:
    """One stderr line counting skipped items by reason."""
    from collections import Counter

    if reasons:
        counts = ", ".join(f"{reason} {n}" for reason, n in Counter(reasons).most_common())
        print(f"skipped {len(reasons)} {what}: {counts}", file=sys.stderr)


def status_of(reason: str, faces: list[Any]) -> str:
    """A photo's ``status``: why it could not be read, else ``ok`` or ``no_face``."""
    from agecheck.till.pipeline import photo_status

    return reason or photo_status(faces)


def face_rows(file: Path, reason: str, faces: list[Any]) -> list[dict[str, Any]]:
    """One row per face (box flattened), or one row saying why the photo has none."""
    if reason or not faces:
        return [{"file": str(file), "face": None, "status": status_of(reason, faces)}]
    rows = []
    for index, face in enumerate(faces):
        record = face.record()
        box = record.pop("box") or {}
        rows.append({"file": str(file), "face": index, **box, **record, "status": "ok"})
    return rows


def log_estimates(
    log: EstimatesLog, found: Sequence[tuple[Path, str, list[Any]]], policy: PolicyConfig
) -> None:
    """``predict --log``: one estimates-log line per photo, unreadable ones included (their reason)."""
    from agecheck.till.estimates_log import log_entry

    for file, reason, faces in found:
        log.append(log_entry(faces, status_of(reason, faces), policy, file=str(file)))
