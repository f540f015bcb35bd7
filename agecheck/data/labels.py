"""Reading ``labels.csv`` and checking each label row."""

from __future__ import annotations

import io
import re

import pandas as pd

from agecheck.config import AgeRange
from agecheck.errors import AgecheckError

REQUIRED_COLUMNS = ("file_name", "real_age")
_WHOLE_NUMBER = re.compile(r"^[+-]?\d+(\.0*)?$")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:]")


def read_labels(data: bytes, origin: str) -> pd.DataFrame:
    """Parse a labels table; every column stays a string. ``origin`` names it in errors.

    Adds ``row``: the line number in the file (the header is line 1).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AgecheckError(f"{origin} is not UTF-8 text") from None
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AgecheckError(f"{origin} is not a readable CSV table: {err}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise AgecheckError(
            f"{origin} lacks column(s) {', '.join(missing)}; expected at least "
            f"{','.join(REQUIRED_COLUMNS)} (found: {','.join(table.columns) or 'none'})"
        )
    table["file_name"] = table["file_name"].str.strip()
    table["real_age"] = table["real_age"].str.strip()
    table.insert(0, "row", range(2, len(table) + 2))
    return table


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` is not a plain file name inside ``final_files/`` (None when it is safe)."""
    if not name:
        return "file name is empty"
    if name in (".", "..") or name.startswith("~"):
        return f"{name!r} is not a file name"
    if _UNSAFE_CHARS.search(name):
        return f"{name!r} contains a path separator or control character"
    return None


def age_problem(value: str, ages: AgeRange) -> tuple[str, str] | None:
    """(reason, detail) when ``value`` is not a whole age within ``ages``; None when it is fine."""
    if value == "":
        return "age_missing", "real_age is empty"
    if not _WHOLE_NUMBER.match(value):
        return "age_not_whole_number", f"real_age {value!r} is not a whole number of years"
    age = int(float(value))
    if not ages.min_age <= age <= ages.max_age:
        return "age_out_of_range", f"real_age {age} outside {ages.min_age}..{ages.max_age}"
    return None


def check_rows(table: pd.DataFrame, ages: AgeRange) -> pd.DataFrame:
    """Add ``reason``/``detail`` columns (empty when the row is usable) and an int ``age``.

    Rules, in order: unsafe file name, bad age, then repeated file names (identical repeats
    keep their first row; repeats with different ages reject every row of that file).
    """
    checked = table.copy()
    checked["reason"] = ""
    checked["detail"] = ""
    for idx, name, value in zip(checked.index, checked["file_name"], checked["real_age"], strict=True):
        unsafe = unsafe_name_reason(name)
        problem = ("unsafe_file_name", unsafe) if unsafe else age_problem(value, ages)
        if problem:
            checked.loc[idx, ["reason", "detail"]] = problem
    ok = checked["reason"] == ""
    checked["age"] = pd.to_numeric(checked["real_age"].where(ok), errors="coerce").astype("Int64")
    _mark_repeats(checked)
    return checked


def _mark_repeats(checked: pd.DataFrame) -> None:
    """Mark repeated rows for the same file (in place)."""
    ok = checked["reason"] == ""
    repeated = checked[ok & checked.duplicated("file_name", keep=False)]
    for name, rows in repeated.groupby("file_name", sort=False):
        if rows["age"].nunique() > 1:
            ages = ", ".join(f"line {r}: {a}" for r, a in zip(rows["row"], rows["age"], strict=True))
            checked.loc[rows.index, ["reason", "detail"]] = (
                "conflicting_label_rows",
                f"{name} has different ages ({ages})",
            )
        else:
            first = rows["row"].iloc[0]
            checked.loc[rows.index[1:], ["reason", "detail"]] = (
                "duplicate_label_row",
                f"repeats line {first}",
            )
