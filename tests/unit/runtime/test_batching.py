"""The Batcher on its own: what it merges, what it keeps apart, and that results go home."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from modelship_runtime.server.batching import (
    Batcher,
    BatchError,
    DeadlineExceeded,
    Feeds,
    batch_key,
)

from tests.support.waiting import wait_until_async


class RecordingModel:
    """y = 10 * x + row index within the batch: a wrong split back would show in the values."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, ...]]] = []
        self.keys: list[Any] = []
        self.lock = threading.Lock()

    def run(self, feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        x = feeds["x"]
        with self.lock:
            self.batches.append([x.shape])
        return [x * 10, np.full(x.shape[0], x.shape[0], np.int64)]


async def _submit_all(batcher: Batcher, items: list[tuple[Feeds, Any]]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(f, k) for f, k in items))


async def test_merges_up_to_max_batch_size_and_splits_back() -> None:
    model = RecordingModel()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(model.run, pool, max_batch_size=8, max_delay_s=0.05)
        items = []
        for i in range(40):
            x = np.full((1 + i % 2, 3), float(i), np.float32)
            items.append(({"x": x}, batch_key({"x": x}, b"")))
        results = await _submit_all(batcher, items)
        await batcher.close()
    for (feeds, _), execution in zip(items, results, strict=True):
        np.testing.assert_array_equal(execution.outputs[0], feeds["x"] * 10)
        assert execution.outputs[1].shape[0] == feeds["x"].shape[0]
    rows = [shape[0][0] for shape in model.batches]
    assert sum(rows) == sum(f["x"].shape[0] for f, _ in items)
    assert max(rows) <= 8
    assert any(execution.batch_size > 1 for execution in results)


async def test_requests_with_different_keys_never_share_a_batch() -> None:
    seen: list[set[Any]] = []

    def run(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        # The tag column travels with the data: every row of one batch must carry one tag.
        seen.append(set(feeds["tag"][:, 0].tolist()))
        return [feeds["tag"] * 2]

    rnd = random.Random(1)
    items = []
    for _ in range(60):
        width = rnd.choice([1, 2])
        params = rnd.choice([b"", b'{"temperature":1}'])
        tag = width * 10 + (1 if params else 0)
        feeds = {"tag": np.full((1, width), tag, np.int64)}
        items.append((feeds, batch_key(feeds, params)))
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(run, pool, max_batch_size=16, max_delay_s=0.02)
        results = await _submit_all(batcher, items)
        await batcher.close()
    assert all(len(tags) == 1 for tags in seen)
    for (feeds, _), execution in zip(items, results, strict=True):
        np.testing.assert_array_equal(execution.outputs[0], feeds["tag"] * 2)


async def test_a_request_larger_than_the_batch_runs_alone() -> None:
    model = RecordingModel()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(model.run, pool, max_batch_size=4, max_delay_s=0.01)
        big = {"x": np.ones((10, 3), np.float32)}
        result = await batcher.submit(big, batch_key(big, b""))
        await batcher.close()
    assert result.outputs[0].shape == (10, 3)


async def test_a_model_that_breaks_rows_fails_every_caller_with_a_clear_error() -> None:
    def run(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        return [np.zeros(1, np.float32)]  # always one row, whatever the batch

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(run, pool, max_batch_size=8, max_delay_s=0.05)
        items = [({"x": np.ones((1, 2), np.float32)}, "k") for _ in range(4)]
        results = await asyncio.gather(
            *(batcher.submit(f, k) for f, k in items), return_exceptions=True
        )
        await batcher.close()
    errors = [r for r in results if isinstance(r, BatchError)]
    assert errors, results
    assert "cannot be batched" in str(errors[0])


async def test_close_fails_waiting_requests() -> None:
    gate = threading.Event()

    def run(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        gate.wait(10)
        return [feeds["x"]]

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(run, pool, max_batch_size=2, max_delay_s=0.001)
        first = asyncio.ensure_future(batcher.submit({"x": np.ones((2, 1))}, "a"))
        second = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, "b"))

        async def queued() -> bool:
            return len(batcher._pending) == 1  # the second waits while the first runs

        await wait_until_async(queued, timeout=5, interval=0.001, what="the second request queued")
        close = asyncio.ensure_future(batcher.close())
        await asyncio.wait([close], timeout=5)
        gate.set()
        with pytest.raises(RuntimeError, match="shutting down"):
            await second
        # The request of the batch that was running when the workers stopped gets an answer
        # too, instead of waiting forever.
        with pytest.raises(RuntimeError, match="shutting down"):
            await asyncio.wait_for(first, 5)


async def test_a_request_that_fails_in_a_merged_batch_fails_alone() -> None:
    def run(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        x = feeds["x"]
        if np.isnan(x).any():
            raise ValueError("NaN in the input")
        return [x * 2]

    batches: list[int] = []

    def recording(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        batches.append(feeds["x"].shape[0])
        return run(feeds)

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(recording, pool, max_batch_size=8, max_delay_s=0.05)
        values = [1.0, float("nan"), 3.0, 4.0]
        items = [({"x": np.full((1, 2), v, np.float32)}, "k") for v in values]
        results = await asyncio.gather(
            *(batcher.submit(f, k) for f, k in items), return_exceptions=True
        )
        await batcher.close()
    assert batches[0] == 4  # they did share a batch
    assert isinstance(results[1], ValueError)
    for index in (0, 2, 3):
        assert not isinstance(results[index], BaseException), results[index]
        np.testing.assert_array_equal(results[index].outputs[0], np.full((1, 2), 2 * values[index]))


async def test_a_lone_request_does_not_wait_out_the_delay() -> None:
    model = RecordingModel()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(model.run, pool, max_batch_size=8, max_delay_s=60.0, in_flight=lambda: 1)
        x = {"x": np.ones((1, 3), np.float32)}
        # With a 60 s delay this would time out unless the batch closes once all in flight queued.
        result = await asyncio.wait_for(batcher.submit(x, batch_key(x, b"")), timeout=10)
        await batcher.close()
    assert result.batch_size == 1


async def test_a_request_still_queued_at_its_deadline_never_runs() -> None:
    gate, started = threading.Event(), threading.Event()
    ran: list[float] = []

    def run(feeds: Feeds) -> list[np.ndarray[Any, Any]]:
        started.set()
        gate.wait(10)
        ran.append(float(feeds["x"][0, 0]))
        return [feeds["x"]]

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(run, pool, max_batch_size=1, max_delay_s=0.001)
        first = asyncio.ensure_future(batcher.submit({"x": np.full((1, 1), 1.0)}, "k"))

        async def running() -> bool:
            return started.is_set()  # the model is busy with the first

        await wait_until_async(running, timeout=5, interval=0.001, what="the first running")
        # Its deadline has passed by the time the busy model could take it.
        late = asyncio.ensure_future(
            batcher.submit({"x": np.full((1, 1), 2.0)}, "k", deadline=time.perf_counter() - 1)
        )

        async def queued() -> bool:
            return len(batcher._pending) == 1

        await wait_until_async(queued, timeout=5, interval=0.001, what="the late one queued")
        gate.set()
        assert (await first).outputs[0][0, 0] == 1.0
        with pytest.raises(DeadlineExceeded, match="could not start within its deadline"):
            await late
        await batcher.close()
    assert ran == [1.0]  # the late request never reached the model
