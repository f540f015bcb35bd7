"""Where each member of the ensemble keeps its files (stages convert, features, train and combine)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MemberPaths:
    """One member's converted backbone, cached activations, trained model, checkpoints and plots."""

    name: str

    @property
    def folder(self) -> Path:
        return Path("models/members") / self.name

    @property
    def backbone(self) -> Path:
        return self.folder / "backbone.keras"

    @property
    def model(self) -> Path:
        return self.folder / "age_model.keras"

    @property
    def checkpoints(self) -> Path:
        """The state after each epoch, so that a killed run resumes (removed once the model is saved)."""
        return self.folder / "train_checkpoint"

    @property
    def features(self) -> Path:
        return Path("data/features") / self.name

    @property
    def pooled(self) -> Path:
        """The trained member's pooled features of the train and val photos (the under-age heads'
        inputs), mirror-averaged as the saved model averages them."""
        return Path("data/pooled") / self.name

    @property
    def live(self) -> Path:
        """DVCLive's folder: the member's training curves and summary."""
        return Path("metrics/train") / self.name


def member_argument(description: str | None) -> str:
    """The member a per-member stage runs for (``python stages/X.py MEMBER``): its one argument, with a
    usage line when it is missing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("member", help="a member named under model.members in params.yaml")
    return parser.parse_args().member
