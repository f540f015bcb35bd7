"""Stage convert@MEMBER: build a member's pretrained backbone (converting its weights) and save it."""

from __future__ import annotations

from agecheck.config import load_params
from agecheck.errors import exit_on_error
from agecheck.model.backbones.registry import build_backbone
from agecheck.model.saving import save_keras
from agecheck.training.members import MemberPaths, member_argument


@exit_on_error
def main(name: str) -> None:
    member, paths = load_params().member(name), MemberPaths(name)
    backbone = build_backbone(member.backbone, member.pretrained, member.weights_path)
    save_keras(backbone, paths.backbone)
    print(f"convert {name}: {backbone.name} ({backbone.count_params():,} weights) -> {paths.backbone}")


if __name__ == "__main__":
    main(member_argument(__doc__))
