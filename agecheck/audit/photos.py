"""The customer's estimate for each sale from the till camera's frame, when there is no estimates log.

The frames go through the one till pipeline (``agecheck.till.pipeline.Till``, run by the CLI in
batches); here are the two ends around it: which frames to read, and the customer's face of each
(the largest: :func:`agecheck.till.customer.customer_face`, marked by the till) as the same table
the estimates log gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.audit.estimates import ESTIMATE_COLUMNS, NO_FACE
from agecheck.audit.sales import PHOTO, REASON, listed
from agecheck.errors import AgecheckError
from agecheck.till.estimates_log import softmax_matrix
from agecheck.till.pipeline import FaceResult, customer_index


def photo_files(
    sales: pd.DataFrame, folder: Path, needed: np.ndarray | None = None, noun: str = "sales log"
) -> pd.Series:
    """The frame of each needed sale that counts (``needed``, default the alcohol sales; indexed by
    ``sale_id``), under ``folder``. A frame that is not there means the log (``noun``) and its photos
    do not belong together: the command stops."""
    wanted = (sales["alcohol"] == 1).to_numpy() if needed is None else needed
    wanted = sales[wanted & (sales[REASON] == "").to_numpy()]
    files = pd.Series([folder / name for name in wanted[PHOTO]], index=wanted["sale_id"], dtype=object)
    absent = list(
        dict.fromkeys(name for name, file in zip(wanted[PHOTO], files, strict=True) if not file.is_file())
    )
    if absent:
        raise AgecheckError(f"{len(absent)} photos of the {noun} are not in {folder}: {listed(absent)}")
    return files


def photo_estimates(
    sale_ids: Sequence[str], found: Sequence[tuple[str, list[FaceResult]]]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The customer's estimate per sale (indexed by ``sale_id``) from ``(reason, faces)`` per frame:
    the photo's refusal reason (``unreadable``...), ``no_face``, or ``""`` with the estimate; and the
    customers' softmaxes, a row per sale (NaN without a face or a softmax)."""
    rows, probs = [], []
    for reason, faces in found:
        index = None if reason else customer_index(faces)
        if index is None:
            rows.append((reason or NO_FACE, *[np.nan] * len(ESTIMATE_COLUMNS)))
            probs.append(None)
            continue
        e, under = faces[index].estimate, faces[index].under
        legal, threshold = (np.nan, np.nan) if under is None else (under.legal, under.threshold)
        rows.append(("", e.age, e.low, e.high, legal, threshold))
        probs.append(e.probs)
    table = pd.DataFrame(rows, columns=[REASON, *ESTIMATE_COLUMNS], index=pd.Index(sale_ids, name="sale_id"))
    return table.astype({column: np.float64 for column in ESTIMATE_COLUMNS}), softmax_matrix(probs)
