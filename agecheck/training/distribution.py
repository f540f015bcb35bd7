"""Where training runs: this machine's devices, or the machines that ``TF_CONFIG`` names.

TensorFlow's multi-worker engine (``MultiWorkerMirroredStrategy``) reads the cluster from the
environment variable ``TF_CONFIG``: the same list of ``host:port`` workers on every machine, and
each machine's own ``task`` index. Every worker runs the same command on its own copy of the data
and ends with the same weights; worker 0 (or the ``chief`` task, where one is named) is the chief.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tensorflow as tf

from agecheck.errors import AgecheckError, one_line

TASK_TYPES = ("chief", "worker")


@dataclass(frozen=True)
class Cluster:
    """The workers that train together (1 without ``TF_CONFIG``) and this process's rank among them."""

    workers: int = 1
    rank: int = 0

    @property
    def is_chief(self) -> bool:
        return self.rank == 0


def read_cluster(environ: Mapping[str, str] = os.environ) -> Cluster:
    """The cluster in ``TF_CONFIG``, checked so that a typo stops here with the reason rather than
    leaving the other workers waiting for this one."""
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        return Cluster()
    where = "TF_CONFIG (see docs/scaling.md)"
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise AgecheckError(f"{where} is not JSON: {error.msg} at character {error.pos}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise AgecheckError(f'{where} has no "cluster": {{"worker": ["host:port", ...]}}')
    unknown = sorted(set(cluster) - set(TASK_TYPES))
    if unknown:
        raise AgecheckError(f"{where}: cluster has {unknown}; training uses only 'chief' and 'worker'")
    hosts = {kind: cluster.get(kind, []) for kind in TASK_TYPES}
    for kind, addresses in hosts.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise AgecheckError(f'{where}: cluster "{kind}" must be a list of "host:port" strings')
    if len(hosts["chief"]) > 1:
        raise AgecheckError(f"{where}: at most one chief, got {len(hosts['chief'])}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in TASK_TYPES:
        raise AgecheckError(f'{where} has no "task": {{"type": "worker", "index": <this worker>}}')
    index, kind = task.get("index", 0), task["type"]
    if not isinstance(index, int) or not 0 <= index < len(hosts[kind]):
        raise AgecheckError(
            f"{where}: task index {index!r} is not one of the {len(hosts[kind])} {kind} addresses"
        )
    rank = index if kind == "chief" else len(hosts["chief"]) + index
    return Cluster(workers=len(hosts["chief"]) + len(hosts["worker"]), rank=rank)


def training_strategy(cluster: Cluster, full: bool) -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` for several workers, ``MirroredStrategy`` for full fine-tuning
    on a machine with several GPUs, else TensorFlow's default (one device).

    Call it first: the multi-worker strategy must start before TensorFlow runs anything else.
    """
    if cluster.workers > 1:
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.OpError as err:  # e.g. this worker's port is taken
            raise AgecheckError(
                f"cannot start this TensorFlow worker ({one_line(err.message, 200)}): "
                "check TF_CONFIG's address"
            ) from None
    if full and len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class StallWatchdog:
    """Ends this process when training makes no progress for ``seconds``.

    Under the multi-worker strategy a worker whose process dies breaks its connections and the
    others' all-reduce fails at once; a machine that vanishes without closing them (power loss,
    a network split) could leave the others waiting in the all-reduce for good. Then the
    survivors stop with a message instead and can be started again (they resume from their
    checkpoints). Call :meth:`beat` after every step.
    """

    def __init__(self, seconds: float, on_stall: Callable[[], None] | None = None) -> None:
        self.seconds, self.on_stall = seconds, on_stall or (lambda: os._exit(2))
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stall-watchdog")

    def __enter__(self) -> StallWatchdog:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        self._last = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(self.seconds / 4, 10.0)):
            if time.monotonic() - self._last > self.seconds:
                print(
                    f"error: no training step finished for {self.seconds:.0f} s: a worker has probably "
                    "stopped (the others wait for it). Start the same command on every worker again: "
                    "training resumes after the last saved epoch",
                    file=sys.stderr,
                    flush=True,
                )
                self.on_stall()
                return
