"""``agecheck serve`` as a child process on a free loopback port: for benchmarks and end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class LocalServer:
    url: str
    process: subprocess.Popen[bytes]


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct loopback ports free now (all held open until each is known)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def local_server(
    model: Path,
    params: Path,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | int = subprocess.DEVNULL,
    workers: int = 1,
    start_timeout: float = 180,
) -> Iterator[LocalServer]:
    """Start the service, wait until ``/health`` answers, stop it (SIGTERM) on leaving."""
    (port,) = free_ports()
    command = [sys.executable, "-m", "agecheck.cli", "serve", "--model", str(Path(model).resolve())]
    command += ["--params", str(Path(params).resolve()), "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None:
                raise RuntimeError(f"agecheck serve exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"agecheck serve did not answer within {start_timeout:g} s")
            time.sleep(0.3)
        yield LocalServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
