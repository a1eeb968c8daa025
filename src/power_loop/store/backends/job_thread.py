"""A job thread: one dedicated OS thread that runs blocking calls for the event loop.

Backends whose driver is blocking (stdlib ``sqlite3``) own one ``JobThread`` per
connection. Invariants: jobs run one at a time in submission order (so a connection is
only ever used by its own thread, and a job queued after another sees its effects);
every outcome, result or exception, resolves the submitting task's future through
``call_soon_threadsafe``; a job's awaiting task being cancelled does not cancel the
job. The hop is hand-rolled (a ``SimpleQueue`` and a bare future) because it is on the
path of every read and write: it allocates one tuple and one future per job, less
than ``run_in_executor``'s concurrent future and chaining callbacks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from queue import SimpleQueue
from typing import Any

Job = tuple[Callable[[Any, Any], Any], Any, Any, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
"""``(fn, a, b, future, loop)``: ``fn(a, b)`` runs on the thread and resolves ``future`` on ``loop``."""
JobQueue = SimpleQueue[Job | None]


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _serve(queue: JobQueue) -> None:
    """The thread's body: run jobs in order until the ``None`` sentinel."""
    while True:
        job = queue.get()
        if job is None:
            return
        fn, a, b, fut, loop = job
        try:
            value, ok = fn(a, b), True
        except BaseException as exc:  # handed to the awaiting task, never lost
            value, ok = exc, False
        with suppress(RuntimeError):  # the event loop closed while the job ran
            loop.call_soon_threadsafe(_resolve, fut, ok, value)
        del job, fn, a, b, fut, loop, value


class JobThread:
    """A daemon thread running submitted jobs in order; stop it with ``stop_queues``."""

    __slots__ = ("queue", "thread")

    def __init__(self, name: str) -> None:
        self.queue: JobQueue = SimpleQueue()
        self.thread = threading.Thread(target=_serve, args=(self.queue,), name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[Any, Any], Any], a: Any = None, b: Any = None) -> asyncio.Future[Any]:
        """Queue ``fn(a, b)``; the returned future resolves on the running loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.put((fn, a, b, fut, loop))
        return fut


def stop_queues(queues: Iterable[JobQueue]) -> None:
    """Ask the threads serving ``queues`` to exit once their queued jobs are done.

    Takes queues, not ``JobThread``s, so a ``weakref.finalize`` can hold it without
    keeping the owner alive.
    """
    for queue in queues:
        queue.put(None)
