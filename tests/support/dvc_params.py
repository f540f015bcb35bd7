"""Which stages each ``params.yaml`` key invalidates, derived from ``dvc.yaml``, and whether that means
a new model.

``python -m tests.support.dvc_params`` prints the table that ``docs/params.md`` holds;
``tests/test_dvc_params.py`` checks that the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAIN = "train"


def _names(entries: list[Any]) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def _body(stage: dict[str, Any]) -> dict[str, Any]:
    return stage.get("do", stage)


def leaf_keys(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key of ``params.yaml`` a stage can list (``data.sources`` is one value: a mapping)."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "data.sources":
            yield from leaf_keys(value, f"{name}.")
        else:
            yield name


def _feeds(out: str, dep: str) -> bool:
    """Whether output ``out`` (``${...}`` templates as wildcards) is, or is inside, or holds ``dep``."""
    prefix = out.split("${")[0]
    if "${" in out:
        return dep.startswith(prefix) or prefix.startswith(dep.rstrip("/") + "/")
    return dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")


def upstream(stages: dict[str, Any], name: str) -> set[str]:
    """The stages whose outputs ``name`` reads, transitively."""
    found: set[str] = set()
    todo = [name]
    while todo:
        deps = _names(_body(stages[todo.pop()]).get("deps", []))
        for stage, body in stages.items():
            outs = _names(_body(body).get("outs", []))
            if stage not in found and any(_feeds(o, d) for o in outs for d in deps):
                found.add(stage)
                todo.append(stage)
    return found


def param_stages(
    dvc_yaml: Path = ROOT / "dvc.yaml", params: Path = ROOT / "params.yaml"
) -> dict[str, list[str]]:
    """``{key: stages that list it (or a block holding it)}`` for every key of ``params.yaml``."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    keys = list(leaf_keys(yaml.safe_load(params.read_text(encoding="utf-8"))))
    listed = {stage: _names(_body(body).get("params", [])) for stage, body in stages.items()}
    return {key: [s for s, names in listed.items() if any(_lists(n, key) for n in names)] for key in keys}


def _lists(name: str, key: str) -> bool:
    """Whether a stage listing ``name`` (``${key}`` of a foreach stage: any member) reads ``key``."""
    pattern = re.escape(name).replace(re.escape("${key}"), "[^.]+")
    return re.fullmatch(rf"{pattern}(\..+)?", key) is not None


def retraining_stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> set[str]:
    """The train stage and every stage it reads from: a param of theirs can mean a new model."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {TRAIN, *upstream(stages, TRAIN)}


def table() -> list[tuple[str, str, str]]:
    """Rows ``(keys, stages, retrains)``, the keys of a block with the same stages on one row."""
    retrain = retraining_stages()
    rows: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for key, stages in param_stages().items():
        rows.setdefault((key.split(".")[0], tuple(stages)), []).append(key)
    return [
        (
            ", ".join(f"`{k}`" for k in keys),
            ", ".join(stages) or "none (read by the CLI and service only)",
            "yes" if set(stages) & retrain else "no",
        )
        for (_, stages), keys in rows.items()
    ]


if __name__ == "__main__":
    print("| params | stages they rerun | can retrain the model |")
    print("|---|---|---|")
    for row in table():
        print("| " + " | ".join(row) + " |")
