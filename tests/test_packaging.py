"""Packaging: the till (predict and serve on an exported model) runs without TensorFlow, the wheel
carries its face detector, and an install outside the checkout has no default params or model.

The ``e2e`` tests build the wheel and install it into fresh virtual environments with pip (from the
package index or its cache: about 20 s for ``[till]``, 1-2 min and 2.4 GB for ``[pipeline]``)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from agecheck import cli, config
from agecheck.errors import AgecheckError
from agecheck.faces.detection import MODELS
from agecheck.service import app as service
from tests.support import synthetic as syn
from tests.support.local_server import free_ports

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
BLAZEFACE = ROOT / "agecheck" / "faces" / "blazeface"
#: Needed by training, export or evaluation only: none may be imported on the till's paths.
HEAVY = ["tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "scipy", "matplotlib", "dvc", "dvclive"]
ONE_FACE = "1 faces in 1 of 1 photos"


@dataclass(frozen=True)
class Exported:
    tflite: Path
    onnx: Path
    export_stderr: list[str]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without the log level or API token it may hold, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "AGECHECK_TOKEN")}
    return {**base, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(
    command: list[str | Path | int], timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, env=_env(**env)
    )


def _ages(csv_text: str) -> list[float]:
    """The ``age`` column of ``agecheck predict``'s CSV."""
    header, *rows = csv_text.splitlines()
    column = header.split(",").index("age")
    return [float(row.split(",")[column]) for row in rows]


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "frame.jpg"
    path.write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    return path


@pytest.fixture(scope="module")
def exported(dex_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The tiny DEX model as ``.tflite`` (``agecheck export`` in a child process, its stderr kept)
    and as ``.onnx``."""
    folder = tmp_path_factory.mktemp("till")
    command = [sys.executable, "-m", "agecheck.cli", "export", "--model", dex_model_path]
    done = _run([*command, "--output", folder / "age.tflite"])
    assert done.returncode == 0, done.stderr
    onnx = [
        "export",
        "--model",
        str(dex_model_path),
        "--format",
        "onnx",
        "--output",
        str(folder / "age.onnx"),
    ]
    assert cli.main(onnx) == 0
    return Exported(folder / "age.tflite", folder / "age.onnx", done.stderr.splitlines())


# --- the till without TensorFlow -----------------------------------------------------------------

#: Predict with each model, answer one request of the service, then list the heavy modules loaded.
TILL_SCRIPT = """
import json, sys
from agecheck import cli
from agecheck.config import load_params
from agecheck.service.app import build_app

heavy, photo, params, *models = sys.argv[1:]
status = [cli.main(["predict", photo, "--model", model, "--params", params]) for model in models]
from fastapi.testclient import TestClient  # after predict: it may warn on stderr

with TestClient(build_app(models[0], load_params(params))) as client, open(photo, "rb") as file:
    answer = client.post("/predict", content=file.read(), headers={"Content-Type": "image/jpeg"})
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(heavy)))
result = {"status": status, "http": answer.status_code, "faces": len(answer.json()["faces"]), "heavy": loaded}
print(json.dumps(result))
"""


def test_predict_and_serve_of_an_exported_model_import_no_tensorflow(exported: Exported, frame: Path) -> None:
    """In a child process, so that nothing this test run imported counts."""
    models = [exported.tflite, exported.onnx]
    done = _run([sys.executable, "-c", TILL_SCRIPT, json.dumps(HEAVY), frame, PARAMS, *models], timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"status": [0, 0], "http": 200, "faces": 1, "heavy": []}
    # LiteRT's "Created TensorFlow Lite XNNPACK delegate" notice is dropped: one line per predict
    assert done.stderr.splitlines()[:2] == [ONE_FACE] * 2, done.stderr


def test_tensorflow_start_up_notices_are_silenced(
    dex_model_path: Path, exported: Exported, frame: Path
) -> None:
    """``agecheck`` sets ``TF_CPP_MIN_LOG_LEVEL`` (unless the user did) and drops what TensorFlow prints
    before reading it: predict with a Keras model, and export, write only their own line."""
    command = [sys.executable, "-m", "agecheck.cli", "predict", frame, "--model", dex_model_path]
    done = _run(command)
    assert done.returncode == 0 and done.stderr.splitlines() == [ONE_FACE], done.stderr
    assert len(exported.export_stderr) == 1 and exported.export_stderr[0].startswith("export: ")
    loud = _run(command, TF_CPP_MIN_LOG_LEVEL="0")  # the user's choice wins: TensorFlow's notices show
    assert loud.returncode == 0 and len(loud.stderr.splitlines()) > 1


def test_the_face_detector_ships_in_the_package() -> None:
    names = [name for *_, name in MODELS.values()]
    assert all((BLAZEFACE / name).stat().st_size > 100_000 for name in names)
    notice = (BLAZEFACE / "NOTICE").read_text()
    assert "Apache" in notice and all(name in notice for name in names)
    assert "Apache License" in (BLAZEFACE / "LICENSE").read_text()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _reads_package_files(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    return name == "files" and isinstance(node.args[0].value, str)


def _imported_packages(folder: Path) -> set[str]:
    """Top-level modules, outside the standard library and the project, that ``folder``'s code imports
    or reads files of."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif _reads_package_files(node):  # importlib.resources.files("package")
                names.add(node.args[0].value.split(".")[0])  # type: ignore[attr-defined]
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("agecheck", "stages")}


