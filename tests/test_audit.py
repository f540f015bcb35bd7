"""``agecheck audit``: generated sales logs with known cashiers, the statistics, the review list, the
page, every bad input (one ``error:`` line, exit 2, the files untouched) and frames through the till."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agecheck import cli
from agecheck.audit.cashiers import (
    FLAGGED,
    NOT_FLAGGED,
    TOO_FEW,
    cashier_table,
    greater_share_p,
    till_asked,
)
from agecheck.audit.run import audit_sales, write_audit
from agecheck.audit.sales import SALES_COLUMNS
from agecheck.data.images import read_photo
from agecheck.intervals import wilson_interval
from agecheck.model.age_model import AgeModel
from agecheck.till.estimates_log import EstimatesLog, Sale, log_entry
from agecheck.till.pipeline import FaceResult, Till
from agecheck.till.policy import under_age_probabilities
from tests.support import synthetic as syn
from tests.support.params import PARAMS
from tests.support.till_faces import customer_face

POLICY, CONFIG = PARAMS.policy, PARAMS.audit


# --- a generated month ----------------------------------------------------------------------------


@dataclass
class Cashier:
    """A cashier's alcohol sales: ``young`` customers estimated under the threshold (``unchecked`` of
    them without an ID check), ``older`` ones over it (never checked)."""

    store: str
    name: str
    young: int
    unchecked: int
    older: int = 20


@dataclass
class Month:
    rows: list[dict[str, object]] = field(default_factory=list)
    ages: dict[str, float | None] = field(default_factory=dict)  # sale_id -> estimate (None: no face)


def month_of(cashiers: list[Cashier]) -> Month:
    """Sales with estimates: the young customers' estimates spread over 14..24, the older 30..60."""
    month = Month()
    for c in cashiers:
        for i in range(c.young + c.older):
            sale_id = f"{c.name}-{i:03d}"
            young = i < c.young
            month.ages[sale_id] = 14 + (i * 7 % 11) if young else 30 + i % 30
            checked = young and i >= c.unchecked
            month.rows.append(
                {
                    "sale_id": sale_id,
                    "time": f"2025-03-{1 + i % 28:02d}T10:{i % 60:02d}:00",
                    "store": c.store,
                    "till": f"{c.store}-T1",
                    "cashier": c.name,
                    "alcohol": 1,
                    "id_checked": int(checked),
                }
            )
    return month


#: Store A: A1 skips three checks in four; A2..A5 skip one in four. Store B: all alike, and B6 has
#: too few young customers to judge.
STANDARD = [
    Cashier("A", "A1", 60, 45),
    *[Cashier("A", f"A{k}", 60, 15) for k in range(2, 6)],
    *[Cashier("B", f"B{k}", 60, 15) for k in range(1, 6)],
    Cashier("B", "B6", 12, 12),
]


def face(age: float) -> FaceResult:
    """The customer's face as the till reports it, with a softmax centred on ``age``."""
    return customer_face(age, POLICY)


def write_estimates(path: Path, month: Month) -> Path:
    """The estimates log of ``month``, written as the till writes it (:func:`log_entry`)."""
    log = EstimatesLog(path)
    rows = {row["sale_id"]: row for row in month.rows}
    for sale_id, age in month.ages.items():
        row = rows.get(sale_id)
        sale = Sale(sale_id, str(row["till"]), str(row["cashier"])) if row else Sale(sale_id)
        faces = [] if age is None else [face(age)]
        log.append(log_entry(faces, "ok" if faces else "no_face", POLICY, sale))
    log.close()
    return path


def write_sales(path: Path, rows: list[dict[str, object]]) -> Path:
    table = pd.DataFrame(rows)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    month = month_of(STANDARD)
    return write_sales(tmp_path / "sales.csv", month.rows), write_estimates(
        tmp_path / "estimates.jsonl", month
    )


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def run_audit(tmp_path: Path, *args: str) -> int:
    """``agecheck audit`` in-process, with a model path beside no calibration file."""
    return cli.main(["audit", *args, "--model", str(tmp_path / "no_model.keras")])


# --- the audit of a generated month ---------------------------------------------------------------


