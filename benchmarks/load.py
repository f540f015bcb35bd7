"""``agecheck serve`` under load: 1, 8 and 32 concurrent tills on loopback, with a token.

    python -m benchmarks.load [--model models/age_model.keras] [--requests 300 800 1200]

Starts the service (its params, an API token of its own in ``$AGECHECK_TOKEN``), then for each
number of clients sends a bounded number of one-face 640x480 JPEG frames, each client posting its
next frame as soon as the last one is answered. A 503 is what a till gets when ``max_in_flight``
predictions already run: the client waits the ``Retry-After`` it was given, as a till would.
Prints a table: throughput (answered frames/s), latency p50/p95/p99 of answered frames and of all
requests, the share of 503s, and the server's resident memory (RSS) at request 500 and 2,000 of the
whole run with its growth between them (target: <= 5%).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from agecheck.config import DEFAULT_MODEL, DEFAULT_PARAMS, load_params
from tests.support.cartoon import till_frame
from tests.support.local_server import local_server

#: Requests of the whole run at which the server's memory is read.
MEMORY_AT = (500, 2000)


@dataclass
class Level:
    clients: int
    ok: list[float] = field(default_factory=list)  # seconds, answered frames (200)
    busy: list[float] = field(default_factory=list)  # seconds, 503 answers
    other: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, float | int]:
        every = self.ok + self.busy
        total = len(every) + self.other

        def ms(values: list[float], q: float) -> float:
            return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")

        return {
            "clients": self.clients,
            "requests": total,
            "answered_per_s": round(len(self.ok) / self.seconds, 1),
            "p50_ms": ms(self.ok, 50),
            "p95_ms": ms(self.ok, 95),
            "p99_ms": ms(self.ok, 99),
            "all_p99_ms": ms(every, 99),
            "share_503": round(len(self.busy) / total, 3),
            "errors": self.other,
        }


def frames(count: int) -> list[bytes]:
    out = []
    for seed in range(count):
        buffer = io.BytesIO()
        till_frame([(200 + 10 * (seed % 8), 120, 180)], seed=seed).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


async def drive(
    url: str, token: str, level: Level, requests: int, counter: dict, rss: dict, pid: int
) -> None:
    """``level.clients`` tills sharing ``requests`` posts; the server's RSS read at ``MEMORY_AT``."""
    photos = frames(16)
    headers = {"Content-Type": "image/jpeg", "Authorization": f"Bearer {token}"}
    left = [requests]
    server = psutil.Process(pid)

    async def till(index: int, http: httpx.AsyncClient) -> None:
        while left[0] > 0:
            left[0] -= 1
            start = time.perf_counter()
            answer = await http.post(
                "/predict", content=photos[(index + left[0]) % len(photos)], headers=headers
            )
            elapsed = time.perf_counter() - start
            counter["n"] += 1
            if counter["n"] in MEMORY_AT:
                rss[counter["n"]] = server.memory_info().rss
            if answer.status_code == 200 and answer.json()["faces"]:
                level.ok.append(elapsed)
            elif answer.status_code == 503:
                level.busy.append(elapsed)
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            else:
                level.other += 1

    limits = httpx.Limits(max_connections=level.clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(till(i, http) for i in range(level.clients)))
        level.seconds = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, nargs="+", default=[300, 800, 1200], help="per level")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    if len(args.requests) != len(args.clients):
        parser.error("give one --requests number per --clients number")
    serve = load_params(args.params).serve
    token = secrets.token_urlsafe(24)
    env = {serve.token_env or "AGECHECK_TOKEN": token}
    counter, rss, levels = {"n": 0}, {}, []
    with local_server(args.model, args.params, env=env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:  # warm-up, and the gate is on
            assert (
                http.post(
                    "/predict", content=frames(1)[0], headers={"Content-Type": "image/jpeg"}
                ).status_code
                == 401
            )
        for clients, requests in zip(args.clients, args.requests, strict=True):
            level = Level(clients)
            asyncio.run(drive(server.url, token, level, requests, counter, rss, server.process.pid))
            levels.append(level.row())
    print(
        f"agecheck serve, 1 worker, max_in_flight {serve.max_in_flight}, timeout {serve.timeout_s:g} s, "
        f"one-face 640x480 JPEG frames, loopback, token on\n"
    )
    print("| clients | requests | answered/s | p50 ms | p95 ms | p99 ms | p99 all ms | 503 share | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in levels:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")
    growth = None
    if all(n in rss for n in MEMORY_AT):
        first, last = (rss[n] / 2**20 for n in MEMORY_AT)
        growth = round((last - first) / first * 100, 2)
        print(
            f"\nserver RSS: {first:.0f} MiB at request {MEMORY_AT[0]}, {last:.0f} MiB at request "
            f"{MEMORY_AT[1]}: growth {growth:+.2f}% (target <= 5%)"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"levels": levels, "rss_mib": rss, "rss_growth_pct": growth}, indent=2)
        )


if __name__ == "__main__":
    main()
