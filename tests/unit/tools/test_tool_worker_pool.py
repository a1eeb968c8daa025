"""Sync tool handlers run on a pool that never makes one tool wait for another."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from power_loop.tools.worker_pool import ToolWorkerPool

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_a_blocked_job_does_not_delay_the_next() -> None:
    pool = ToolWorkerPool(keep=1)
    release = threading.Event()
    blocked = asyncio.ensure_future(pool.run(release.wait, 5))
    assert await asyncio.wait_for(pool.run(lambda: "quick"), 2) == "quick"
    release.set()
    assert await blocked is True


async def test_jobs_see_the_callers_contextvars_and_raise_their_errors() -> None:
    pool = ToolWorkerPool()
    REQUEST_ID.set("r-42")
    assert await pool.run(REQUEST_ID.get) == "r-42"

    def fail() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await pool.run(fail)


async def test_many_concurrent_jobs_all_complete() -> None:
    pool = ToolWorkerPool(keep=2)
    results = await asyncio.gather(*(pool.run(lambda i=i: i * i) for i in range(200)))
    assert results == [i * i for i in range(200)]
