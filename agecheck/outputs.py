"""Small helpers for writing stage outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def fresh_dir(path: Path) -> Path:
    """Empty (or create) an output folder that the stage owns entirely."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