def test_the_dishonest_cashier_is_flagged_and_the_honest_ones_are_not(
    tmp_path: Path, logs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sales, estimates = logs
    before = snapshot(sales, estimates)
    out = tmp_path / "out"
    assert run_audit(tmp_path, str(sales), "--estimates", str(estimates), "--output", str(out)) == 0
    assert snapshot(sales, estimates) == before
    assert "1 flagged, 9 not flagged, 1 too few sales" in capsys.readouterr().err
    cashiers = pd.read_csv(out / "cashiers.csv", dtype={"store": str, "cashier": str})
    status = dict(zip(cashiers["cashier"], cashiers["status"], strict=True))
    assert status.pop("A1") == FLAGGED and status.pop("B6") == TOO_FEW
    assert set(status.values()) == {NOT_FLAGGED}
    a1 = cashiers.iloc[0]  # flagged first
    assert (a1["cashier"], a1["under_threshold"], a1["unchecked"]) == ("A1", 60, 45)
    assert (a1["others_under_threshold"], a1["others_unchecked"]) == (240, 60)
    assert a1["share_low"] < 0.75 < a1["share_high"] and a1["q_value"] <= CONFIG.fdr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sales"] == summary["alcohol_sales"] == len(month_of(STANDARD).rows)
    assert (summary["flagged"], summary["not_flagged"], summary["too_few_sales"]) == (1, 9, 1)
    assert summary["alcohol_sales_by_reason"] == {"ok": summary["sales"]}
    assert (summary["threshold"], summary["legal_age"], summary["simulation"]) == (25, 18, False)
    assert (
        summary["adult_asked_rate"] is None and summary["expected_adults_unchecked_under_threshold"] is None
    )
    page = (out / "audit.html").read_text()
    assert "Flagged cashiers" in page and ">A1<" in page and "This is a simulation" not in page
    assert page.count("<img") == 2  # a chart per store


def test_a_jsonl_sales_log_gives_the_same_audit(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    sales, estimates = logs
    jsonl = write_sales(tmp_path / "sales.jsonl", month_of(STANDARD).rows)
    for log, out in ((sales, "csv"), (jsonl, "jsonl")):
        assert (
            run_audit(tmp_path, str(log), "--estimates", str(estimates), "--output", str(tmp_path / out)) == 0
        )
    assert (tmp_path / "csv/cashiers.csv").read_bytes() == (tmp_path / "jsonl/cashiers.csv").read_bytes()


def test_too_few_sales_are_marked_and_never_flagged() -> None:
    """B6 sold to 12 young customers, none checked: a share of 100%, but too few to judge; and a store
    whose other cashiers have too few makes its cashiers too few as well."""
    month = month_of([*STANDARD, Cashier("C", "C1", 80, 80), Cashier("C", "C2", 20, 0)])
    table = cashier_table(*_with_asked(sales_frame(month)), CONFIG).set_index("cashier")
    assert table.loc["B6", "unchecked_share"] == 1.0
    assert (table.loc[["B6", "C1", "C2"], "status"] == TOO_FEW).all()
    assert table.loc[["B6", "C1", "C2"], ["p_value", "q_value"]].isna().all().all()
    assert table.loc["C1", "others_under_threshold"] == 20 < CONFIG.min_sales


def sales_frame(month: Month) -> pd.DataFrame:
    """The month as the audit's input table, without files."""
    table = pd.DataFrame(month.rows)
    table["estimate"] = table["sale_id"].map(month.ages).astype(float)
    probs = [under_age_probabilities(face(a).estimate.probs, POLICY)[0] for a in table["estimate"]]
    table["p_under_legal"] = [p.legal for p in probs]
    table["p_under_threshold"] = [p.threshold for p in probs]
    table["age_low"], table["age_high"] = table["estimate"] - 4, table["estimate"] + 4
    table["reason"] = ""
    return table


def _with_asked(sales: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The sales and whether the till asked for ID for each: :func:`cashier_table`'s inputs."""
    return sales, till_asked(sales, POLICY)


def test_benjamini_hochberg_is_applied() -> None:
    """S1 has a p value under 0.05, but among 20 cashiers tested its q value is over 0.05: not flagged."""
    cashiers = [Cashier("S", "S1", 60, 24)] + [Cashier("S", f"S{k}", 60, 15) for k in range(2, 21)]
    table = cashier_table(*_with_asked(sales_frame(month_of(cashiers))), CONFIG).set_index("cashier")
    assert table.loc["S1", "p_value"] < 0.05 < table.loc["S1", "q_value"]
    assert table.loc["S1", "status"] == NOT_FLAGGED
    expected = stats.false_discovery_control(table["p_value"].to_numpy(), method="bh")
    np.testing.assert_allclose(table["q_value"].to_numpy(), expected)


def test_the_tests_are_fisher_and_wilson() -> None:
    for k, n, k_others, n_others in [(45, 60, 60, 240), (3, 10, 30, 100), (0, 5, 2, 40), (7, 7, 0, 50)]:
        table = [[k, n - k], [k_others, n_others - k_others]]
        fisher = stats.fisher_exact(table, alternative="greater").pvalue
        assert greater_share_p(np.array([k]), np.array([n]), np.array([k_others]), np.array([n_others]))[
            0
        ] == pytest.approx(fisher, rel=1e-9)
    low, high = wilson_interval(np.array([5, 0, 0]), np.array([10, 20, 0]))
    np.testing.assert_allclose(low[:2], [0.236593, 0.0], atol=1e-6)
    np.testing.assert_allclose(high[:2], [0.763407, 0.161125], atol=1e-6)
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_the_review_lists_unchecked_sales_most_likely_minors_first(
    tmp_path: Path, logs: tuple[Path, Path]
) -> None:
    sales, estimates = logs
    out = tmp_path / "out"
    assert (
        run_audit(tmp_path, str(sales), "--estimates", str(estimates), "--output", str(out), "--review", "40")
        == 0
    )
    review = pd.read_csv(out / "review.csv", dtype={"sale_id": str, "cashier": str})
    assert list(review["rank"]) == list(range(1, 41))
    p = review["p_under_legal"].to_numpy()
    assert (np.diff(p) <= 0).all() and p[0] > 0.8
    ties = review.groupby("p_under_legal", sort=False)["estimate"]
    assert ties.apply(lambda e: e.is_monotonic_increasing).all()
    checked = pd.read_csv(sales, dtype=str).set_index("sale_id")["id_checked"]
    assert (checked[review["sale_id"]] == "0").all()
    assert set(review.columns) >= {"sale_id", "cashier", "estimate", "p_under_legal", "cashier_status"}
    assert not {"photo", "file", "age_probs"} & set(review.columns)
    assert json.loads((out / "summary.json").read_text())["review_rows"] == 40


def test_rows_the_audit_cannot_use_are_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    month = month_of(STANDARD)
    month.ages["A2-000"] = None  # no face in the frame
    del month.ages["A2-001"]  # no line in the estimates log
    month.ages["A2-002-again"] = 30.0
    month.rows[2]["cashier"] = ""  # A1-002: no cashier
    month.rows.append({**month.rows[-1], "sale_id": "not-alcohol", "alcohol": 0})
    estimates = write_estimates(tmp_path / "estimates.jsonl", month)
    with estimates.open("a") as log:  # the till took A2-003's photo again: the last line counts
        log.write(json.dumps(log_entry([face(40.0)], "ok", POLICY, Sale("A2-003"))) + "\n")
    sales = write_sales(tmp_path / "sales.csv", month.rows)
    assert (
        run_audit(tmp_path, str(sales), "--estimates", str(estimates), "--output", str(tmp_path / "out")) == 0
    )
    err = capsys.readouterr().err
    assert "sale_id A2-003 logged more than once; the last line of each sale counts" in err
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["sales"] == len(month.rows) and summary["alcohol_sales"] == len(month.rows) - 1
    assert summary["alcohol_sales_by_reason"] == {
        "no_cashier": 1,
        "no_estimate": 1,
        "no_face": 1,
        "ok": len(month.rows) - 4,
    }
    cashiers = pd.read_csv(tmp_path / "out/cashiers.csv", dtype={"cashier": str}).set_index("cashier")
    assert cashiers.loc["A2", "no_estimate"] == 2 and cashiers.loc["A2", "under_threshold"] == 57


def test_the_calibration_says_what_the_model_errors_explain(tmp_path: Path, logs: tuple[Path, Path]) -> None:
    sales, estimates = logs
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"adult_asked_rate": 0.1}))
    out = tmp_path / "out"
    args = [
        str(sales),
        "--estimates",
        str(estimates),
        "--output",
        str(out),
        "--calibration",
        str(calibration),
    ]
    assert run_audit(tmp_path, *args) == 0
    summary = json.loads((out / "summary.json").read_text())
    unchecked = sum(c.unchecked + c.older for c in STANDARD)
    assert summary["unchecked_estimated"] == unchecked
    assert summary["expected_adults_unchecked_under_threshold"] == pytest.approx(0.1 * unchecked, abs=0.05)
    assert summary["adult_asked_rate"] == 0.1 and summary["calibration"] == str(calibration)
    assert "10% of adults aged 25 and over" in (out / "audit.html").read_text()


