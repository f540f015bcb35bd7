"""Packing a photo folder (``final_files/`` + ``labels.csv``) into one tar for DVC."""

from __future__ import annotations

import tarfile
from pathlib import Path

from agecheck.errors import AgecheckError

LABELS = "labels.csv"
PHOTOS_DIR = "final_files"


def check_layout(source: Path) -> None:
    """Raise :class:`AgecheckError` unless ``source`` has ``labels.csv`` and ``final_files/``."""
    if not source.is_dir():
        raise AgecheckError(f"photo folder not found: {source}")
    if not (source / LABELS).is_file():
        raise AgecheckError(f"{source} has no {LABELS} (expected {LABELS} + {PHOTOS_DIR}/)")
    if not (source / PHOTOS_DIR).is_dir():
        raise AgecheckError(f"{source} has no {PHOTOS_DIR}/ folder (expected {LABELS} + {PHOTOS_DIR}/)")


def _add_entry(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """Add one file with a fixed header: owner, time and permission bits of the source files never
    reach the tar, so equal photos give byte-equal tars on every machine (and the same hash as the
    committed ``dvc.lock``, whether the photos are read-only or not)."""
    info = tar.gettarinfo(str(path), arcname=arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    info.mode = 0o755 if info.isdir() else 0o644
    if info.isreg():
        with path.open("rb") as fh:
            tar.addfile(info, fh)
    else:  # symlinks, folders...: recorded as such, never followed; validate rejects them
        info.size = 0
        info.type = tarfile.SYMTYPE if info.issym() else tarfile.DIRTYPE
        tar.addfile(info)


def pack_source(source: Path, out: Path) -> int:
    """Copy ``source``'s labels and photos, unchanged, into the tar ``out``; return the photo count."""
    check_layout(source)
    entries = sorted((source / PHOTOS_DIR).iterdir(), key=lambda p: p.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_entry(tar, source / LABELS, LABELS)
        for entry in entries:
            _add_entry(tar, entry, f"{PHOTOS_DIR}/{entry.name}")
    partial.replace(out)
    return len(entries)
