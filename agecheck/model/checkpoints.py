"""Resuming training where it stopped: the training state after every epoch, kept for the same
params and inputs only."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf

FINGERPRINT = "fingerprint.txt"
PREFIX = "epoch"


def inputs_fingerprint(settings: dict, files: Iterable[Path]) -> str:
    """A digest of the training ``settings`` and of ``files`` (path, size, modification time): a
    checkpoint is resumed only when neither changed. A file checked out again counts as changed,
    which costs a fresh start, never a resume on other data."""
    stats = []
    for path in sorted(files):
        stat = path.stat()
        stats.append([str(path), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"settings": settings, "files": stats}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


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
        state.restore(str(self.directory / f"{PREFIX}-{epoch}")).assert_existing_objects_matched()

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
