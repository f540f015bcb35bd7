"""The ``validate`` stage's logic: check every label row and photo of every source."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from agecheck.config import PhotoLimits, ValidateConfig
from agecheck.data.images import PhotoRejected, encode_jpeg, normalize_photo
from agecheck.data.ingest import LABELS, PHOTOS_DIR
from agecheck.data.labels import check_rows, read_labels
from agecheck.data.shards import ShardWriter
from agecheck.errors import AgecheckError

#: Photos read from a packed source at a time (bounds memory).
READ_BATCH = 1000
REJECTED_COLUMNS = ["source", "kind", "file_name", "row", "reason", "detail"]


@dataclass
class ValidationResult:
    """Usable photos (one row each), rejected photos/rows, and the counts."""

    usable: pd.DataFrame
    rejected: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


def _normalize_task(task: tuple[str, bytes, PhotoLimits, int, int]) -> dict[str, Any]:
    """Worker: decode, check and re-encode one photo (runs in a subprocess)."""
    name, data, limits, max_side, quality = task
    try:
        photo = normalize_photo(data, limits, max_side)
    except PhotoRejected as err:
        return {"file_name": name, "reason": err.reason, "detail": err.detail[:300]}
    return {
        "file_name": name,
        "reason": "",
        "jpeg": encode_jpeg(photo.image, quality),
        "width": photo.image.width,
        "height": photo.image.height,
        "original_mode": photo.original_mode,
        "original_format": photo.original_format,
        "exif_orientation": photo.exif_orientation,
        "grayscale": photo.grayscale,
        "pixel_hash": photo.pixel_hash,
        "file_sha256": hashlib.sha256(data).hexdigest(),
    }


def _batches(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], size: int
) -> Iterator[list[tuple[str, bytes]]]:
    """Read the photos' bytes in batches of ``size`` (bounded memory)."""
    batch: list[tuple[str, bytes]] = []
    for info in members:
        handle = tar.extractfile(info)
        assert handle is not None
        batch.append((info.name[len(PHOTOS_DIR) + 1 :], handle.read()))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Validator:
    """Validates sources one after another, writing accepted photos to shards."""

    def __init__(self, config: ValidateConfig, out_dir: Path) -> None:
        self.config = config
        self.writer = ShardWriter(out_dir, config.shard_size)
        workers = config.workers or os.cpu_count() or 1
        self.pool = get_context("spawn").Pool(workers) if workers > 1 else None

    def close(self) -> None:
        self.writer.close()
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def _decode(self, batch: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        cfg = self.config
        tasks = [(name, data, cfg, cfg.max_side, cfg.jpeg_quality) for name, data in batch]
        if self.pool is None:
            return [_normalize_task(t) for t in tasks]
        return self.pool.map(_normalize_task, tasks, chunksize=16)

    def source(self, name: str, tar_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Check one packed source; return (rows with their reasons, photos with theirs)."""
        if not tar_path.is_file():
            raise AgecheckError(f"packed source {tar_path} is missing: run `dvc repro ingest@{name}`")
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            labels_info = next((m for m in members if m.name == LABELS), None)
            if labels_info is None:
                raise AgecheckError(f"{tar_path} holds no {LABELS}")
            labels_file = tar.extractfile(labels_info)
            assert labels_file is not None
            rows = check_rows(read_labels(labels_file.read(), f"{name}/{LABELS}"), self.config)
            photos = [m for m in members if m.name.startswith(f"{PHOTOS_DIR}/")]
            photo_table = self._check_photos(name, tar, photos, rows)
        return rows, photo_table

    def _check_photos(
        self, source: str, tar: tarfile.TarFile, members: list[tarfile.TarInfo], rows: pd.DataFrame
    ) -> pd.DataFrame:
        """Decode every labelled photo; return one row per photo file with its reason."""
        good_names = set(rows.loc[rows["reason"] == "", "file_name"])
        all_names = set(rows["file_name"])
        records: list[dict[str, Any]] = []
        to_decode: list[tarfile.TarInfo] = []
        for info in members:
            file_name = info.name[len(PHOTOS_DIR) + 1 :]
            if not info.isreg():
                records.append(
                    {
                        "file_name": file_name,
                        "reason": "not_a_regular_file",
                        "detail": "symbolic link or folder: not followed",
                    }
                )
            elif file_name not in all_names:
                records.append(
                    {"file_name": file_name, "reason": "no_label", "detail": "no row in labels.csv"}
                )
            elif file_name not in good_names:
                records.append(
                    {
                        "file_name": file_name,
                        "reason": "no_valid_label",
                        "detail": "its label row(s) were rejected",
                    }
                )
            else:
                to_decode.append(info)
        with tqdm(total=len(to_decode), desc=f"validate {source}", unit="photo", mininterval=5) as bar:
            for batch in _batches(tar, to_decode, READ_BATCH):
                for result in self._decode(batch):
                    jpeg = result.pop("jpeg", None)
                    if jpeg is not None:
                        result["member"] = f"{source}/{result['file_name']}"
                        result["shard"] = self.writer.write(result["member"], jpeg)
                    records.append(result)
                bar.update(len(batch))
        return pd.DataFrame.from_records(records).assign(source=source)


def _reject_duplicates(photos: pd.DataFrame, rows: pd.DataFrame, drop: bool) -> None:
    """Handle photos with the same pixels (in place): conflicting ages reject every copy;
    equal ages keep the first copy when ``drop`` is true. ``group`` ties copies together."""
    decoded = photos["reason"] == ""
    ages = (
        rows[rows["reason"] == ""]
        .drop_duplicates(["source", "file_name"])
        .set_index(["source", "file_name"])["age"]
    )
    keys = zip(photos["source"], photos["file_name"], strict=True)
    photos["age"] = pd.array([ages.get(key) for key in keys], dtype="Int64")
    photos["group"] = photos["pixel_hash"].where(decoded)
    for _, copies in photos[decoded & photos.duplicated("pixel_hash", keep=False)].groupby("pixel_hash"):
        ids = [f"{s}/{f}" for s, f in zip(copies["source"], copies["file_name"], strict=True)]
        if copies["age"].nunique() > 1:
            detail = "same photo, different ages: " + ", ".join(
                f"{i} ({a})" for i, a in zip(ids, copies["age"], strict=True)
            )
            photos.loc[copies.index, ["reason", "detail"]] = ("conflicting_duplicate_photos", detail[:300])
        elif drop:
            photos.loc[copies.index[1:], ["reason", "detail"]] = (
                "duplicate_photo",
                f"same pixels as {ids[0]}",
            )


def _count(table: pd.DataFrame) -> dict[str, Any]:
    rejected = table.loc[table["reason"] != "", "reason"].value_counts().sort_index()
    counts = {
        "total": len(table),
        "usable": int((table["reason"] == "").sum()),
        "rejected": int(rejected.sum()),
        "rejected_by_reason": {k: int(v) for k, v in rejected.items()},
    }
    if counts["usable"] + counts["rejected"] != counts["total"]:
        raise AssertionError(f"validation lost track of entries: {counts}")
    return counts


def _source_metrics(rows: pd.DataFrame, photos: pd.DataFrame) -> dict[str, Any]:
    usable = photos[photos["reason"] == ""]
    return {
        "photos": _count(photos),
        "label_rows": _count(rows),
        "grayscale": int(usable["grayscale"].fillna(False).astype(bool).sum()) if len(usable) else 0,
        "exif_rotated": int((usable["exif_orientation"].fillna(1) != 1).sum()) if len(usable) else 0,
        "converted_from_mode": {
            k: int(v)
            for k, v in usable.loc[usable["original_mode"] != "RGB", "original_mode"].value_counts().items()
        }
        if len(usable)
        else {},
    }


def validate_sources(sources: dict[str, Path], config: ValidateConfig, out_dir: Path) -> ValidationResult:
    """Validate every packed source and write the usable photos' shards to ``out_dir``."""
    all_rows, all_photos = [], []
    validator = Validator(config, out_dir)
    try:
        for name, tar_path in sources.items():
            rows, photos = validator.source(name, tar_path)
            all_rows.append(rows.assign(source=name))
            all_photos.append(photos)
    finally:
        validator.close()
    rows = pd.concat(all_rows, ignore_index=True)
    photos = pd.concat(all_photos, ignore_index=True)
    for column in (
        "pixel_hash",
        "shard",
        "member",
        "width",
        "height",
        "original_mode",
        "exif_orientation",
        "grayscale",
    ):
        if column not in photos:
            photos[column] = pd.NA
    photos["detail"] = photos["detail"].fillna("") if "detail" in photos else ""
    rows_ok = rows["reason"] == ""
    missing = rows_ok & ~pd.MultiIndex.from_frame(rows[["source", "file_name"]]).isin(
        pd.MultiIndex.from_frame(photos[["source", "file_name"]])
    )
    rows.loc[missing, ["reason", "detail"]] = ("file_missing", "no such file in final_files/")
    _reject_duplicates(photos, rows, config.drop_duplicate_photos)
    _reject_rows_of_rejected_photos(rows, photos)
    return _assemble(rows, photos)


def _reject_rows_of_rejected_photos(rows: pd.DataFrame, photos: pd.DataFrame) -> None:
    """A usable row whose photo was rejected is rejected too, with the photo's reason."""
    bad = photos[photos["reason"] != ""].set_index(["source", "file_name"])["reason"]
    keys = list(zip(rows["source"], rows["file_name"], strict=True))
    for idx, key in zip(rows.index, keys, strict=True):
        if rows.at[idx, "reason"] == "" and key in bad.index:
            rows.loc[idx, ["reason", "detail"]] = ("photo_rejected", f"photo rejected: {bad[key]}")


def _assemble(rows: pd.DataFrame, photos: pd.DataFrame) -> ValidationResult:
    usable_photos = photos[photos["reason"] == ""].drop(columns=["reason", "detail", "age"])
    usable_rows = rows[rows["reason"] == ""].drop(columns=["reason", "detail", "real_age"])
    usable = usable_rows.merge(usable_photos, on=["source", "file_name"], how="inner", validate="1:1")
    usable.insert(0, "id", usable["source"] + "/" + usable["file_name"])
    usable = usable.drop(columns=["row"])
    rejected = (
        pd.concat(
            [
                photos.loc[photos["reason"] != ""].assign(kind="photo", row=pd.NA),
                rows.loc[rows["reason"] != ""].assign(kind="label_row"),
            ]
        )[REJECTED_COLUMNS]
        .sort_values(["source", "kind", "file_name"], kind="stable")
        .reset_index(drop=True)
    )
    per_source = {
        s: _source_metrics(rows[rows["source"] == s], photos[photos["source"] == s])
        for s in rows["source"].unique()
    }
    total = {"photos": _count(photos), "label_rows": _count(rows)}
    return ValidationResult(
        usable=usable,
        rejected=rejected,
        metrics={"usable": len(usable), "total": total, "per_source": per_source},
    )
