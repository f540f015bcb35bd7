"""The sales log: read a CSV or JSON-lines file and check it against the schema in docs/audit.md (the
shopping profiles' receipts log is read and checked as a whole by the same :func:`read_sale_rows`).

A log the audit cannot trust as a whole (a column missing, ``alcohol`` = ``yes``, a sale twice, no
rows) stops with one ``error:`` line naming what to fix: counting on it would give cashiers wrong
shares. A row the audit can only skip (no cashier, no photo) keeps its place with a ``reason``, so
the summary counts it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agecheck.errors import AgecheckError, one_line

#: The columns every sales log has, one row per sale.
SALES_COLUMNS = ("sale_id", "time", "store", "till", "cashier", "alcohol", "id_checked")
#: The till camera's frame of the sale, relative to the log's folder (when no estimates log is given).
PHOTO = "photo"
#: The 0/1 columns, and what they may hold (JSON's true and false are read as 1 and 0).
FLAGS = ("alcohol", "id_checked")
FLAG_VALUES = {"0": 0, "1": 1, "False": 0, "True": 1, "false": 0, "true": 1}
#: Suffix -> format of the log.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
#: Why a row is left out of the shares ("" for a row that counts).
REASON = "reason"
NO_CASHIER = "no_cashier"
NO_PHOTO = "no_photo"
#: Bad values named in an error before "and N more".
SHOWN = 3


def listed(items: Sequence[object], shown: int = SHOWN) -> str:
    """The first few ``items``, and how many more there are: "a, b, c (and 4 more)"."""
    head = ", ".join(str(item) for item in items[:shown])
    return head + (f" (and {len(items) - shown} more)" if len(items) > shown else "")


def listed_values(values: pd.Series, sale_ids: pd.Series) -> str:
    """Bad cells with their sales, for an error: "'yes' (sale s3), 'Y' (sale s8) (and 2 more)"."""
    return listed([f"{v!r} (sale {s})" for v, s in zip(values, sale_ids, strict=True)])


def _read(path: Path, noun: str) -> pd.DataFrame:
    """Every cell of a CSV or JSON-lines log as text ("" where empty), whatever the format; ``noun``
    names the log in the errors ("sales log", "receipts log")."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise AgecheckError(f"the {noun} must end with .csv, .jsonl or .json (got {path.name})")
    if not path.is_file():
        raise AgecheckError(f"{noun} not found: {path}")
    try:
        if kind == "csv":
            table = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skipinitialspace=True,
                encoding="utf-8",
            )
        elif not path.read_bytes().strip():
            table = pd.DataFrame()
        else:
            raw = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
            table = raw.astype(object).where(raw.notna(), "").astype(str)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        what = "CSV" if kind == "csv" else "JSON lines (one object a line)"
        raise AgecheckError(f"cannot read {path} as {what}: {one_line(err, 200)}") from None
    return table.rename(columns=lambda name: str(name).strip())


def _check_columns(table: pd.DataFrame, required: Sequence[str], origin: str, schema: str) -> None:
    missing = [name for name in required if name not in table.columns]
    if not missing:
        return
    others = [name for name in table.columns if name not in required]
    parts = []
    for name in missing:
        close = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    noun = "column" if len(missing) == 1 else "columns"
    raise AgecheckError(f"{origin}: missing {noun} {', '.join(parts)}; {schema.format(', '.join(required))}")


def read_sale_rows(
    path: str | Path, noun: str, columns: Sequence[str], doc: str, photos: bool, who: str
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A log of sales (the audit's sales log, the profiles' receipts) as text, checked as a whole: not
    empty, the ``columns`` there (and ``photo`` with ``photos``; without, a ``photo`` column is
    refused: ``who`` would have two estimates to choose from), no empty ``sale_id``. Also the required
    columns. ``noun`` and ``doc`` name the log and its schema's page in the errors."""
    path = Path(path)
    origin = str(path)
    table = _read(path, noun)
    if table.empty:
        raise AgecheckError(f"{origin} has no sales")
    required = (*columns, PHOTO) if photos else tuple(columns)
    _check_columns(table, required, origin, f"a {noun} has {{}} ({doc})")
    if not photos and PHOTO in table.columns:
        raise AgecheckError(
            f"{origin} has a {PHOTO} column and --estimates was given: {who} takes the customer's "
            "estimate from one of them; drop the column or the option"
        )
    ids = table["sale_id"]
    if (ids == "").any():
        rows = [str(i + 1) for i in ids.index[ids == ""]]
        raise AgecheckError(f"{origin}: sale_id is empty (rows {listed(rows)}, the first sale being row 1)")
    return table, required


def _flag(table: pd.DataFrame, column: str, origin: str) -> pd.Series:
    """A 0/1 column as int8; any other value stops the audit (it would be guessed, not counted)."""
    values = table[column].map(FLAG_VALUES)
    bad = values.isna()
    if bad.any():
        shown = listed_values(table.loc[bad, column], table.loc[bad, "sale_id"])
        raise AgecheckError(f"{origin}: {column} must be 0 or 1, not {shown}")
    return values.astype("int8")


def read_sales(path: str | Path, photos: bool) -> pd.DataFrame:
    """The sales log's rows, checked: text ids, 0/1 ``alcohol`` and ``id_checked``, and a ``reason``
    (``no_cashier``; with ``photos``, ``no_photo`` where the ``photo`` cell is empty). Without
    ``photos`` the estimates come from elsewhere, so a ``photo`` column is refused as ambiguous."""
    origin = str(path)
    table, required = read_sale_rows(path, "sales log", SALES_COLUMNS, "docs/audit.md", photos, "the audit")
    table = table[list(required)].copy()
    ids = table["sale_id"]
    repeated = ids[ids.duplicated(keep=False)].unique()
    if len(repeated):
        raise AgecheckError(f"{origin}: sale_id repeated: {listed(list(repeated))}; each sale has one row")
    for column in FLAGS:
        table[column] = _flag(table, column, origin)
    reason = pd.Series("", index=table.index, dtype=object)
    reason[(table["store"] == "") | (table["cashier"] == "")] = NO_CASHIER
    if photos:
        reason[(reason == "") & (table[PHOTO] == "")] = NO_PHOTO
    table[REASON] = reason
    return table.reset_index(drop=True)
