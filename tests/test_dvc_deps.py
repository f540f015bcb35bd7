"""Every stage of ``dvc.yaml`` depends on exactly the project files it runs: each module it imports
(transitively, lazy imports included) and each data file that code reads, listed file by file. A
missing dep lets ``dvc status`` call a stage up to date after a change to code it runs; an extra one
reruns it for nothing (a plot edit must not retrain the model)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

#: Data files in the package that a module reads at run time (a stage running it depends on them).
DATA_READ_BY: dict[str, tuple[str, ...]] = {
    "agecheck/faces/detection.py": (
        "agecheck/faces/blazeface/face_detection_short_range.tflite",
        "agecheck/faces/blazeface/face_detection_full_range.tflite",
        "agecheck/faces/blazeface/face_detection_full_range_sparse.tflite",
    ),
}


def _module_file(name: str) -> Path | None:
    """The file of module ``agecheck.x.y`` (its ``__init__.py`` for a package), None if absent."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (lazy imports in functions included), with
    the packages that importing them runs."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "agecheck":
            modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in modules if _module_file(m) is not None}


def _code_of(script: Path) -> set[Path]:
    """Every project file that running ``script`` can execute (transitively)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(f for f in map(_module_file, _imported(path)) if f is not None)
    return seen - {script}


def _is_trivial(path: Path) -> bool:
    """A package ``__init__.py`` holding nothing but a docstring runs no logic."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
    )


def needed_files(script: Path) -> set[str]:
    """The project files (relative paths) a stage running ``script`` must list as deps."""
    code = {str(f.relative_to(ROOT)) for f in _code_of(script) if not _is_trivial(f)}
    return code | {data for module in code for data in DATA_READ_BY.get(module, ())}


def _script(stage: dict) -> Path:
    stage = stage.get("do", stage)
    return ROOT / stage["cmd"].split()[1]


def _deps(stage: dict) -> list[str]:
    return [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("do", stage)["deps"]]


def _package_deps(stage: dict) -> set[str]:
    return {d for d in _deps(stage) if d.startswith("agecheck/")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_the_files_it_runs(name: str) -> None:
    stage = STAGES[name]
    declared, needed = _package_deps(stage), needed_files(_script(stage))
    assert needed, f"{name}: found no project code; is the test reading the right script?"
    folders = sorted(d for d in declared if (ROOT / d).is_dir())
    assert not folders, f"stage {name} lists whole folders as deps (list the files it runs): {folders}"
    missing, extra = sorted(needed - declared), sorted(declared - needed)
    assert not missing, f"stage {name} runs project files its deps in dvc.yaml do not list: {missing}"
    assert not extra, f"stage {name} lists project files it never runs (they rerun it for nothing): {extra}"
    assert str(_script(stage).relative_to(ROOT)) in _deps(stage), f"stage {name} misses its own script"


def test_a_plot_edit_does_not_retrain() -> None:
    """The example of the structure issue: the figures belong to evaluate, never to train."""
    assert "agecheck/evaluation/plots.py" not in _package_deps(STAGES["train"])
    assert "agecheck/evaluation/plots.py" in _package_deps(STAGES["evaluate"])


def test_the_check_can_fail(tmp_path: Path) -> None:
    """A script importing the till pipeline lazily needs the model wrapper too; one importing only
    ``agecheck.data.images`` does not need the till."""
    script = tmp_path / "stage.py"
    script.write_text("from agecheck.data import images\n\ndef f():\n    import agecheck.till.pipeline\n")
    assert {"agecheck/data/images.py", "agecheck/till/pipeline.py", "agecheck/model/age_model.py"} <= (
        needed_files(script)
    )
    script.write_text("from agecheck.data import images\n")
    assert "agecheck/till/pipeline.py" not in needed_files(script)
