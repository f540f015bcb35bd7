"""Time and memory of ``agecheck audit`` on a large month: a sales log with the till's estimates log.

    python -m benchmarks.audit_speed [--sales 1000000] [--keep DIR]

Writes, in a temporary folder (or ``--keep DIR``), a sales log (CSV: 20 stores x 8 cashiers, every
sale alcohol, so every sale has an estimates-log line) and the estimates log, its lines made by
:func:`agecheck.till.estimates_log.log_entry` (a DEX model's: with ``age_probs``; 3% without a face).
Then runs ``agecheck audit SALES --estimates LOG`` as a subprocess and prints its wall time and peak
memory (max RSS of the child, ``resource.getrusage(RUSAGE_CHILDREN)``). The target (issue 24):
1,000,000 sales in 30 s and 2 GB on 2 cores. Take figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import DEFAULT_PARAMS, PolicyConfig, load_params
from agecheck.till.estimates_log import Sale, log_entry
from tests.support.till_faces import customer_face

STORES, CASHIERS = 20, 8
#: Distinct customers' log lines (one per age and spread); each sale uses one, with its own ids.
TEMPLATES = 512
#: Placeholders in a template line, replaced by each sale's ids.
SALE, TILL, CASHIER = "@SALE@", "@TILL@", "@CASHIER@"


def template_lines(policy: PolicyConfig, rng: np.random.Generator) -> list[str]:
    """Log lines with placeholder ids: customers aged 14..80, and a few frames without a face."""
    import json

    sale = Sale(SALE, TILL, CASHIER)
    lines = []
    for i in range(TEMPLATES):
        faces = (
            []
            if i % 33 == 0
            else [customer_face(float(rng.uniform(14, 80)), policy, float(rng.uniform(2.5, 6)))]
        )
        entry = log_entry(faces, "ok" if faces else "no_face", policy, sale)
        lines.append(json.dumps(entry, separators=(",", ":"), allow_nan=False))
    return lines


def write_month(folder: Path, sales: int, policy: PolicyConfig, seed: int = 0) -> tuple[Path, Path]:
    """The sales log and the estimates log of ``sales`` alcohol sales."""
    rng = np.random.default_rng(seed)
    cashier = rng.integers(0, STORES * CASHIERS, size=sales)
    store = cashier // CASHIERS
    ids = np.char.add("S", np.arange(sales).astype(str))
    tills = np.char.add(
        np.char.add("T", store.astype(str)), np.char.add("-", (cashier % CASHIERS).astype(str))
    )
    names = np.char.add("C", cashier.astype(str))
    table = pd.DataFrame(
        {
            "sale_id": ids,
            "time": pd.Timestamp("2025-03-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 30 * 86400, sales)), "s"),
            "store": np.char.add("store", store.astype(str)),
            "till": tills,
            "cashier": names,
            "alcohol": 1,
            "id_checked": (rng.random(sales) < 0.3).astype(int),
        }
    )
    sales_path = folder / "sales.csv"
    table.to_csv(sales_path, index=False)
    log_path = write_log(folder / "estimates.jsonl", ids, tills, names, policy, rng)
    return sales_path, log_path


def write_log(
    path: Path,
    ids: np.ndarray,
    tills: np.ndarray,
    cashiers: np.ndarray,
    policy: PolicyConfig,
    rng: np.random.Generator,
) -> Path:
    """The estimates log of the sales ``ids``: one line each, a :func:`template_lines` line with the
    sale's ids."""
    templates = template_lines(policy, rng)
    pick = rng.integers(0, len(templates), size=len(ids))
    with path.open("w", encoding="utf-8") as log:
        for i in range(len(ids)):
            line = templates[pick[i]].replace(SALE, ids[i], 1).replace(TILL, tills[i], 1)
            log.write(line.replace(CASHIER, cashiers[i], 1) + "\n")
    return path


def run_command(*arguments: str) -> tuple[float, float, str]:
    """``agecheck ARGUMENTS`` as a child process: wall seconds, peak RSS (GiB), its stderr."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "agecheck.cli", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"agecheck {arguments[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
    return wall, peak, done.stderr


def run_audit(sales_path: Path, log_path: Path, output: Path) -> tuple[float, float, str]:
    """``agecheck audit`` as a child process: wall seconds, peak RSS (GiB), its stderr."""
    return run_command("audit", str(sales_path), "--estimates", str(log_path), "--output", str(output))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sales", type=int, default=1_000_000, help="sales in the month (default: 1000000)")
    parser.add_argument("--keep", type=Path, help="write the logs and the audit here, and keep them")
    args = parser.parse_args()
    policy = load_params(DEFAULT_PARAMS).policy
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        sales_path, log_path = write_month(folder, args.sales, policy)
        size = (sales_path.stat().st_size + log_path.stat().st_size) / 2**20
        took = time.perf_counter() - start
        print(f"wrote {args.sales:,} sales and estimates ({size:,.0f} MiB) in {took:.1f} s")
        wall, peak, stderr = run_audit(sales_path, log_path, folder / "audit")
    print(stderr.strip())
    print(f"agecheck audit: {wall:.1f} s wall, peak RSS {peak:.2f} GiB ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
