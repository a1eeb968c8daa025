"""Worker threads for sync tool handlers: the caller's contextvars, a cheap hop, no starvation.

``asyncio.to_thread`` goes through the loop's default executor (a concurrent future, a
work item and chained callbacks per call). Tool calls are on the hot path of every tool
round, so they use this pool: a ``SimpleQueue`` of jobs and a bare future resolved with
``call_soon_threadsafe``. Invariants: a job starts at once — when every worker is busy
(a tool may block for minutes) a new worker is started, so a slow tool never delays
another; idle workers beyond ``keep`` exit after ``idle_s``; a job whose awaiting task
was cancelled still runs to its end (a thread cannot be interrupted) and its result is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class ToolWorkerPool:
    def __init__(self, *, keep: int = 4, idle_s: float = 60.0) -> None:
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._keep = keep
        self._idle_s = idle_s

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on a worker thread, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        ctx = contextvars.copy_context()
        self._jobs.put((lambda: ctx.run(fn, *args, **kwargs), fut, loop))
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that worker is taken by this job
                start = False
            else:
                self._workers += 1
                start = True
        if start:
            threading.Thread(target=self._serve, name="power_loop-tool-worker", daemon=True).start()
        return await fut

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            try:
                call, fut, loop = jobs.get(timeout=self._idle_s)
            except Empty:
                with self._lock:
                    if self._idle > 0 and self._workers > self._keep:
                        self._idle -= 1
                        self._workers -= 1
                        return
                continue
            try:
                value, ok = call(), True
            except BaseException as exc:  # handed to the awaiting task, never lost
                value, ok = exc, False
            with contextlib.suppress(RuntimeError):  # the event loop closed while the tool ran
                loop.call_soon_threadsafe(_resolve, fut, ok, value)
            del call, fut, loop, value
            with self._lock:
                self._idle += 1


TOOL_WORKERS = ToolWorkerPool()
"""The process-wide pool sync tool handlers run on."""
