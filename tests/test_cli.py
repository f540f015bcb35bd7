"""``agecheck predict`` / ``agecheck evaluate`` in-process, with a tiny model and generated photos."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from agecheck import cli, cli_io
from agecheck.data.images import read_photo, square_resize
from agecheck.model.age_model import AgeModel
from tests.support import synthetic as syn
from tests.support.params import PARAMS


def _ages(model_path: Path, files: list[Path]) -> np.ndarray:
    """The model's ages for photo files taken whole (centre-cropped), as in training."""
    model = AgeModel.load(model_path)
    return model.predict(
        np.stack([square_resize(read_photo(f, PARAMS.validate_), model.input_size) for f in files])
    )


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """3 photos (one in a subfolder), a corrupt .jpg and a text file to skip."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(syn.jpeg_bytes(syn.face_like(64, 64, seed=1)))
    (folder / "b.png").write_bytes(syn.png_bytes(syn.face_like(80, 48, seed=2)))
    (folder / "sub" / "c.jpg").write_bytes(syn.jpeg_bytes(syn.face_like(48, 64, seed=3)))
    (folder / "broken.jpg").write_bytes(b"not a photo at all")
    (folder / "notes.txt").write_text("ignore me")
    return folder


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_predict_prints_table(
    regression_model_path: Path, photo_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["predict", str(photo_folder), "--no-detect", "--model", str(regression_model_path)]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [Path(r["file"]).name for r in rows] == ["a.jpg", "b.png", "broken.jpg", "c.jpg"]
    ages = {Path(r["file"]).name: r["age"] for r in rows}
    assert ages["broken.jpg"] == ""
    assert all(
        10 <= float(ages[n]) <= 70 and len(ages[n].split(".")[1]) == 1 for n in ("a.jpg", "b.png", "c.jpg")
    )
    assert "broken.jpg: not_an_image" in err


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_predict_output_files(
    regression_model_path: Path,
    photo_folder: Path,
    tmp_path: Path,
    suffix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_io, "CHUNK", 2)  # several chunks and batches on 4 files
    output = tmp_path / f"ages{suffix}"
    model = ["--model", str(regression_model_path)]
    argv = ["predict", str(photo_folder), "--no-detect", *model, "--batch-size", "1", "--output", str(output)]
    assert cli.main(argv) == 0
    if suffix == ".csv":
        rows = list(csv.DictReader(output.open(encoding="utf-8")))
    else:
        rows = json.loads(output.read_text(encoding="utf-8"))
    assert all({"file", "age", "error"} <= set(r) for r in rows)
    by_name = {Path(r["file"]).name: r for r in rows}
    assert sorted(by_name) == ["a.jpg", "b.png", "broken.jpg", "c.jpg"]
    assert by_name["broken.jpg"]["error"] == "not_an_image" and by_name["broken.jpg"]["age"] in ("", None)
    assert sum(bool(r["age"]) and not r["error"] for r in rows) == 3


def test_predict_ages_match_predictor(
    regression_model_path: Path, photo_folder: Path, tmp_path: Path
) -> None:
    output = tmp_path / "ages.json"
    argv = ["predict", str(photo_folder / "a.jpg"), "--no-detect", "--model", str(regression_model_path)]
    cli.main([*argv, "--output", str(output)])
    expected = _ages(regression_model_path, [photo_folder / "a.jpg"])[0]
    assert json.loads(output.read_text())[0]["age"] == pytest.approx(expected, abs=0.051)


def test_predict_nothing_readable_exits_1(
    regression_model_path: Path, photo_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            [
                "predict",
                str(photo_folder / "broken.jpg"),
                "--no-detect",
                "--model",
                str(regression_model_path),
            ]
        )
        == 1
    )
    assert "not_an_image" in capsys.readouterr().err


def test_predict_missing_model(
    tmp_path: Path, photo_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(photo_folder), "--model", str(tmp_path / "nope.keras")])
    assert exit_info.value.code == 2
    err = _error_line(capsys)
    assert err.startswith("error: no trained model at") and "nope.keras" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "{folder}", "--output", "{tmp}/x.txt"], "--output must end with .csv or .json"),
        (["evaluate", "{folder}", "--output", "{tmp}/x.csv"], "--output must end with .json"),
        (["predict", "{tmp}/absent"], "no such photo or folder"),
        (["predict", "{tmp}/empty"], "no image files"),
        (["evaluate", "{folder}"], "must contain labels.csv and final_files/"),
    ],
)
def test_user_errors(
    argv: list[str], message: str, photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([a.format(folder=photo_folder, tmp=tmp_path) for a in argv])
    assert exit_info.value.code == 2
    err = _error_line(capsys)
    assert err.startswith("error: ") and message in err


@pytest.fixture
def labelled_folder(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A source folder: 3 usable photos, a bad age, a missing file and an unreadable photo."""
    usable = {"p1.jpg": 30, "p2.jpg": 8, "p3.png": 67}
    photos = {name: syn.jpeg_bytes(syn.face_like(64, 64, seed=i)) for i, name in enumerate(usable)}
    photos |= {"bad_age.jpg": syn.jpeg_bytes(syn.face_like(seed=9)), "broken.jpg": b"\xff\xd8 truncated"}
    rows = [f"{name},{age},female" for name, age in usable.items()]
    rows += ["bad_age.jpg,-3,male", "missing.jpg,40,male", "broken.jpg,50,male"]
    return syn.write_source(tmp_path / "mysource", photos, rows), usable


def test_evaluate(
    regression_model_path: Path,
    labelled_folder: tuple[Path, dict[str, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, usable = labelled_folder
    output, plots = tmp_path / "out" / "metrics.json", tmp_path / "plots"
    argv = ["evaluate", str(folder), "--model", str(regression_model_path), "--output", str(output)]
    assert cli.main([*argv, "--plots", str(plots)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 label rows: age_out_of_range 1" in err
    assert "skipped 2 photos" in err and "file_missing 1" in err and "not_an_image 1" in err
    assert "MAE" in err and "mysource" in err

    predicted = _ages(regression_model_path, [folder / "final_files" / name for name in usable])
    expected_mae = float(np.mean(np.abs(predicted - np.array(list(usable.values())))))
    metrics = json.loads(output.read_text())
    assert metrics["count"] == 3
    assert metrics["mae"] == pytest.approx(expected_mae, abs=0.0011)
    assert list(metrics["mae_by_source"]) == ["mysource"] and metrics["count_by_source"] == {"mysource": 3}
    assert metrics["count_by_age_band"] == {"0-12": 1, "25-34": 1, "65+": 1}

    table = (plots / "predictions.csv").read_text().splitlines()
    assert table[0] == "id,source,gender,race,age,predicted,error" and len(table) == 4
    assert metrics["challenge25"]["minors"] == 1 and metrics["challenge25"]["adults"] == 2
    assert metrics["by_gender"]["female"]["count"] == 3 and "by_race" not in metrics
    assert (
        (plots / "challenge25_rates.csv").read_text().startswith("threshold,minor_pass_rate,adult_check_rate")
    )
    for name in ("predicted_vs_true.png", "mae_by_age_band.png", "error_distribution.png", "by_group.png"):
        assert (plots / name).stat().st_size > 1000


def test_evaluate_prints_json(
    regression_model_path: Path,
    labelled_folder: tuple[Path, dict[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = labelled_folder
    assert cli.main(["evaluate", str(folder), "--model", str(regression_model_path)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 3 and set(metrics["mae_by_source"]) == {"mysource"}
