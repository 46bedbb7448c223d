"""Dynamic batching: merge compatible concurrent requests along dimension 0, split back."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Feeds = dict[str, npt.NDArray[Any]]
Outputs = list[npt.NDArray[Any]]
RunFn = Callable[[Feeds], Outputs]


@dataclass(slots=True)
class Execution:
    """What a request got back from the model, with the timings the metrics need."""

    outputs: Outputs
    queue_s: float
    inference_s: float
    batch_size: int


@dataclass(slots=True)
class _Pending:
    key: Hashable
    feeds: Feeds
    rows: int
    arrived: float
    future: asyncio.Future[Execution] = field(repr=False)
    deadline: float = math.inf  # perf_counter() by which it must start, or never run


class DeadlineExceeded(Exception):
    """A request could not start before its deadline; it never ran."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"could not start within its deadline (waited {waited_s * 1000:.0f} ms)")
        self.waited_s = waited_s


def batch_key(feeds: Feeds, parameters_key: Hashable) -> Hashable:
    """Requests may share a batch only if inputs agree on dtype and on all dims but the first."""
    return (
        tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in feeds.items())),
        parameters_key,
    )


class BatchError(Exception):
    """The model broke the batching contract (its outputs do not have one row per input row)."""


class Batcher:
    """Queues requests; one worker loop per execution slot takes a batch whenever the model is free.

    A batch closes when it reaches `max_batch_size` rows, when its oldest request has waited
    `max_delay_s`, or as soon as every request in flight is already queued (waiting longer could
    not grow the batch: with one client the delay would be pure latency). Requests that arrive
    while the model is busy pile into the next batch. Incompatible requests wait in order for a
    batch of their own.
    """

    def __init__(
        self,
        run: RunFn,
        executor: Executor | None,
        *,
        max_batch_size: int,
        max_delay_s: float,
        slots: int = 1,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._pending: deque[_Pending] = deque()
        self._rows_by_key: dict[Hashable, int] = {}
        self._wake = asyncio.Event()
        self._in_flight = in_flight
        self._workers = [asyncio.ensure_future(self._work()) for _ in range(slots)]

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (the queue-depth gauge)."""
        return len(self._pending)

    async def submit(self, feeds: Feeds, key: Hashable, deadline: float = math.inf) -> Execution:
        """Run `feeds` in a batch; a request still queued at `deadline` (perf_counter) fails
        with DeadlineExceeded and never runs."""
        rows = next(iter(feeds.values())).shape[0]
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(key, feeds, rows, time.perf_counter(), future, deadline))
        self._rows_by_key[key] = self._rows_by_key.get(key, 0) + rows
        self._wake.set()
        return await future

    def notify(self) -> None:
        """A request finished elsewhere: the batch being filled may be all there is now."""
        if self._pending:
            self._wake.set()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))

    async def _wait_for_work(self) -> None:
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()

    async def _fill(self, head: _Pending) -> None:
        deadline = head.arrived + self.max_delay_s
        while self._rows_by_key.get(head.key, 0) < self.max_batch_size:
            if self._in_flight is not None and self._in_flight() <= len(self._pending):
                return
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, head: _Pending) -> list[_Pending]:
        taken: list[_Pending] = []
        kept: deque[_Pending] = deque()
        rows = 0
        now = time.perf_counter()
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done() and now > item.deadline:
                item.future.set_exception(DeadlineExceeded(now - item.arrived))
            if item.future.done():  # its client went away, or its deadline passed
                self._rows_by_key[item.key] -= item.rows
                continue
            fits = not taken or rows + item.rows <= self.max_batch_size
            if item.key == head.key and fits and rows < self.max_batch_size:
                taken.append(item)
                rows += item.rows
                self._rows_by_key[item.key] -= item.rows
            else:
                kept.append(item)
        self._pending = kept
        for key in [k for k, v in self._rows_by_key.items() if v <= 0]:
            del self._rows_by_key[key]
        return taken

    async def _work(self) -> None:
        while True:
            await self._wait_for_work()
            head = self._pending[0]
            await self._fill(head)
            batch = self._take(head)
            if not batch:
                continue
            try:
                await self._serve(batch)
            except BaseException:
                # Cancelled (close()) while the batch ran: its requests get an answer too,
                # never a future left pending forever.
                _fail(batch, RuntimeError("the server is shutting down"))
                raise

    async def _serve(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            outputs, inference_s = await self._execute([p.feeds for p in batch])
        except BatchError as exc:
            _fail(batch, exc)  # the model's fault, not a request's: alone it would hide it
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # One bad request must not fail its neighbours: run each alone, so only the ones
            # that fail by themselves get the error.
            for item in batch:
                if not item.future.done():  # a client that left costs no run
                    await self._serve([item])
            return
        for item, split in zip(batch, outputs, strict=True):
            if not item.future.done():
                item.future.set_result(
                    Execution(split, started - item.arrived, inference_s, len(batch))
                )

    async def _execute(self, feeds: list[Feeds]) -> tuple[list[Outputs], float]:
        if self._executor is None:  # inline: the model is fast enough to block the loop
            return run_merged(self._run, feeds)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run_merged, self._run, feeds)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


def run_before(
    deadline: float, arrived: float, run: RunFn, feeds_list: list[Feeds]
) -> tuple[list[Outputs], float]:
    """run_merged, unless `deadline` (perf_counter) passed while the request waited for the
    worker thread: then DeadlineExceeded, and the model never runs."""
    now = time.perf_counter()
    if now > deadline:
        raise DeadlineExceeded(now - arrived)
    return run_merged(run, feeds_list)


def run_merged(run: RunFn, feeds_list: list[Feeds]) -> tuple[list[Outputs], float]:
    """Concatenate, run once, and split every output back by each request's row count."""
    started = time.perf_counter()
    if len(feeds_list) == 1:
        return [run(feeds_list[0])], time.perf_counter() - started
    names = list(feeds_list[0])
    merged = {name: np.concatenate([f[name] for f in feeds_list], axis=0) for name in names}
    outputs = run(merged)
    elapsed = time.perf_counter() - started
    counts = [next(iter(f.values())).shape[0] for f in feeds_list]
    total = sum(counts)
    for index, output in enumerate(outputs):
        if output.ndim == 0 or output.shape[0] != total:
            raise BatchError(
                f"model output {index} has {output.shape[:1]} rows for a batch of {total} rows; "
                "this model cannot be batched"
            )
    bounds = np.cumsum(counts)[:-1]
    per_output = [np.split(output, bounds, axis=0) for output in outputs]
    return [list(parts) for parts in zip(*per_output, strict=True)], elapsed
