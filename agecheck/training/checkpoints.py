"""Resuming training where it stopped: the training state after every epoch, kept for the same
params and inputs only."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf

from agecheck.errors import AgecheckError, one_line

FINGERPRINT = "fingerprint.txt"
PREFIX = "epoch"


def inputs_fingerprint(settings: dict, files: Iterable[Path]) -> str:
    """A digest of the training ``settings`` and of the content of ``files`` (the inputs and the
    code that trains): a checkpoint is resumed only when none of them changed. By content, so a
    file written again with the same bytes (``dvc checkout``, ``dvc repro`` on another machine)
    still resumes; about 3 s for the 1.7 GB of inputs here."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(str(path).encode())
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 23):
                digest.update(chunk)
    return digest.hexdigest()


class EpochCheckpoints:
    """The state after each epoch in ``directory`` as ``epoch-N`` (``tf.train.CheckpointManager``;
    the last two kept, so that workers of which one died before its last save can still meet at
    the epoch before), tagged with the ``fingerprint`` of what is being trained."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory, self.fingerprint = directory, fingerprint
        self._manager: tf.train.CheckpointManager | None = None

    def epochs(self) -> list[int]:
        """The epochs saved here for this fingerprint; a checkpoint of other params or inputs is
        removed (training starts afresh)."""
        if not self.directory.exists():
            return []
        tag = self.directory / FINGERPRINT
        state = tf.train.get_checkpoint_state(str(self.directory))
        if state is None or not tag.exists() or tag.read_text().strip() != self.fingerprint:
            print(f"train: {self.directory} was written for other params or inputs: starting afresh")
            self.clear()
            return []
        return sorted(int(Path(p).name.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)

    def restore(self, state: tf.train.Checkpoint, epoch: int) -> None:
        path = self.directory / f"{PREFIX}-{epoch}"
        try:
            state.restore(str(path)).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as err:
            raise AgecheckError(
                f"cannot resume from {path} ({one_line(err, 200)}): remove {self.directory} to start afresh"
            ) from None

    def save(self, state: tf.train.Checkpoint, epoch: int) -> None:
        if self._manager is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / FINGERPRINT).write_text(self.fingerprint + "\n")
            self._manager = tf.train.CheckpointManager(
                state, str(self.directory), max_to_keep=2, checkpoint_name=PREFIX
            )
        self._manager.save(checkpoint_number=epoch)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self._manager = None
