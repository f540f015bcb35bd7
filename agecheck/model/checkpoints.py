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
    """The state after each epoch in ``directory`` (``tf.train.CheckpointManager``, the newest one
    kept), tagged with the ``fingerprint`` of what is being trained. ``directory`` None: none."""

    def __init__(self, directory: Path | None, fingerprint: str) -> None:
        self.directory, self.fingerprint = directory, fingerprint

    def restore(self, state: tf.train.Checkpoint) -> bool:
        """Load the newest checkpoint into ``state`` if it was written for this fingerprint; drop
        a checkpoint written for other params or inputs. True when something was restored."""
        if self.directory is None or not self.directory.exists():
            return False
        tag = self.directory / FINGERPRINT
        latest = tf.train.latest_checkpoint(str(self.directory))
        if latest is None or not tag.exists() or tag.read_text().strip() != self.fingerprint:
            print(f"train: {self.directory} was written for other params or inputs: starting afresh")
            self.clear()
            return False
        state.restore(latest).assert_existing_objects_matched()
        return True

    def save(self, state: tf.train.Checkpoint) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / FINGERPRINT).write_text(self.fingerprint + "\n")
        tf.train.CheckpointManager(state, str(self.directory), max_to_keep=1).save()

    def clear(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