def test_every_package_the_code_imports_is_declared() -> None:
    """Each third-party module imported by the package or a stage comes from a distribution that
    pyproject.toml names, in the base install or the pipeline extra (not only through another one)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["pipeline"]
    declared = {_canonical(re.match(r"[A-Za-z0-9._-]+", r)[0]) for r in requirements}  # type: ignore[index]
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in _imported_packages(ROOT / "agecheck") | _imported_packages(ROOT / "stages")
        if not declared & {_canonical(d) for d in distributions.get(module, [])}
    }
    assert not undeclared, (
        f"imported but not declared in pyproject.toml (module: distributions): {undeclared}"
    )


# --- outside a checkout: no defaults ---------------------------------------------------------------


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if installed from a wheel: no ``params.yaml`` and ``dvc.yaml`` beside the package."""
    monkeypatch.setattr(config, "IN_CHECKOUT", False)


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ([], "--model and --params"),
        (["--model", "m.tflite"], "--params"),
        (["--params", "p.yaml"], "--model"),
    ],
)
def test_outside_a_checkout_model_and_params_are_required(
    frame: Path, capsys: pytest.CaptureFixture[str], options: list[str], missing: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(frame), *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {missing} must be given"), err


@pytest.mark.usefixtures("installed")
def test_outside_a_checkout_the_service_factory_needs_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(service.ENV_PARAMS, raising=False)
    with pytest.raises(AgecheckError, match=f"^{service.ENV_PARAMS} must be given"):
        service.app_from_env()


# --- the wheel, installed in fresh environments (e2e) ----------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build in the checkout leaves a ``build/`` whose
    stale files would go into later wheels)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT / "agecheck", source / "agecheck", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", source])
    assert done.returncode == 0, done.stderr
    (path,) = (work / "dist").glob("agecheck-*.whl")
    return path


