"""``agecheck segments``: a known confusion matrix and known shares recovered, the simulated scenarios
(the null one invents no effect), every bad input (one ``error:`` line, exit 2, the files untouched),
sales without a usable face counted, the command end to end on generated logs and frames, the stage,
and the page in a real browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agecheck import cli
from agecheck.config import parse_params
from agecheck.errors import AgecheckError
from agecheck.segments.bootstrap import CORRECTED, ESTIMATE, SOFTMAX, TRUE
from agecheck.segments.correction import unmix
from agecheck.segments.groups import Groups, read_confusion
from agecheck.segments.receipts import Receipts
from agecheck.segments.run import FILES, UNKNOWN, segment, write_segments
from agecheck.segments.simulate import check_customers, measure, simulate
from agecheck.till.estimates_log import EstimatesLog, Sale, log_entry
from tests.support import synthetic as syn
from tests.support.browser import assert_works_offline, open_static_page
from tests.support.params import PARAMS, changed
from tests.support.till_faces import customer_face

ROOT = Path(__file__).resolve().parents[1]
CONFIG, POLICY = PARAMS.segments, PARAMS.policy
GROUPS = Groups.from_config(CONFIG)
QUICK = changed(CONFIG, bootstrap=60)  # fewer resamples where the intervals are not the point


# --- generated photos, calibration files and logs -------------------------------------------------


def estimated(age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A model that pulls ages to the middle as the real one does (teenagers about 4 years older, the
    over-65s about 5 younger: metrics/evaluate/predictions.csv), give or take 5 years."""
    return age + 0.15 * (40 - age) + rng.normal(0, 5, len(age))


