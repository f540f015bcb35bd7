"""Stage convert: build the pretrained backbone named in params (converting weights) and save it."""

from __future__ import annotations

from pathlib import Path

from agecheck.backbones.registry import build_backbone
from agecheck.errors import exit_on_error
from agecheck.params import load_params, section

OUT = Path("models/backbone.keras")


@exit_on_error
def main() -> None:
    params = section(load_params(), "model")
    backbone = build_backbone(
        params["backbone"], bool(params.get("pretrained", True)), str(params.get("weights_path") or "")
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    backbone.save(OUT)
    print(f"convert: {backbone.name} ({backbone.count_params():,} weights) -> {OUT}")


if __name__ == "__main__":
    main()
