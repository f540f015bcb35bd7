"""``agecheck export``: the model as one LiteRT or ONNX file: the Keras model's ages, usable by predict."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from agecheck import cli
from agecheck.errors import AgecheckError
from agecheck.export.formats import export_model
from agecheck.model.age_model import AgeModel
from tests.support import synthetic as syn


def _crops(count: int = 9) -> np.ndarray:
    return np.stack([np.asarray(syn.face_like(32, 32, seed=i)) for i in range(count)])


@pytest.mark.parametrize(
    ("fmt", "quantize", "tolerance"),
    [("tflite", "none", 1e-3), ("tflite", "float16", 0.2), ("onnx", "none", 1e-3)],
)
def test_exported_model_gives_the_keras_ages(
    dex_model_path: Path, tmp_path: Path, fmt: str, quantize: str, tolerance: float
) -> None:
    keras_model = AgeModel.load(dex_model_path)
    info = export_model(keras_model, tmp_path / f"dex.{fmt}", fmt, quantize)  # type: ignore[arg-type]
    assert info["format"] == fmt and info["input_size"] == keras_model.input_size
    lite = AgeModel.load(tmp_path / f"dex.{fmt}")
    assert lite.outputs == keras_model.outputs and lite.has_distribution
    crops = _crops()
    assert np.abs(lite.predict(crops, batch_size=4) - keras_model.predict(crops)).max() <= tolerance
    lite_estimates = lite.estimate(crops[:3], 0.8)
    for ours, theirs in zip(lite_estimates, keras_model.estimate(crops[:3], 0.8), strict=True):
        assert ours.low == pytest.approx(theirs.low, abs=tolerance + 0.05)
        assert ours.interval == theirs.interval == "softmax"


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_predict_runs_on_the_exported_model(
    dex_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    output = tmp_path / "till" / f"age.{fmt}"
    assert cli.main(["export", "--model", str(dex_model_path), "--format", fmt, "--output", str(output)]) == 0
    assert output.is_file() and (output.parent / f"age.{fmt}.json").is_file()
    assert (output.parent / "face_detection_full_range_sparse.tflite").is_file()  # the detector beside it
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    capsys.readouterr()
    assert cli.main(["predict", str(frame), "--model", str(output)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and 0 <= float(rows[0]["age"]) <= 100
    keras_rows = tmp_path / "keras.json"
    cli.main(["predict", str(frame), "--model", str(dex_model_path), "--output", str(keras_rows)])
    assert float(rows[0]["age"]) == pytest.approx(json.loads(keras_rows.read_text())[0]["age"], abs=0.051)


def test_the_default_export_leaves_the_keras_model_alone(
    dex_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exported beside nothing DVC tracks: ``export/``, with a ``.tflite.json`` sidecar."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("age_model.keras", "age_model.json"):
        (models / name).write_bytes((dex_model_path.parent / ("dex" + Path(name).suffix)).read_bytes())
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "--model", "models/age_model.keras"]) == 0
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
    exported = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert exported == [
        "age_model.tflite",
        "age_model.tflite.json",
        "face_detection_full_range_sparse.tflite",
    ]


def test_bad_exported_files_are_one_line_errors(tmp_path: Path, dex_model_path: Path) -> None:
    with pytest.raises(
        AgecheckError,
        match=r"no trained model at .*missing.tflite \(with missing.tflite.json\); run `agecheck export`",
    ):
        AgeModel.load(tmp_path / "missing.tflite")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    (tmp_path / "broken.tflite.json").write_text(json.dumps({"input_size": 32}))
    with pytest.raises(AgecheckError, match="cannot load LiteRT model"):
        AgeModel.load(broken)
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    (tmp_path / "broken.onnx.json").write_text(json.dumps({"input_size": 32}))
    with pytest.raises(AgecheckError, match="cannot load ONNX model"):
        AgeModel.load(tmp_path / "broken.onnx")
    with pytest.raises(AgecheckError, match="a tflite file must end in .tflite"):
        export_model(AgeModel.load(dex_model_path), tmp_path / "model.bin")
    exported = tmp_path / "ok.tflite"
    export_model(AgeModel.load(dex_model_path), exported)
    with pytest.raises(AgecheckError, match=r"export takes the Keras model \(.keras\), not an exported one"):
        export_model(AgeModel.load(exported), tmp_path / "again.onnx", "onnx")
    with pytest.raises(AgecheckError, match="--quantize float16 is for --format tflite only"):
        export_model(AgeModel.load(dex_model_path), tmp_path / "model.onnx", "onnx", "float16")
