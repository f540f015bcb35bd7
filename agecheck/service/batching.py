"""Gathering face crops from concurrent requests into batches for the age model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from agecheck.model.age_model import AgeEstimate


class Batcher:
    """Gathers face crops from concurrent requests and runs the age model on them in batches.

    The model runs on one dedicated thread. Whatever arrived while it was busy (up to
    ``max_batch`` crops, waiting at most ``max_wait`` seconds for more) forms the next batch.
    """

    def __init__(
        self, run: Callable[[np.ndarray], list[AgeEstimate]], max_batch: int, max_wait: float
    ) -> None:
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[list[AgeEstimate]]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="age-model")
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, crops: np.ndarray) -> list[AgeEstimate]:
        """Estimates for ``crops`` (N x S x S x 3), computed with other requests' crops."""
        if len(crops) == 0:
            return []
        future: asyncio.Future[list[AgeEstimate]] = asyncio.get_running_loop().create_future()
        await self.queue.put((crops, future))
        return await future

    async def _next_batch(self) -> list[tuple[np.ndarray, asyncio.Future[list[AgeEstimate]]]]:
        items = [await self.queue.get()]
        count, deadline = len(items[0][0]), time.monotonic() + self.max_wait
        while count < self.max_batch:
            try:
                if self.queue.empty() and time.monotonic() < deadline:
                    item = await asyncio.wait_for(self.queue.get(), deadline - time.monotonic())
                else:
                    item = self.queue.get_nowait()
            except (asyncio.QueueEmpty, TimeoutError):
                break
            items.append(item)
            count += len(item[0])
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # a request that timed out (its future cancelled) costs the model nothing
            items = [item for item in await self._next_batch() if not item[1].done()]
            if not items:
                continue
            batch = np.concatenate([crops for crops, _ in items])
            try:
                estimates = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as err:  # noqa: BLE001 - handed to every waiting request
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for crops, future in items:
                if not future.done():  # the client may have gone away
                    future.set_result(estimates[start : start + len(crops)])
                start += len(crops)