def photos(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The till's estimates of ``n`` photos aged 5..85 (the under-13s are no shoppers) as stage calibrate
    writes them (3% without a face: NaN), and their softmaxes (normal, sd 4)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(5, 86, n).astype(float)
    estimate = estimated(age, rng)
    found = rng.random(n) > 0.03
    years = np.arange(101)
    probs = np.exp(-0.5 * ((years - estimate[:, None]) / 4.0) ** 2)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    probs[~found] = np.nan
    table = pd.DataFrame(
        {
            "id": [f"p/{i}.jpg" for i in range(n)],
            "source": "p",
            "age": age,
            "found": found,
            "estimate": np.where(found, estimate, np.nan),
            "p_under_legal": np.nan,
            "p_under_threshold": np.nan,
        }
    )
    return table, probs


def write_calibration(path: Path, true: np.ndarray, estimate: np.ndarray) -> Path:
    """A calibration file whose confusion matrix counts these (true age, estimated age) photos."""
    cells = pd.Series(1, index=pd.MultiIndex.from_arrays([true.astype(int), np.rint(estimate).astype(int)]))
    counts = [[int(t), int(e), int(n)] for (t, e), n in cells.groupby(level=[0, 1]).sum().items()]
    path.write_text(json.dumps({"adult_asked_rate": 0.1, "confusion": {"counts": counts}}), encoding="utf-8")
    return path


def validation_calibration(path: Path) -> Path:
    """The calibration file of 4,000 validation photos of the same model."""
    table, _ = photos(4000, seed=11)
    found = table[table["found"]]
    return write_calibration(path, found["age"].to_numpy(), found["estimate"].to_numpy())


def write_receipts(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def month(sales: int = 3000, seed: int = 3) -> tuple[list[dict[str, object]], dict[str, float | None]]:
    """Receipt rows (one per sale and category; a sale with nothing categorised has an empty cell) and
    the till's estimate of each sale's customer (None: no face): energy drinks go to the young,
    medicine to the old, bread to everyone."""
    rng = np.random.default_rng(seed)
    age = rng.integers(13, 86, sales).astype(float)
    estimate = estimated(age, rng)
    young, old = age < 25, age >= 65
    rates = {
        "bread": np.full(sales, 0.3),
        "energy drinks": np.where(young, 0.4, 0.05),
        "medicine": np.where(old, 0.4, 0.05),
    }
    rows, ages = [], {}
    for i in range(sales):
        sale = {"sale_id": f"s{i:05d}", "time": f"2025-03-{1 + i % 28:02d}T10:00:00", "store": f"S{i % 4}"}
        bought = [name for name, p in rates.items() if rng.random() < p[i]] or [""]
        rows.extend({**sale, "category": category} for category in bought)
        ages[sale["sale_id"]] = None if i % 37 == 0 else float(estimate[i])
    return rows, ages


def write_estimates(path: Path, ages: dict[str, float | None]) -> Path:
    """The estimates log of these sales, written as the till writes it."""
    with EstimatesLog(path) as log:
        for sale_id, age in ages.items():
            faces = [] if age is None else [customer_face(age, POLICY, 4.0)]
            log.append(log_entry(faces, "ok" if faces else "no_face", POLICY, Sale(sale_id)))
    return path


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A month's receipts, its estimates log and the model's calibration file."""
    rows, ages = month()
    return (
        write_receipts(tmp_path / "receipts.csv", rows),
        write_estimates(tmp_path / "estimates.jsonl", ages),
        validation_calibration(tmp_path / "calibration.json"),
    )


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def command_line(receipts: Path, estimates: Path, calibration: Path, out: Path) -> list[str]:
    return [
        str(receipts),
        "--estimates",
        str(estimates),
        "--calibration",
        str(calibration),
        "--output",
        str(out),
    ]


def run_segments(tmp_path: Path, *args: str) -> int:
    """``agecheck segments`` in-process, with a model path beside no calibration file."""
    return cli.main(["segments", *args, "--model", str(tmp_path / "no_model.keras")])


# --- the correction -------------------------------------------------------------------------------


def test_the_unmixing_recovers_known_counts() -> None:
    """Counts mixed through a known matrix come back: exactly with many EM steps, within a few percent
    with the configured ones; never negative."""
    matrix = np.array(
        [
            [0.7, 0.2, 0.0, 0.0],
            [0.3, 0.6, 0.2, 0.0],
            [0.0, 0.2, 0.6, 0.3],
            [0.0, 0.0, 0.2, 0.7],
        ]
    )
    true = np.array([[500.0, 0.0], [3000.0, 100.0], [2500.0, 900.0], [1000.0, 1000.0]])
    observed = matrix @ true
    np.testing.assert_allclose(unmix(matrix, observed, 3000), true, atol=2.0)
    quick = unmix(matrix, observed, CONFIG.iterations)
    assert (quick >= 0).all() and np.allclose(quick.sum(axis=0), true.sum(axis=0))
    assert np.abs(quick - true).max() < 0.06 * true.sum(axis=0).max()


def _known_month(n: int, rng: np.random.Generator) -> tuple[Receipts, np.ndarray, dict[str, np.ndarray]]:
    """Sales of customers with known true groups, estimated through a known matrix of whole ages."""
    shares = np.array([0.04, 0.2, 0.3, 0.2, 0.16, 0.1])
    true = rng.choice(len(GROUPS), size=n, p=shares)
    middle = np.array([15, 21, 30, 42, 57, 72])
    # estimated age: the group's middle age moved to a neighbouring group one time in five
    step = rng.choice([-1, 0, 1], size=n, p=[0.1, 0.8, 0.1])
    estimate = middle[np.clip(true + step, 0, len(GROUPS) - 1)].astype(float)
    rates = np.array([[0.3] * 6, [0.5, 0.4, 0.1, 0.05, 0.03, 0.01], [0.0, 0.05, 0.3, 0.1, 0.02, 0.01]])
    sale, category = np.nonzero(rng.random((n, len(rates))) < rates[:, true].T)
    sales = pd.DataFrame(
        {
            "sale_id": [f"s{i}" for i in range(n)],
            "customer": [f"c{i}" for i in range(n)],
            "reason": "",
            "estimate": estimate,
        }
    )
    truth = {"shares": np.bincount(true, minlength=len(GROUPS)) / n, "rates": rates}
    return Receipts(sales, sale, category, ["bread", "energy drinks", "baby food"]), middle[true], truth


def test_a_known_confusion_and_known_shares_are_recovered(tmp_path: Path) -> None:
    """The calibration file holds the matrix the estimates were made with: the corrected group shares
    and purchase rates are the true ones, the raw ones are not."""
    rng = np.random.default_rng(0)
    receipts, true_age, truth = _known_month(60_000, rng)
    middle = np.array([15, 21, 30, 42, 57, 72])
    moved = {-1: 1, 0: 8, 1: 1}  # per 10 photos: to the group below, kept, to the group above
    cells = [(middle[t], middle[min(max(t + d, 0), 5)], 100 * n) for t in range(6) for d, n in moved.items()]
    calibration = write_calibration(
        tmp_path / "calibration.json",
        np.repeat([c[0] for c in cells], [c[2] for c in cells]),
        np.repeat([c[1] for c in cells], [c[2] for c in cells]),
    )
    confusion = read_confusion(calibration, GROUPS)
    np.testing.assert_allclose(confusion.matrix()[[0, 1], 0], [0.9, 0.1])  # no group below the first
    found = segment(receipts, GROUPS, confusion, changed(CONFIG, iterations=200), true_age=true_age)
    point = found.point
    np.testing.assert_allclose(point.shares(TRUE), truth["shares"])
    assert np.abs(point.shares(CORRECTED) - truth["shares"]).max() < 0.01
    assert np.abs(point.shares(ESTIMATE) - truth["shares"]).max() > 0.02
    assert np.abs(point.rates[CORRECTED] - truth["rates"]).max() < 0.02
    assert np.abs(point.rates[ESTIMATE] - truth["rates"]).max() > 0.03
    groups = found.groups.set_index("group")
    inside = (groups["share_low"] <= groups["share_true"]) & (groups["share_true"] <= groups["share_high"])
    assert inside.iloc[: len(GROUPS)].mean() >= 5 / 6
    assert SOFTMAX not in point.sizes  # no softmaxes given: no softmax columns


# --- the simulation -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_customers() -> tuple[pd.DataFrame, np.ndarray]:
    return check_customers(*photos(3000, seed=5), GROUPS)


@pytest.fixture(scope="module")
def confusion(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return read_confusion(validation_calibration(tmp_path_factory.mktemp("cal") / "calibration.json"), GROUPS)


def _scenario(name: str, customers: tuple[pd.DataFrame, np.ndarray], confusion, config=QUICK):  # noqa: ANN001, ANN202
    scenario = config.simulation.scenarios[name]
    month_ = simulate(*customers, GROUPS, config.simulation, scenario, np.random.default_rng(1), 40_000)
    found = segment(
        month_.receipts, GROUPS, confusion, config, month_.probs, month_.true_age, simulation=True
    )
    return found, measure(found, scenario)


def test_the_null_scenario_invents_no_effect(simulated_customers, confusion) -> None:  # noqa: ANN001
    """Nothing depends on age: the corrected lifts stay near 1, most 95% intervals hold 1 (93% on average
    over 8 seeds, as the raw lifts' and the true lifts' own intervals: the percentile bootstrap, not the
    correction)."""
    found, figures = _scenario("null_effect", simulated_customers, confusion, CONFIG)
    assert figures["lifts_within_interval_of_1"] >= 0.85
    distance = figures["lift_max_distance_from_1"]  # the largest: the under-18s' few sales, raw and corrected
    assert distance[CORRECTED] < distance[ESTIMATE] + 0.1
    assert figures["rate_mae"][CORRECTED] < 0.01
    assert found.summary["simulation"] is True and found.summary["customers"] > 2000


def test_the_correction_beats_the_raw_groups_where_age_matters(simulated_customers, confusion) -> None:  # noqa: ANN001
    for name in ("age_dependent", "other_mix"):
        _, figures = _scenario(name, simulated_customers, confusion)
        assert figures["rate_mae"][CORRECTED] < figures["rate_mae"][ESTIMATE], name
        assert figures["share_mae"][CORRECTED] < figures["share_mae"][ESTIMATE], name
        assert figures["rate_mae_difference"]["low"] > 0, name
        assert figures["rate_mae"][CORRECTED] < 0.02, name


def test_a_seed_gives_one_set_of_profiles(simulated_customers, confusion) -> None:  # noqa: ANN001
    one, _ = _scenario("age_dependent", simulated_customers, confusion)
    again, _ = _scenario("age_dependent", simulated_customers, confusion)
    pd.testing.assert_frame_equal(one.categories, again.categories)


# --- the command ----------------------------------------------------------------------------------


def test_the_command_writes_the_profiles_and_leaves_its_inputs(
    tmp_path: Path, logs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    receipts, estimates, calibration = logs
    before = snapshot(*logs)
    out = tmp_path / "out"
    args = command_line(receipts, estimates, calibration, out)
    assert run_segments(tmp_path, *args) == 0
    assert snapshot(*logs) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    err = capsys.readouterr().err
    assert f"segments {receipts}: 3000 sales (2918 with an estimate, 82 age unknown)" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == ["under 18", "18-24", "25-34", "35-49", "50-64", "65+"]
    assert summary["age_unknown_by_reason"] == {"no_face": 82} and summary["softmax"] is True
    assert summary["categories"] == 3 and summary["calibration"] == str(calibration)
    groups = pd.read_csv(out / "groups.csv")
    assert list(groups["group"]) == [*summary["groups"], UNKNOWN]
    assert groups["sales"].sum() == 3000 and groups["share_corrected"].sum() == pytest.approx(1, abs=1e-3)
    categories = pd.read_csv(out / "categories.csv").set_index(["group", "category"])
    assert categories.loc[("18-24", "energy drinks"), "lift_corrected"] > 1.5
    assert categories.loc[("65+", "medicine"), "lift_corrected"] > 1.5
    assert categories.loc[("65+", "medicine"), "lift_low"] > 1
    assert not {"photo", "file", "age_probs", "estimate"} & set(categories.columns)
    page = (out / "segments.html").read_text()
    assert escape("What 'corrected' means.") in page and "This is a simulation" not in page
    # the same receipts as JSON lines give the same profiles
    rows = pd.read_csv(receipts, dtype=str, keep_default_na=False).to_dict("records")
    jsonl = write_receipts(tmp_path / "receipts.jsonl", rows)
    assert run_segments(tmp_path, str(jsonl), *args[1:-1], str(tmp_path / "again")) == 0
    assert (tmp_path / "again/categories.csv").read_bytes() == (out / "categories.csv").read_bytes()


def test_sales_without_a_usable_face_are_counted_as_age_unknown(tmp_path: Path) -> None:
    """No face in the frame, a frame the till refused, no line in the log: counted by reason, never
    dropped; an unknown category is data."""
    rows, ages = month(400)
    ages["s00001"] = None  # no face
    del ages["s00002"]  # no line in the log
    rows.append({"sale_id": "s00003", "time": "t", "store": "S3", "category": "caviar"})
    estimates = write_estimates(tmp_path / "estimates.jsonl", ages)
    with estimates.open("a") as log:
        log.write(json.dumps(log_entry([], "not_an_image", POLICY, Sale("s00004"))) + "\n")
    receipts = write_receipts(tmp_path / "receipts.csv", rows)
    calibration = validation_calibration(tmp_path / "calibration.json")
    out = tmp_path / "out"
    args = command_line(receipts, estimates, calibration, out)
    assert run_segments(tmp_path, *args) == 0
    summary = json.loads((out / "summary.json").read_text())
    unknown = sum(1 for age in ages.values() if age is None)
    assert summary["age_unknown_by_reason"] == {"no_estimate": 1, "no_face": unknown, "not_an_image": 1}
    assert summary["age_unknown"] == unknown + 2 and summary["sales"] == 400
    assert summary["too_few_sales"]  # 400 sales: groups under min_sales are marked, not hidden
    groups = pd.read_csv(out / "groups.csv").set_index("group")
    assert groups.loc[UNKNOWN, "sales"] == unknown + 2 and len(groups) == len(GROUPS) + 1
    assert set(groups["status"]) >= {"too few sales", UNKNOWN}
    categories = pd.read_csv(out / "categories.csv")
    assert "caviar" in set(categories["category"])
    assert (categories["group"] == UNKNOWN).sum() == summary["categories"]


def _bad_cases(tmp_path: Path) -> Iterator[tuple[str, list[str], str]]:
    """``(name, arguments, the error line)``; the files are written here."""
    rows, ages = month(60)
    estimates = write_estimates(tmp_path / "estimates.jsonl", ages)
    calibration = validation_calibration(tmp_path / "calibration.json")
    est = ["--estimates", str(estimates), "--calibration", str(calibration)]
    columns = "sale_id, time, store, category"
    renamed = write_receipts(
        tmp_path / "renamed.csv",
        [{("categry" if k == "category" else k): v for k, v in r.items()} for r in rows],
    )
    yield (
        "misspelt column",
        [str(renamed), *est],
        f"{renamed}: missing column 'category' (did you mean 'categry'?); a receipts log has {columns} "
        "(docs/segments.md)",
    )
    receipts = write_receipts(tmp_path / "receipts.csv", rows)
    yield (
        "no photo column and no estimates",
        [str(receipts), "--calibration", str(calibration)],
        f"{receipts}: missing column 'photo'; a receipts log has {columns}, photo (docs/segments.md)",
    )
    framed = write_receipts(
        tmp_path / "framed.csv", [{**r, "photo": f"frames/{r['sale_id']}.jpg"} for r in rows]
    )
    yield (
        "a photo column and --estimates",
        [str(framed), *est],
        f"{framed} has a photo column and --estimates was given: agecheck segments takes the customer's "
        "estimate from one of them; drop the column or the option",
    )
    yield (
        "photos that do not exist",
        [str(framed), "--calibration", str(calibration)],
        f"60 photos of the receipts log are not in {tmp_path}: frames/s00000.jpg, frames/s00001.jpg, "
        "frames/s00002.jpg (and 57 more)",
    )
    two = [{**r, "photo": f"{r['sale_id']}-{n}.jpg"} for n, r in enumerate(rows[:4])] + [
        {**rows[0], "photo": "other.jpg", "category": "x"}
    ]
    two_frames = write_receipts(tmp_path / "two.csv", two)
    yield (
        "two frames for one sale",
        [str(two_frames), "--calibration", str(calibration)],
        f"{two_frames}: more than one photo for sale s00000; a sale has one till frame",
    )
    blank = [dict(r) for r in rows]
    blank[2]["sale_id"] = ""
    empty_id = write_receipts(tmp_path / "blank.csv", blank)
    yield (
        "empty sale_id",
        [str(empty_id), *est],
        f"{empty_id}: sale_id is empty (rows 3, the first sale being row 1)",
    )
    empty = tmp_path / "empty.csv"
    empty.write_text(columns.replace(" ", "") + "\n")
    yield "empty log", [str(empty), *est], f"{empty} has no sales"
    text_file = tmp_path / "receipts.txt"
    text_file.write_text("sale_id\n")
    yield (
        "suffix",
        [str(text_file), *est],
        "the receipts log must end with .csv, .jsonl or .json (got receipts.txt)",
    )
    yield (
        "no receipts",
        [str(tmp_path / "absent.csv"), *est],
        f"receipts log not found: {tmp_path / 'absent.csv'}",
    )
    other_rows, other_ages = month(5, seed=9)
    other = write_estimates(tmp_path / "other.jsonl", {f"x{k}": v for k, v in other_ages.items()})
    yield (
        "an estimates log of other sales",
        [str(receipts), "--estimates", str(other), "--calibration", str(calibration)],
        f"none of the 60 sales has a line in {other} (joined on sale_id): is it the log of the same tills "
        "and days?",
    )
    yield (
        "no calibration file",
        [str(receipts), "--estimates", str(estimates)],
        f"calibration file not found: {tmp_path / 'no_model.calibration.json'} (stage calibrate writes it "
        "beside the model; or give --calibration)",
    )
    nothing = write_receipts(tmp_path / "nothing.csv", [{**r, "category": ""} for r in rows])
    yield (
        "no category at all",
        [str(nothing), *est],
        f"{nothing} names no category (every category cell is empty): nothing to profile",
    )
    faceless = write_estimates(tmp_path / "faceless.jsonl", dict.fromkeys(ages))
    yield (
        "no usable face at all",
        [str(receipts), "--estimates", str(faceless), "--calibration", str(calibration)],
        "none of the 60 sales has an age estimate (no_face 60): no group to profile",
    )
    no_matrix = tmp_path / "rates_only.json"
    no_matrix.write_text('{"adult_asked_rate": 0.1}')
    yield (
        "a calibration file without the matrix",
        [str(receipts), "--estimates", str(estimates), "--calibration", str(no_matrix)],
        f"{no_matrix} has no usable confusion.counts ([true age, estimated age, count] rows: KeyError: "
        "'confusion')",
    )
    young = write_calibration(
        tmp_path / "young.json", np.array([15, 20, 30, 40, 55]), np.array([18, 22, 28, 45, 50])
    )
    yield (
        "no validation photos of a group",
        [str(receipts), "--estimates", str(estimates), "--calibration", str(young)],
        f"{young} has no validation photos aged 65+ (from 13): the model's errors there are unknown, so the "
        "shares cannot be corrected",
    )


def test_every_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = list(_bad_cases(tmp_path))
    before = snapshot(*tmp_path.iterdir())
    for name, args, message in cases:
        with pytest.raises(SystemExit) as exit_:
            run_segments(tmp_path, *args, "--output", str(tmp_path / "out"))
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2, name
        assert err == f"error: {message}", f"{name}: {err}"
    assert snapshot(*tmp_path.iterdir()) == before
    assert not (tmp_path / "out").exists()


def test_bad_params_name_the_key() -> None:
    raw = PARAMS.model_dump(by_alias=True)
    for change, message in (
        ({"groups": [18, 35, 25]}, "segments: groups must increase"),
        ({"min_age": 18}, "segments: min_age (18) must be under the first group (18)"),
    ):
        with pytest.raises(AgecheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_params({**raw, "segments": {**raw["segments"], **change}})
    sim = raw["segments"]["simulation"]
    wrong = {**sim, "categories": {**sim["categories"], "tea": [0.1, 0.2]}}
    with pytest.raises(AgecheckError, match="simulation.categories.tea: one rate per group"):
        parse_params({**raw, "segments": {**raw["segments"], "simulation": wrong}})


def test_frames_go_through_the_till(tmp_path: Path, dex_model_path: Path) -> None:
    """Receipts with a photo column: the largest face is the customer's, a frame behind two sales is
    one customer (read once), a frame without a face and an empty cell are age unknown."""
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "one.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    (frames / "two.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([(40, 100, 120), (300, 120, 220)])))
    (frames / "none.jpg").write_bytes(syn.jpeg_bytes(syn.till_frame([])))
    photos_of = {
        "s0": "frames/one.jpg",
        "s1": "frames/two.jpg",
        "s2": "frames/two.jpg",
        "s3": "frames/none.jpg",
        "s4": "",
    }
    rows = [
        {"sale_id": s, "time": "2025-03-01T10:00", "store": "A", "category": c, "photo": p}
        for s, p in photos_of.items()
        for c in ("bread", "wine")
    ]
    receipts = write_receipts(tmp_path / "receipts.csv", rows)
    calibration = validation_calibration(tmp_path / "calibration.json")
    before = snapshot(receipts, *frames.iterdir())
    out = tmp_path / "out"
    args = ["segments", str(receipts), "--output", str(out), "--calibration", str(calibration)]
    assert cli.main([*args, "--model", str(dex_model_path), "--batch-size", "2"]) == 0
    assert snapshot(receipts, *frames.iterdir()) == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["age_unknown_by_reason"] == {"no_face": 1, "no_photo": 1}
    assert summary["sales_with_estimate"] == 3 and summary["customers"] == 2 and summary["softmax"] is True


# --- the stage and the page -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage segments run in a folder with a calibration file and the test customers of stage calibrate."""
    folder = tmp_path_factory.mktemp("stage")
    (folder / "data/till").mkdir(parents=True)
    (folder / "models").mkdir()
    table, probs = photos(3000, seed=5)
    table.to_csv(folder / "data/till/test.csv", index=False)
    np.save(folder / "data/till/test_probs.npy", probs)
    validation_calibration(folder / "models/age_model.calibration.json")
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages/segments.py")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return folder


def test_the_stage_measures_every_scenario(stage_run: Path) -> None:
    metrics = json.loads((stage_run / "metrics/segments/details.json").read_text())
    assert list(metrics) == ["groups", "validation_shares", *CONFIG.simulation.scenarios]
    for name in CONFIG.simulation.scenarios:
        figures = metrics[name]
        assert set(figures["share_mae"]) == {ESTIMATE, SOFTMAX, CORRECTED}
        assert set(figures["rate_mae_difference"]) == {"estimate_minus_corrected", "low", "high"}
    assert metrics["null_effect"]["lifts_within_interval_of_1"] >= 0.9
    headline = json.loads((stage_run / "metrics/segments.json").read_text())  # what dvc metrics show lists
    assert list(headline) == list(CONFIG.simulation.scenarios)
    age = headline["age_dependent"]
    assert (age["rate_raw"], age["rate_corrected"]) == (
        metrics["age_dependent"]["rate_mae"][ESTIMATE],
        metrics["age_dependent"]["rate_mae"][CORRECTED],
    )
    assert (
        headline["null_effect"]["lifts_in_interval"] == metrics["null_effect"]["lifts_within_interval_of_1"]
    )
    shares = pd.read_csv(stage_run / "metrics/segments/group_shares.csv")
    assert list(shares.columns) == ["group", "scenario", "true", "raw", "corrected"]
    assert len(shares) == len(GROUPS) * len(CONFIG.simulation.scenarios)
    assert sorted(p.name for p in (stage_run / "metrics/segments/simulated").iterdir()) == sorted(FILES)
    assert "This is a simulation" in (stage_run / "metrics/segments/simulated/segments.html").read_text()


def test_the_command_runs_on_the_stages_simulated_month(stage_run: Path, tmp_path: Path) -> None:
    demo = stage_run / "data/segments"
    calibration = stage_run / "models/age_model.calibration.json"
    args = [
        str(demo / "receipts.csv"),
        "--estimates",
        str(demo / "estimates.jsonl"),
        "--calibration",
        str(calibration),
    ]
    assert run_segments(tmp_path, *args, "--output", str(tmp_path / "out")) == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["sales"] == CONFIG.simulation.log_sales and summary["categories"] == len(
        CONFIG.simulation.categories
    )
    assert summary["customers"] < summary["sales"] / 5  # the test photos are behind many sales


def test_the_page_shows_its_tables_and_charts_and_fetches_nothing(stage_run: Path, tmp_path: Path) -> None:
    report = open_static_page(stage_run / "metrics/segments/simulated/segments.html", tables=4, images=2)
    assert_works_offline(report)


def test_a_group_nobody_is_estimated_in_is_still_corrected(tmp_path: Path) -> None:
    """No sale estimated under 18, yet the model puts teenagers in 18-24: the correction finds some."""
    receipts, true_age, _ = _known_month(5_000, np.random.default_rng(2))
    sales = receipts.sales.assign(estimate=np.maximum(receipts.sales["estimate"], 21.0))
    calibration = validation_calibration(tmp_path / "calibration.json")
    found = segment(
        Receipts(sales, receipts.sale, receipts.category, receipts.categories),
        GROUPS,
        read_confusion(calibration, GROUPS),
        QUICK,
        true_age=true_age,
    )
    groups = found.groups.set_index("group")
    assert groups.loc["under 18", "sales"] == 0 and groups.loc["under 18", "share_corrected"] > 0
    assert np.isfinite(found.point.rates[CORRECTED]).all()
    assert groups.loc["under 18", "status"] == "too few sales"


def test_groups_too_few_are_marked_on_the_page(tmp_path: Path) -> None:
    receipts, true_age, _ = _known_month(2_000, np.random.default_rng(4))
    calibration = validation_calibration(tmp_path / "calibration.json")
    found = segment(
        receipts, GROUPS, read_confusion(calibration, GROUPS), QUICK, true_age=true_age, simulation=True
    )
    assert "under 18" in found.summary["too_few_sales"]
    write_segments(found, tmp_path / "out")
    html = (tmp_path / "out/segments.html").read_text()
    assert "Too few sales (under 200, estimated or corrected) in under 18" in html
    assert_works_offline(open_static_page(tmp_path / "out/segments.html", tables=4, images=2))
