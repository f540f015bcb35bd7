"""The docs' example outputs and results are the model's and the metrics': ``scripts/update_docs.py``
writes them, and ``--check`` reports any block that says something else."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agecheck.cli_io import FACE_COLUMNS
from tests.support import synthetic as syn
from tests.support.repo_copy import ROOT, run

MODEL = "models/age_model.keras"
SCRIPT = ROOT / "scripts" / "update_docs.py"
DOCS = ("README.md", "docs/serving.md", "docs/model_card.md")
METRICS = ("metrics/metrics.json", "metrics/evaluate/details.json", "metrics/evaluate/predictions.csv")
PHOTO = "photos/frame.jpg"  # in the temporary checkout, typed from its root as in the README


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ud = _load_script()


def _missing(reason: str) -> None:
    """Skip here; in CI (``CI=true``) the released model and the photos must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


# --- the real docs, the released model ----------------------------------------------------------


@pytest.mark.e2e  # agecheck predict as a process, and the model in-process: about 15 s
def test_the_docs_show_what_the_model_and_metrics_give() -> None:
    if not (ROOT / MODEL).is_file():  # a fresh clone: the release is in the repository's remote
        pulled = run(ROOT, "dvc", "pull", MODEL, check=False)
        if not (ROOT / MODEL).is_file():
            _missing(f"no {MODEL} and dvc pull {MODEL} failed: {pulled.stderr.strip()[-300:]}")
    if not (ROOT / ud.PHOTO).is_file():
        _missing(f"no shared photo {ud.PHOTO} (the datasets at ../shared/datasets)")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


# --- the generator and the checker, on a copy with a tiny model ---------------------------------


def _checkout(folder: Path, photo_bytes: bytes | None = None) -> Path:
    """A checkout as the script sees it: the docs (the README's quickstart on PHOTO), the metrics,
    the params and the photo."""
    for name in (*DOCS, *METRICS, "params.yaml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, folder / name)
    readme = folder / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace(ud.PHOTO, PHOTO), encoding="utf-8")
    (folder / PHOTO).parent.mkdir(parents=True, exist_ok=True)
    (folder / PHOTO).write_bytes(photo_bytes or syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    return folder


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, dex_model_path: Path) -> tuple[Path, dict]:
    """A checkout whose docs the script rewrote with the tiny model, and the blocks it wrote (running
    the model costs seconds: once for the module)."""
    root = _checkout(tmp_path_factory.mktemp("checkout"))
    made = []
    with pytest.MonkeyPatch.context() as patch:  # keep what main() generated, to check against it
        patch.setattr(ud, "generate", lambda *args, real=ud.generate: made.append(real(*args)) or made[-1])
        assert ud.main(["--root", str(root), "--model", str(dex_model_path), "--photo", PHOTO]) == 0
    return root, made[0]


