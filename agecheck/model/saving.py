"""Writing a ``.keras`` file whose bytes depend only on the model.

Keras stamps each save with the time (``date_saved`` in ``metadata.json``, and the weights entry's
time in the zip), so the same weights saved twice get two DVC hashes and a fresh clone's ``dvc repro``
never matches the committed ``dvc.lock``. Here the archive is written again with those stamps fixed.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

#: The zip entries' time: the earliest a zip can hold (what Keras already uses for its other entries).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
METADATA = "metadata.json"


def save_keras(model: Any, path: Path) -> None:
    """Save ``model`` to ``path`` (``.keras``) without time stamps, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = path.with_name(f"{path.stem}.stamped.keras")
    partial = path.with_name(f"{path.name}.partial")
    model.save(stamped)
    try:
        with zipfile.ZipFile(stamped) as source, zipfile.ZipFile(partial, "w") as target:
            for entry in source.infolist():
                data = source.read(entry)
                if entry.filename == METADATA:
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata).encode()
                fixed = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
                fixed.compress_type, fixed.external_attr = entry.compress_type, 0o644 << 16
                target.writestr(fixed, data)
        partial.replace(path)
    finally:
        stamped.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
