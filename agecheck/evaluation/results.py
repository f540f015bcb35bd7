"""The result of an evaluation as types: what ``details.json`` (everything) and ``metrics/metrics.json``
(:class:`Headline`) hold. The evaluate stage and ``agecheck evaluate`` write them, the report stage
reads them back; a metric is added here once, and a file that does not match fails to read.

Only pydantic and the standard library (and :mod:`agecheck.outputs`): the report stage depends on
this module, not on the code that computes the numbers (numpy, scipy, scikit-learn, matplotlib).

Field order is the key order of the JSON. A subclass's fields come after its bases' (the last base
first), which is how :class:`Challenge25` and :class:`SafeThreshold` put :class:`Rates` in the middle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from agecheck.outputs import write_json

#: Every metric of an evaluation, beside its predictions and figures.
DETAILS = "details.json"
#: One row per photo: ``id, source, gender, race, age, predicted, error``.
PREDICTIONS = "predictions.csv"
TEEN_BAND = "13-17"


class Record(BaseModel):
    """A part of a result. Unknown, missing or mistyped keys fail, so a file and its readers cannot
    drift apart; a field with a default (None) is a part that only some evaluations have, left out
    of the JSON when absent. Required fields are always written, None included (an empty group)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_serializer(mode="wrap")
    def _leave_out_absent_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        required = {name for name, field in type(self).model_fields.items() if field.is_required()}
        return {key: value for key, value in handler(self).items() if key in required or value is not None}

    def write(self, path: Path) -> None:
        """Write as indented JSON (:func:`json.dumps`, as every JSON file of the pipeline)."""
        write_json(path, self.model_dump())

    @classmethod
    def read(cls, path: Path) -> Self:
        """Read a file written by :meth:`write`; one that no longer matches the fields fails here."""
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class Rates(Record):
    """Both Challenge 25 rates at one threshold with the counts behind them: minors (and
    13-17-year-olds) served without ID, adults asked for ID; a rate is None for an empty group."""

    threshold: float
    minor_pass_rate: float | None
    minor_pass_rate_upper95: float | None
    minors: int
    minors_passed: int
    teen_pass_rate: float | None
    teen_pass_rate_upper95: float | None
    teens: int
    teens_passed: int
    adult_check_rate: float | None
    adults: int
    adults_checked: int


class Calibration(Record):
    """Where the safer threshold is set, and the share of minors it may serve without ID."""

    calibrated_on: str
    max_minor_pass_rate: float


class NoSafeThreshold(Calibration):
    """The calibration photos have no minors: no threshold to set."""

    threshold: None


class _CalibrationRate(Calibration):
    calibration_minor_pass_rate: float | None


class SafeThreshold(Rates, _CalibrationRate):
    """The lowest threshold that keeps the minor pass rate of the calibration photos within the
    limit, and the rates of the evaluated photos at it."""


class TeenRate(Record):
    """13-17-year-olds served without ID, validation and test photos together (each has few)."""

    rate: float | None
    upper95: float | None
    count: int
    passed: int


class _LegalAge(Record):
    legal_age: float


class Challenge25(Rates, _LegalAge):
    """The rates at the policy threshold, the safer threshold and, with validation photos, the
    13-17-year-olds of validation and test together."""

    safe_threshold: SafeThreshold | NoSafeThreshold
    teens_val_test: TeenRate | None = None


class Group(Record):
    """One group of customers (a gender, a race): photos, MAE and both rates at the policy threshold."""

    count: int
    mae: float
    minor_pass_rate: float | None
    minors: int
    adult_check_rate: float | None
    adults: int


class TillSummary(Record):
    """Photos through the till: faces found, MAE, and MAE on the same photos' crops (per source too)."""

    photos: int
    faces_found: float
    mae: float
    mae_crops: float
    by_source: dict[str, TillSummary] | None = None


class TillCheck(Record):
    """The test photos as the till sees them: whole photos and synthetic till frames."""

    whole_photos: TillSummary | None = None
    frames: TillSummary | None = None

    def checks(self) -> dict[str, TillSummary]:
        """The checks that were run, by name."""
        return {name: summary for name, summary in self if summary is not None}


class Headline(Record):
    """The numbers to read first: ``metrics/metrics.json``, the pipeline's one metrics file, flat and
    short so that ``dvc metrics show`` and ``dvc exp show`` fit a terminal (everything else is in
    :data:`DETAILS`). Their meanings stay put when the policy threshold moves: *teens served* is the
    share of 13-17-year-olds (validation and test together: each has few) estimated at the threshold
    or older; *adults asked* the share of test customers aged 25 or older estimated under it. Plus
    ``mae_<source>`` for each photo source."""

    model_config = ConfigDict(extra="allow")

    mae: float
    mae_13_17: float | None
    val_mae: float | None
    teens_served: float | None
    adults_asked: float | None


class Evaluation(Record):
    """Every metric of an evaluation (:data:`DETAILS`): errors overall, per age band of the true age
    (mean signed error: + = estimated too old) and per source; Challenge 25 rates; per group where
    the labels have them; and, in the evaluate stage, the till check."""

    count: int
    mae: float
    rmse: float
    median_ae: float
    mae_by_age_band: dict[str, float]
    count_by_age_band: dict[str, int]
    mean_error_by_age_band: dict[str, float]
    mae_by_source: dict[str, float]
    count_by_source: dict[str, int]
    challenge25: Challenge25
    val_mae: float | None = None
    by_gender: dict[str, Group] | None = None
    by_race: dict[str, Group] | None = None
    till: TillCheck | None = None

    def groups(self) -> dict[str, dict[str, Group]]:
        """The groupings the labels have, by label column."""
        tables = {"gender": self.by_gender, "race": self.by_race}
        return {column: table for column, table in tables.items() if table is not None}

    def headline(self) -> Headline:
        """MAE overall, per source, for 13-17-year-olds and on validation; the two Challenge 25 rates."""
        c25 = self.challenge25
        teens = c25.teens_val_test.rate if c25.teens_val_test is not None else c25.teen_pass_rate
        return Headline(
            mae=self.mae,
            mae_13_17=self.mae_by_age_band.get(TEEN_BAND),
            val_mae=self.val_mae,
            teens_served=teens,
            adults_asked=c25.adult_check_rate,
            **{f"mae_{source}": mae for source, mae in self.mae_by_source.items()},
        )
