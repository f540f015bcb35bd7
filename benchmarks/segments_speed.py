"""Time and memory of ``agecheck segments`` on a large month: a receipts log with the till's estimates log.

    python -m benchmarks.segments_speed [--sales 1000000] [--keep DIR]

Writes, in a temporary folder (or ``--keep DIR``), a receipts log (CSV: one row per sale and
category, 20 stores, 0 to 4 of 12 categories a sale, a few sales with none) and the estimates log, its
lines made by :func:`agecheck.till.estimates_log.log_entry` (a DEX model's: with ``age_probs``, which
``agecheck segments`` reads; 3% without a face), and a calibration file. Then runs
``agecheck segments RECEIPTS --estimates LOG`` as a subprocess (the bootstrap at
``segments.bootstrap`` resamples included) and prints its wall time and peak memory (max RSS of the
child). The target (issue 25): 1,000,000 sales in 60 s on 2 cores. Take figures on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import DEFAULT_PARAMS, load_params
from benchmarks.audit_speed import run_command, write_log

STORES = 20
CATEGORIES = [f"category {c:02d}" for c in range(12)]


def write_receipts(folder: Path, sales: int, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    """The receipts log of ``sales`` sales, and their ids."""
    ids = np.char.add("S", np.arange(sales).astype(str))
    count = rng.integers(0, 5, size=sales)  # categories per sale; 0: one row with an empty category
    sale = np.repeat(np.arange(sales), np.maximum(count, 1))
    category = np.array(["", *CATEGORIES], dtype=object)[
        np.where(
            np.repeat(count, np.maximum(count, 1)) > 0, 1 + rng.integers(0, len(CATEGORIES), len(sale)), 0
        )
    ]
    store = rng.integers(0, STORES, size=sales)
    seconds = np.sort(rng.integers(0, 30 * 86400, sales))
    table = pd.DataFrame(
        {
            "sale_id": ids[sale],
            "time": (pd.Timestamp("2025-03-01") + pd.to_timedelta(seconds, "s")).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )[sale],
            "store": np.char.add("store", store.astype(str))[sale],
            "category": category,
        }
    )
    path = folder / "receipts.csv"
    table.to_csv(path, index=False)
    return path, ids


def write_calibration(path: Path, rng: np.random.Generator) -> Path:
    """A calibration file: 3,000 validation photos aged 13..85, estimated with errors of about 5 years."""
    true = rng.integers(13, 86, size=3000)
    estimate = np.clip(np.rint(true + rng.normal(0, 6, size=true.size)), 0, 100).astype(int)
    cells = pd.Series(1, index=pd.MultiIndex.from_arrays([true, estimate])).groupby(level=[0, 1]).sum()
    counts = [[int(t), int(e), int(n)] for (t, e), n in cells.items()]
    path.write_text(json.dumps({"confusion": {"counts": counts}}), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sales", type=int, default=1_000_000, help="sales in the month (default: 1000000)")
    parser.add_argument("--keep", type=Path, help="write the logs and the profiles here, and keep them")
    args = parser.parse_args()
    params = load_params(DEFAULT_PARAMS)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        receipts, ids = write_receipts(folder, args.sales, rng)
        tills = np.char.add("T", (np.arange(args.sales) % 160).astype(str))
        log = write_log(folder / "estimates.jsonl", ids, tills, np.char.add("C", tills), params.policy, rng)
        calibration = write_calibration(folder / "calibration.json", rng)
        size = (receipts.stat().st_size + log.stat().st_size) / 2**20
        took = time.perf_counter() - start
        print(f"wrote {args.sales:,} sales, receipts and estimates ({size:,.0f} MiB) in {took:.1f} s")
        wall, peak, stderr = run_command(
            "segments",
            str(receipts),
            "--estimates",
            str(log),
            "--calibration",
            str(calibration),
            "--output",
            str(folder / "segments"),
        )
    print(stderr.strip())
    print(
        f"agecheck segments: {wall:.1f} s wall, peak RSS {peak:.2f} GiB ({os.cpu_count()} CPUs, "
        f"{params.segments.bootstrap} bootstrap resamples)"
    )


if __name__ == "__main__":
    main()