def _venv(folder: Path, wheel: Path, extra: str) -> Path:
    """A fresh virtual environment with ``agecheck[extra]`` from ``wheel``, installed by pip alone (no
    setup script); its ``bin/``."""
    done = _run([sys.executable, "-m", "venv", folder])
    assert done.returncode == 0, done.stderr
    pip = [folder / "bin" / "python", "-m", "pip", "install", "--quiet"]
    done = _run([*pip, f"agecheck[{extra}] @ {wheel.as_uri()}"], timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "bin"


def _timed(command: list[str | Path | int]) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    done = _run(command)
    return done, time.perf_counter() - start


def _post_photo(url: str, photo: Path, server: subprocess.Popen[bytes], timeout: float = 180) -> dict:
    """Wait for ``server`` at ``url`` to answer ``/health``, then POST ``photo``; its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert server.poll() is None, f"agecheck serve exited with status {server.returncode}"
            assert time.monotonic() < deadline, f"agecheck serve did not answer within {timeout:g} s"
            time.sleep(0.3)
    request = urllib.request.Request(
        f"{url}/predict", data=photo.read_bytes(), headers={"Content-Type": "image/jpeg"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@pytest.mark.e2e
def test_the_wheel_carries_the_face_detector(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"agecheck/faces/blazeface/{name}" for *_, name in MODELS.values()}
    assert shipped | {"agecheck/faces/blazeface/LICENSE", "agecheck/faces/blazeface/NOTICE"} <= names


@pytest.mark.e2e
def test_the_till_install_predicts_and_serves_without_tensorflow(
    wheel: Path, exported: Exported, dex_model_path: Path, frame: Path, tmp_path: Path
) -> None:
    """``pip install "agecheck[till]"``: the exported models give ages, on the command line and over
    HTTP; no TensorFlow is installed, and a Keras model or no ``--params`` is a one-line error."""
    venv = tmp_path / "till"
    agecheck = _venv(venv, wheel, "till") / "agecheck"
    no_tf = "import importlib.util as u; assert not u.find_spec('tensorflow')"
    assert _run([agecheck.with_name("python"), "-c", no_tf]).returncode == 0
    version, version_s = _timed([agecheck, "--version"])
    assert version.returncode == 0, version.stderr
    seconds = {}
    for model in (exported.tflite, exported.onnx):
        done, seconds[model.suffix] = _timed(
            [agecheck, "predict", frame, "--model", model, "--params", PARAMS]
        )
        assert done.returncode == 0 and done.stderr.splitlines() == [ONE_FACE], done.stderr
        assert [0 <= age <= 100 for age in _ages(done.stdout)] == [True]
    no_params = _run([agecheck, "predict", frame, "--model", exported.tflite])
    assert no_params.returncode == 2
    assert no_params.stderr.splitlines() == [
        "error: --params must be given: agecheck is installed outside its project checkout, "
        "so it has no default parameter file or model"
    ]
    keras = _run([agecheck, "predict", frame, "--model", dex_model_path, "--params", PARAMS])
    assert keras.returncode == 2 and keras.stderr.startswith("error: running the Keras model"), keras.stderr
    assert len(keras.stderr.splitlines()) == 1 and "agecheck[pipeline]" in keras.stderr
    (port,) = free_ports()
    serve = [agecheck, "serve", "--model", exported.tflite, "--params", PARAMS, "--workers", 2]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(c) for c in [*serve, "--port", port]], env=_env(), stdout=output, stderr=output
        )
        try:
            answer = _post_photo(f"http://127.0.0.1:{port}", frame, server)
        except AssertionError as err:
            raise AssertionError(f"{err}; its log:\n{log.read_text()[-3000:]}") from None
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert answer["status"] == "ok" and len(answer["faces"]) == 1
    size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split()[0]
    print(
        f"\n[till] venv {size}; agecheck --version {version_s:.2f} s; "
        f"predict .tflite {seconds['.tflite']:.2f} s, .onnx {seconds['.onnx']:.2f} s"
    )


@pytest.mark.e2e
def test_the_pipeline_install_runs_keras_models(
    wheel: Path, dex_model_path: Path, frame: Path, tmp_path: Path
) -> None:
    """``pip install "agecheck[pipeline]"`` (TensorFlow, no setup script): predict on the Keras model
    finds the face with the packaged detector, and export works."""
    agecheck = _venv(tmp_path / "pipeline", wheel, "pipeline") / "agecheck"
    done = _run([agecheck, "predict", frame, "--model", dex_model_path, "--params", PARAMS])
    assert done.returncode == 0 and done.stderr.splitlines() == [ONE_FACE], done.stderr
    assert [0 <= age <= 100 for age in _ages(done.stdout)] == [True]
    output = tmp_path / "export" / "age.tflite"
    done = _run([agecheck, "export", "--model", dex_model_path, "--params", PARAMS, "--output", output])
    assert done.returncode == 0 and len(done.stderr.splitlines()) == 1, done.stderr
    assert output.is_file() and (output.parent / MODELS["full_sparse"][3]).is_file()
