"""Stage convert: build the pretrained backbone named in params (converting weights) and save it."""

from __future__ import annotations

from pathlib import Path

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.model.backbones.registry import build_backbone
from agecheck.model.saving import save_keras

OUT = Path("models/backbone.keras")


@exit_on_error
def main() -> None:
    params = load_params().model
    backbone = build_backbone(params.backbone, params.pretrained, params.weights_path)
    save_keras(backbone, OUT)
    print(f"convert: {backbone.name} ({backbone.count_params():,} weights) -> {OUT}")


if __name__ == "__main__":
    main()
