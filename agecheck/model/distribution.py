"""Where training runs: this machine's devices, or the machines that ``TF_CONFIG`` names.

TensorFlow's multi-worker engine (``MultiWorkerMirroredStrategy``) reads the cluster from the
environment variable ``TF_CONFIG``: the same list of ``host:port`` workers on every machine, and
each machine's own ``task`` index. Every worker runs the same command on its own copy of the data
and ends with the same weights; worker 0 (or the ``chief`` task, where one is named) is the chief.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import tensorflow as tf

from agecheck.errors import AgecheckError

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
        return tf.distribute.MultiWorkerMirroredStrategy()
    if full and len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
