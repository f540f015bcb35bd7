"""Each param invalidates only the stages that read it: derived from ``dvc.yaml`` and held against the
table in ``docs/params.md``, and the policy, evaluation and service params never retrain."""

from __future__ import annotations

import re

from tests.support.dvc_params import ROOT, param_stages, retraining_stages, table


def _documented() -> list[tuple[str, str, str]]:
    rows = []
    for line in (ROOT / "docs/params.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_docs_table_is_what_dvc_yaml_says() -> None:
    assert _documented() == table(), "docs/params.md is stale: python -m tests.support.dvc_params"


def test_every_key_is_in_the_docs_once() -> None:
    documented = [k for keys, _, _ in _documented() for k in re.findall(r"`([^`]+)`", keys)]
    assert sorted(documented) == sorted(param_stages())


def test_policy_evaluate_and_serve_never_retrain() -> None:
    retrain = retraining_stages()
    for key, stages in param_stages().items():
        if key.split(".")[0] in ("policy", "evaluate", "serve"):
            assert not set(stages) & retrain, f"{key} reruns {stages}: a policy change must not retrain"


def test_the_derivation_sees_the_pipeline() -> None:
    """The check can fail: train reads the features, which read the backbone and the faces."""
    assert {"features", "convert", "faces", "split", "validate"} <= retraining_stages()
    assert param_stages()["train.lr"] == ["train"]