def test_a_simulated_audit_says_so(tmp_path: Path) -> None:
    sales = sales_frame(month_of(STANDARD))
    before = sales.copy()
    audit = audit_sales(sales, POLICY, CONFIG, simulation=True)
    pd.testing.assert_frame_equal(sales, before)  # the input is left as it was
    write_audit(audit, tmp_path)
    assert "This is a simulation" in (tmp_path / "audit.html").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["simulation"] is True


def test_an_audit_with_no_flag_and_no_review_rows(tmp_path: Path) -> None:
    table = sales_frame(month_of([Cashier("A", f"A{k}", 40, 0, older=0) for k in range(1, 4)]))
    audit = audit_sales(table, POLICY, CONFIG)
    assert audit.review.empty and audit.summary["flagged"] == 0
    write_audit(audit, tmp_path)
    assert "No cashier is flagged." in (tmp_path / "audit.html").read_text()


# --- bad input: one line, exit 2, nothing changed -------------------------------------------------


def _bad_cases(tmp_path: Path) -> Iterator[tuple[str, list[str], str]]:
    """``(name, arguments, the error line)``; the files are written here."""
    month = month_of(STANDARD[:3])
    estimates = write_estimates(tmp_path / "estimates.jsonl", month)
    est = ["--estimates", str(estimates)]
    columns = ", ".join(SALES_COLUMNS)

    renamed = write_sales(
        tmp_path / "renamed.csv",
        [{("cashir" if k == "cashier" else k): v for k, v in r.items()} for r in month.rows],
    )
    yield (
        "misspelt column",
        [str(renamed), *est],
        f"{renamed}: missing column 'cashier' (did you mean 'cashir'?); a sales log has {columns} "
        "(docs/audit.md)",
    )
    no_photo = write_sales(tmp_path / "no_photo.csv", month.rows)
    yield (
        "no photo column and no estimates",
        [str(no_photo)],
        f"{no_photo}: missing column 'photo'; a sales log has {columns}, photo (docs/audit.md)",
    )
    rows = [dict(r) for r in month.rows]
    rows[3]["alcohol"] = "yes"
    yes = write_sales(tmp_path / "yes.csv", rows)
    yield "alcohol = yes", [str(yes), *est], f"{yes}: alcohol must be 0 or 1, not 'yes' (sale A1-003)"
    rows = [dict(r) for r in month.rows]
    rows[1]["sale_id"] = rows[0]["sale_id"]
    rows[5]["sale_id"] = rows[4]["sale_id"]
    twice = write_sales(tmp_path / "twice.csv", rows)
    yield (
        "duplicated sale_id",
        [str(twice), *est],
        f"{twice}: sale_id repeated: A1-000, A1-004; each sale has one row",
    )
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(SALES_COLUMNS) + "\n")
    yield "empty log", [str(empty), *est], f"{empty} has no sales"
    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text("")
    yield "empty file", [str(nothing), *est], f"{nothing} has no sales"
    sales = write_sales(tmp_path / "sales.csv", month.rows)
    text = estimates.read_text().replace('"age":14.0', '"age":"fourteen"', 1)
    words = tmp_path / "words.jsonl"
    words.write_text(text)
    yield (
        "age not a number",
        [str(sales), "--estimates", str(words)],
        f"{words}: age must be a number, not 'fourteen' (sale A1-000)",
    )
    photos = [{**r, "photo": f"frames/{r['sale_id']}.jpg"} for r in month.rows[:4]]
    framed = write_sales(tmp_path / "framed.csv", photos)
    yield (
        "photos that do not exist",
        [str(framed)],
        f"4 photos of the sales log are not in {tmp_path}: frames/A1-000.jpg, frames/A1-001.jpg, "
        "frames/A1-002.jpg (and 1 more)",
    )
    yield (
        "a photo column and --estimates",
        [str(framed), *est],
        f"{framed} has a photo column and --estimates was given: the audit takes the customer's estimate "
        "from one of them; drop the column or the option",
    )
    text_file = tmp_path / "sales.txt"
    text_file.write_text("sale_id\n")
    yield (
        "suffix",
        [str(text_file), *est],
        "the sales log must end with .csv, .jsonl or .json (got sales.txt)",
    )
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"sale_id": "a"}\n{not json\n')
    yield "not JSON lines", [str(broken), *est], f"cannot read {broken} as JSON lines (one object a line): "
    yield (
        "no estimates log",
        [str(sales), "--estimates", str(tmp_path / "absent.jsonl")],
        (f"estimates log not found: {tmp_path / 'absent.jsonl'}"),
    )
    other = write_estimates(tmp_path / "other.jsonl", month_of([Cashier("X", "X1", 5, 5)]))
    yield (
        "an estimates log of other sales",
        [str(sales), "--estimates", str(other)],
        f"none of the 240 alcohol sales has a line in {other} (joined on sale_id): is it the log of the "
        "same tills and days?",
    )
    calibration = tmp_path / "calibration.json"
    calibration.write_text('{"mae": 5}')
    yield (
        "calibration without the rate",
        [str(sales), *est, "--calibration", str(calibration)],
        f"{calibration} has no usable adult_asked_rate (KeyError: 'adult_asked_rate')",
    )


def test_every_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = list(_bad_cases(tmp_path))
    before = snapshot(*tmp_path.iterdir())
    for name, args, message in cases:
        with pytest.raises(SystemExit) as exit_:
            run_audit(tmp_path, *args, "--output", str(tmp_path / "out"))
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2, name
        assert "\n" not in err and "Traceback" not in err, name
        assert err.startswith(f"error: {message}"), f"{name}: {err}"
        if not message.endswith(": "):
            assert err == f"error: {message}", name
    assert snapshot(*tmp_path.iterdir()) == before
    assert not (tmp_path / "out").exists()


# --- frames through the till ---------------------------------------------------------------------


def test_frames_go_through_the_till(
    tmp_path: Path, dex_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cartoon frames the real detector finds (the largest face is the customer's), a frame with no face,
    a broken file and an empty photo cell: each sale gets an estimate or a reason."""
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "one.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    (frames / "two.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([(40, 100, 120), (300, 120, 220)])))
    (frames / "none.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([])))
    (frames / "broken.jpg").write_bytes(b"not a photo")
    photos = ["frames/one.jpg", "frames/two.jpg", "frames/none.jpg", "frames/broken.jpg", ""]
    rows = [
        {
            "sale_id": f"s{i}",
            "time": "2025-03-01T10:00",
            "store": "A",
            "till": "T1",
            "cashier": "C1",
            "alcohol": 1,
            "id_checked": 0,
            "photo": photo,
        }
        for i, photo in enumerate(photos)
    ]
    sales = write_sales(tmp_path / "sales.csv", rows)
    before = snapshot(sales, *frames.iterdir())
    out = tmp_path / "out"
    args = ["audit", str(sales), "--output", str(out), "--model", str(dex_model_path), "--batch-size", "2"]
    assert cli.main(args) == 0
    assert snapshot(sales, *frames.iterdir()) == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alcohol_sales_by_reason"] == {"no_face": 1, "no_photo": 1, "not_an_image": 1, "ok": 2}
    review = pd.read_csv(out / "review.csv").set_index("sale_id")
    assert sorted(review.index) == ["s0", "s1"] and review["p_under_legal"].between(0, 1).all()
    till = Till.from_params(AgeModel.load(dex_model_path), PARAMS)
    faces = till.run([read_photo(frames / "two.jpg", PARAMS.validate_)])[0]
    largest = max(faces, key=lambda f: f.box.width * f.box.height)
    assert len(faces) == 2 and review.loc["s1", "estimate"] == pytest.approx(largest.estimate.age, rel=1e-5)
    capsys.readouterr()
