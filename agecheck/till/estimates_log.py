"""The till's estimates log: one JSON line per photo the till judged, never its pixels.

Keeping a month of customer photos is keeping biometric data; the cashier audit and the shopping
profiles need only what the model said. ``agecheck serve`` (with ``serve.estimates_log`` set) and
``agecheck predict --log FILE`` append one line per photo:

``time`` (UTC, ISO 8601), ``sale_id``, ``till``, ``cashier`` (as the till sent them, or null),
``file`` (predict only), ``status`` (``ok``, ``no_face`` or why the photo was refused),
``threshold`` and ``legal_age`` (the policy the decisions used), ``customer`` (the index of the
customer's face, :func:`agecheck.till.customer.customer_face`, or null), and ``faces``: per face its
``box``, ``age``, ``age_low``, ``age_high``, ``age_sd``, ``interval``, ``decision``, ``customer``
(true for the customer's face), ``p_under_legal``, ``p_under_threshold`` and ``age_probs`` (the
model's softmax over the ages 0..100, rounded; absent for a model without one). The fields of a
face are :meth:`agecheck.till.pipeline.FaceResult.record`'s, the answer's own, plus ``age_probs``.

Several processes may append to one file (``serve.workers`` > 1): each line is written with one
``write`` on a file opened with ``O_APPEND``, so the kernel puts every whole line at the end and lines
never interleave. A process killed while writing can leave a torn last line: the reader skips it
with a warning.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agecheck.config import PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.till.pipeline import FaceResult, customer_index
from agecheck.till.policy import PROB_DECIMALS

if TYPE_CHECKING:
    import pandas as pd

#: The customer's columns :func:`read_estimates` gives, one row per line.
CUSTOMER_COLUMNS = (
    "age",
    "age_low",
    "age_high",
    "decision",
    "p_under_legal",
    "p_under_threshold",
)
ID_COLUMNS = ("time", "sale_id", "till", "cashier", "file", "status", "faces", "threshold", "legal_age")


@dataclass(frozen=True)
class Sale:
    """What the till says about the photo it sends: the sale, the till and the cashier (any may be None)."""

    sale_id: str | None = None
    till: str | None = None
    cashier: str | None = None


#: A photo sent without ids (and ``agecheck predict``'s photos).
NO_SALE = Sale()


class EstimatesLog:
    """Append-only writer of the estimates log (safe across processes, see the module's text)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            raise AgecheckError(f"cannot open the estimates log {self.path}: {err.strerror}{where}") from None

    @classmethod
    def open(cls, path: str | Path) -> EstimatesLog | None:
        """The log at ``path``; None for an empty path (``serve.estimates_log: ''``: no log)."""
        return cls(path) if str(path) else None

    def append(self, entry: dict[str, Any]) -> None:
        """Write ``entry`` as one line, with one system call."""
        line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> EstimatesLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_entry(
    faces: Sequence[FaceResult],
    status: str,
    policy: PolicyConfig,
    sale: Sale = NO_SALE,
    file: str | None = None,
) -> dict[str, Any]:
    """The log's line for one photo (``file``: predict's photo path; the service has none)."""
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "sale_id": sale.sale_id,
        "till": sale.till,
        "cashier": sale.cashier,
    }
    if file is not None:
        entry["file"] = file
    entry.update(
        status=status,
        threshold=policy.threshold,
        legal_age=policy.legal_age,
        customer=customer_index(faces),
        faces=[face_entry(face) for face in faces],
    )
    return entry


def face_entry(face: FaceResult) -> dict[str, Any]:
    """A face as the log keeps it: the answer's fields and, with a softmax, the rounded softmax."""
    record = face.record()
    if face.estimate.probs is not None:
        record["age_probs"] = rounded_probs(face.estimate.probs)
    return record


def rounded_probs(age_probs: np.ndarray | None) -> list[float] | None:
    """The softmax as the log keeps it."""
    return None if age_probs is None else [round(float(p), PROB_DECIMALS) for p in age_probs]


#: A face's softmax in a log line, cut out before parsing when the reader does not need it: it is
#: most of the line, and parsing a month of lines with it costs minutes and gigabytes.
_AGE_PROBS = re.compile(rb',"age_probs":\[[^\]]*\]')


def _entries(path: Path, with_probs: bool) -> Iterator[dict[str, Any]]:
    """The log's entries, streamed; a torn last line is skipped with a warning, any other bad line is
    an error."""
    if not path.is_file():
        raise AgecheckError(f"estimates log not found: {path}")
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line if with_probs else _AGE_PROBS.sub(b"", line))
                if not isinstance(entry, dict):
                    raise ValueError("not a JSON object")
            except ValueError as err:
                if not line.endswith(b"\n") and not file.read(1):
                    print(
                        f"warning: {path}: skipped its torn last line {number} (a till stopped writing it)",
                        file=sys.stderr,
                    )
                    continue
                raise AgecheckError(f"{path} line {number} is not an estimates-log entry: {err}") from None
            yield entry


def softmax_matrix(rows: Sequence[Sequence[float] | np.ndarray | None]) -> np.ndarray:
    """Softmaxes as one N x width float32 matrix (width: the longest); rows of NaN where there is none."""
    width = max((len(row) for row in rows if row is not None), default=0)
    matrix = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None and len(row):
            matrix[i, : len(row)] = row
    return matrix


def read_estimates(
    path: str | Path, with_probs: bool = False
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """One row per log line with its ids and the customer's estimate (NaN where there was no face):
    :data:`ID_COLUMNS` + :data:`CUSTOMER_COLUMNS`. With ``with_probs``, also the customers' softmaxes
    (N x 101, float32; rows of NaN without a customer or a softmax). Read line by line into columns,
    each softmax kept as a small array, so a month of a chain's sales fits in memory."""
    import pandas as pd  # here: the service writes the log without loading pandas

    ids = [name for name in ID_COLUMNS if name != "faces"]
    columns: dict[str, list[Any]] = {name: [] for name in (*ID_COLUMNS, *CUSTOMER_COLUMNS)}
    probs: list[np.ndarray | None] = []
    for entry in _entries(Path(path), with_probs):
        faces = entry.get("faces") or []
        index = entry.get("customer")
        face = faces[index] if isinstance(index, int) and 0 <= index < len(faces) else {}
        for name in ids:
            columns[name].append(entry.get(name))
        columns["faces"].append(len(faces))
        for name in CUSTOMER_COLUMNS:
            columns[name].append(face.get(name))
        if with_probs:
            row = face.get("age_probs")
            probs.append(np.asarray(row, dtype=np.float32) if row else None)
    table = pd.DataFrame(columns, columns=[*ID_COLUMNS, *CUSTOMER_COLUMNS])
    for name in ("sale_id", "till", "cashier"):
        table[name] = table[name].astype("string")
    return (table, softmax_matrix(probs)) if with_probs else table
