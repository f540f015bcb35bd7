"""Writing a ``.keras`` file whose bytes depend only on the model.

Keras stamps each save with the time (``date_saved`` in ``metadata.json``, and the weights entry's
time in the zip) and names the objects that layers share (their dtype policy) by their memory
address (``shared_object_id`` in ``config.json``), so the same weights saved twice, or by two runs,
get two DVC hashes and a fresh clone's ``dvc repro`` never matches the committed ``dvc.lock``. Here
the archive is written again with the stamps fixed and the shared objects numbered in order.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

#: The zip entries' time: the earliest a zip can hold (what Keras already uses for its other entries).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
METADATA = "metadata.json"
CONFIG = "config.json"
SHARED_ID = re.compile(rb'"shared_object_id": (\d+)')


def _numbered_shared_objects(config: bytes) -> bytes:
    """``config.json`` with each shared object's id (a memory address) replaced by its order of first
    appearance: the same sharing, the same bytes on every run."""
    order: dict[bytes, int] = {}
    return SHARED_ID.sub(lambda m: b'"shared_object_id": %d' % order.setdefault(m[1], len(order)), config)


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
                elif entry.filename == CONFIG:
                    data = _numbered_shared_objects(data)
                fixed = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
                fixed.compress_type, fixed.external_attr = entry.compress_type, 0o644 << 16
                target.writestr(fixed, data)
        partial.replace(path)
    finally:
        stamped.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
