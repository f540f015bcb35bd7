"""Stage report: the store managers' report from the evaluate stage's results, as Markdown and as a
self-contained HTML page (figures embedded, no photo ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from agecheck.errors import exit_on_error
from agecheck.evaluation.report import FIGURES, build_report
from agecheck.evaluation.report_page import build_page, provenance
from agecheck.evaluation.results import DETAILS, PREDICTIONS, Evaluation

RESULTS = Path("metrics/evaluate")
PEER = Path("metrics/peer.json")
REPORT = Path("metrics/report.md")
PAGE = Path("metrics/report.html")
#: Read for the model's md5 and its commit date (not a dep: the report's own lock entry changes it).
LOCK = Path("dvc.lock")


@exit_on_error
def main() -> None:
    evaluation = Evaluation.read(RESULTS / DETAILS)
    predictions = pd.read_csv(RESULTS / PREDICTIONS, dtype={"id": str})
    figures = [(RESULTS / name, caption) for name, caption in FIGURES if (RESULTS / name).is_file()]
    linked = [(path.relative_to(REPORT.parent).as_posix(), caption) for path, caption in figures]
    peer = json.loads(PEER.read_text(encoding="utf-8")) if PEER.is_file() else {}
    tradeoff_file = RESULTS / "tradeoff.json"
    tradeoff = json.loads(tradeoff_file.read_text(encoding="utf-8")) if tradeoff_file.is_file() else {}
    REPORT.write_text(build_report(evaluation, predictions, linked, peer, tradeoff), encoding="utf-8")
    build_page(evaluation, figures, footer=provenance(LOCK), tradeoff=tradeoff).write(PAGE)
    print(f"report: {REPORT}, {PAGE}")


if __name__ == "__main__":
    main()
