"""Stage report: a Markdown report for store managers from the evaluate stage's results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agecheck.errors import exit_on_error
from agecheck.evaluation.report import FIGURES, build_report
from agecheck.evaluation.results import DETAILS, PREDICTIONS, Evaluation

RESULTS = Path("metrics/evaluate")
REPORT = Path("metrics/report.md")


@exit_on_error
def main() -> None:
    evaluation = Evaluation.read(RESULTS / DETAILS)
    predictions = pd.read_csv(RESULTS / PREDICTIONS, dtype={"id": str})
    figures = [
        ((RESULTS / name).relative_to(REPORT.parent).as_posix(), caption)
        for name, caption in FIGURES
        if (RESULTS / name).is_file()
    ]
    REPORT.write_text(build_report(evaluation, predictions, figures), encoding="utf-8")
    print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
