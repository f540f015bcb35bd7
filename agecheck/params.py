"""Reading the pipeline parameters (``params.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agecheck.errors import AgecheckError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return the whole parameter file as a dict."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
    except FileNotFoundError:
        raise AgecheckError(f"parameter file not found: {path}") from None
    except yaml.YAMLError as err:
        raise AgecheckError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise AgecheckError(f"{path} must hold a mapping of sections")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one section of the parameters, with a clear error when it is missing."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise AgecheckError(f"params.yaml has no '{name}' section")
    return value
