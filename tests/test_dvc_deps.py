"""Every stage of ``dvc.yaml`` depends on all the project code it runs, so ``dvc status`` never calls
a stage up to date after a change to code it imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


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


def _script(stage: dict) -> Path:
    stage = stage.get("do", stage)
    return ROOT / stage["cmd"].split()[1]


def _deps(stage: dict) -> list[str]:
    return [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("do", stage)["deps"]]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_the_code_it_imports(name: str) -> None:
    stage = STAGES[name]
    deps = [(ROOT / d).resolve() for d in _deps(stage)]
    code = _code_of(_script(stage))
    assert code, f"{name}: found no project code; is the test reading the right script?"
    uncovered = sorted(
        str(f.relative_to(ROOT))
        for f in code
        if not _is_trivial(f) and not any(f == d or d in f.parents for d in deps)
    )
    assert not uncovered, f"stage {name} runs code its deps in dvc.yaml do not cover: {uncovered}"
    assert _script(stage).resolve() in deps, f"stage {name} does not depend on its own script"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_used(name: str) -> None:
    """No stage depends on project code it never runs (a change there would rerun it for nothing)."""
    stage = STAGES[name]
    code = _code_of(_script(stage))
    unused = [
        d
        for d in _deps(stage)
        if d.startswith("agecheck/") and not any(f == ROOT / d or (ROOT / d) in f.parents for f in code)
    ]
    assert not unused, f"stage {name} depends on project code it does not import: {unused}"


def test_a_missing_dep_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a script importing agecheck.till is not covered by agecheck/data."""
    script = tmp_path / "stage.py"
    script.write_text("from agecheck.data import images\n\ndef f():\n    import agecheck.till.pipeline\n")
    code = {str(f.relative_to(ROOT)) for f in _code_of(script)}
    assert {"agecheck/data/images.py", "agecheck/till/pipeline.py", "agecheck/model/age_model.py"} <= code