def _copy(root: Path, folder: Path) -> Path:
    shutil.copytree(root, folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_written_docs_hold_the_model_outputs(generated: tuple[Path, dict]) -> None:
    root, blocks = generated
    assert ud.stale(root, blocks) == {}  # written, then checked: nothing to change
    readme = (root / "README.md").read_text(encoding="utf-8")
    predict = re.search(r"quickstart-predict:begin.*?-->\n(.*?)<!-- quickstart-predict:end", readme, re.S)
    assert predict is not None
    lines = predict[1].strip().splitlines()
    assert lines[0].strip() == "1 faces in 1 of 1 photos"
    assert lines[1].strip().split(",") == list(FACE_COLUMNS)
    row = lines[2].strip().split(",")
    assert row[0] == PHOTO and row[-1] == "ok" and 0 <= float(row[7]) <= 100
    assert f'$ curl -s --data-binary @{PHOTO} -H "Content-Type: image/jpeg" http://' in readme
    assert '"milliseconds":' in readme and "varies" in readme
    serving = (root / "docs/serving.md").read_text(encoding="utf-8")
    assert f"@{PHOTO}" in serving and f'"age": {row[7]}' in serving
    # the rest of each file is left alone
    for name in DOCS:
        outside = ud.BLOCK.sub("", (root / name).read_text(encoding="utf-8"))
        original = ud.BLOCK.sub("", (ROOT / name).read_text(encoding="utf-8"))
        assert outside == (original.replace(ud.PHOTO, PHOTO) if name == "README.md" else original)


@pytest.mark.parametrize(
    ("name", "find", "change"),
    [
        ("README.md", r"(?<=,)\d+\.\d(?=,\d+\.\d,\d+\.\d,\d+\.\d+,softmax)", 5.0),  # the age in the CSV row
        ("README.md", r'(?<="age_high":)\d+\.\d', -2.0),
        ("docs/serving.md", r'(?<="age": )\d+\.\d', 1.5),
        ("docs/model_card.md", r"(?<=\| all \| \*\*)\d+\.\d\d", 0.01),  # a metric: exactly
    ],
)
def test_an_altered_number_is_reported(
    generated: tuple[Path, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    find: str,
    change: float,
) -> None:
    root, blocks = generated
    copy = _copy(root, tmp_path / "copy")
    text = (copy / name).read_text(encoding="utf-8")
    match = re.search(find, text)
    assert match is not None
    decimals = len(match[0].partition(".")[2])
    altered = f"{float(match[0]) + change:.{decimals}f}"
    (copy / name).write_text(text[: match.start()] + altered + text[match.end() :], encoding="utf-8")
    assert list(ud.stale(copy, blocks)) == [Path(name)]
    # the command line says so, with the diff (the blocks generated above, not the model run again)
    monkeypatch.setattr(ud, "generate", lambda *_: blocks)
    assert ud.main(["--check", "--root", str(copy)]) == 1
    out, err = capsys.readouterr()
    removed = [line for line in out.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert f"+++ {name} (generated)" in out
    assert any(altered in line for line in removed) and any(match[0] in line for line in added)
    assert "run python scripts/update_docs.py" in err
    # and writing puts the model's number back
    assert ud.main(["--root", str(copy)]) == 0
    assert (copy / name).read_text(encoding="utf-8") == (root / name).read_text(encoding="utf-8")


def test_rounding_and_the_time_taken_are_not_stale(generated: tuple[Path, dict], tmp_path: Path) -> None:
    """A last digit one unit off (a float rounded on another CPU) and another ``milliseconds`` pass;
    two units off does not, and a metric never has a tolerance."""
    root, blocks = generated
    copy = _copy(root, tmp_path / "copy")
    readme = copy / "README.md"
    text = readme.read_text(encoding="utf-8")
    millis = re.search(r'(?<="milliseconds":)[\d.]+', text)
    sd = re.search(r'(?<="age_sd":)\d+\.\d\d', text)
    assert millis is not None and sd is not None
    one_off = f"{float(sd[0]) + 0.01:.2f}"
    edited = text[: sd.start()] + one_off + text[sd.end() : millis.start()] + "9999.9" + text[millis.end() :]
    readme.write_text(edited, encoding="utf-8")
    assert ud.stale(copy, blocks) == {}
    readme.write_text(edited.replace(f'"age_sd":{one_off}', f'"age_sd":{float(sd[0]) + 0.02:.2f}'))
    assert list(ud.stale(copy, blocks)) == [Path("README.md")]
    assert not ud.same("| 0-12 | 359 | 2.53 |", "| 0-12 | 359 | 2.54 |", tolerant=False)
    assert not ud.same("1 faces in 1 of 1 photos", "2 faces in 1 of 1 photos", tolerant=True)
    assert not ud.same("a,31.3,ok", "a,31.3,ask", tolerant=True)


def test_a_missing_block_is_an_error(generated: tuple[Path, dict], tmp_path: Path) -> None:
    root, blocks = generated
    copy = _copy(root, tmp_path / "copy")
    _edit(copy / "docs/model_card.md", "<!-- card-failures:end -->", "")
    with pytest.raises(ud.DocsError, match="0 blocks card-failures"):
        ud.stale(copy, blocks)


def test_the_readme_must_show_the_command_it_shows_the_output_of(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    _edit(root / "README.md", f"    agecheck predict {PHOTO}\n", "    agecheck predict other.jpg\n")
    with pytest.raises(ud.DocsError, match=f"does not show `agecheck predict {PHOTO}`"):
        ud.model_blocks(root, PHOTO, root / "model.keras", root / "params.yaml")


def test_no_model_or_no_photo_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _checkout(tmp_path)
    assert ud.main(["--check", "--root", str(root), "--photo", PHOTO]) == 2
    assert capsys.readouterr().err.strip().endswith("run dvc pull models/age_model.keras")
    (root / MODEL).parent.mkdir()
    (root / MODEL).write_bytes(b"")
    assert ud.main(["--check", "--root", str(root), "--photo", "photos/none.jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no photo at photos/none.jpg") and "\n" not in err


def test_the_model_card_follows_the_metrics(generated: tuple[Path, dict]) -> None:
    """The failure examples and tables are the metrics files' numbers, not hand-written ones."""
    root, _ = generated
    card = (root / "docs/model_card.md").read_text(encoding="utf-8")
    details = ud._read_json(root / "metrics/evaluate/details.json")
    c25 = details["challenge25"]
    assert f"**{details['mae']:.2f}** (RMSE {details['rmse']:.2f}" in card
    assert f"({c25['teens_passed']} of {c25['teens']};" in card
    with (root / "metrics/evaluate/predictions.csv").open(encoding="utf-8") as file:
        header, *rows = [line.strip().split(",") for line in file]
    age, predicted = header.index("age"), header.index("predicted")
    worst = max((r for r in rows if int(r[age]) < 18), key=lambda r: float(r[predicted]) - int(r[age]))
    assert f"a {worst[age]}-year-old at {float(worst[predicted]):.1f}" in " ".join(card.split())
