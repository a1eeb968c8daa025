"""AgentEventBus: typed publish/subscribe with ordered, optionally off-thread dispatch.

Invariants: sync subscribers see events in ``seq`` order (inline, or on one worker
thread behind a bounded FIFO with ``sync_dispatch="thread"``); async subscribers run as
tasks the bus owns and ``drain()`` awaits; ``wants(type)`` is O(1) so publishers skip
building events nobody receives. A raising subscriber propagates to the publisher
unless ``suppress_subscriber_errors=True``, which logs and continues.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Literal

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.events import AgentEvent, AgentEventType

logger = logging.getLogger(__name__)

EventHandler = Callable[[AgentEvent], Any]
_ORDER = itertools.count()
_STOP = object()


class AgentEventBus:
    """Deliver ``AgentEvent``s to subscribers.

    Example:
        >>> bus = AgentEventBus()
        >>> seen = []
        >>> bus.subscribe(AgentEventType.USER_NOTIFICATION, seen.append)
        >>> bus.publish(AgentEvent(AgentEventType.USER_NOTIFICATION, {"message": "hi"}))
        >>> seen[0].payload
        {'message': 'hi'}
    """

    def __init__(
        self,
        *,
        suppress_subscriber_errors: bool = False,
        sync_dispatch: Literal["inline", "thread"] = "inline",
        queue_maxsize: int = 1000,
        on_overflow: Literal["drop_newest", "drop_oldest", "block"] = "drop_newest",
    ) -> None:
        if sync_dispatch not in ("inline", "thread"):
            raise InvalidArgumentError(f"sync_dispatch must be 'inline' or 'thread', not {sync_dispatch!r}")
        if on_overflow not in ("drop_newest", "drop_oldest", "block"):
            raise InvalidArgumentError(
                f"on_overflow must be 'drop_newest', 'drop_oldest' or 'block', not {on_overflow!r}")
        if queue_maxsize < 1:
            raise InvalidArgumentError(f"queue_maxsize must be >= 1, not {queue_maxsize}")
        self.suppress_subscriber_errors = suppress_subscriber_errors
        self.sync_dispatch = sync_dispatch
        self.on_overflow = on_overflow
        self.dropped = 0
        self._subs: list[tuple[int, int, AgentEventType | None, EventHandler, bool]] = []
        self._by_type: dict[AgentEventType | None, list[tuple[EventHandler, bool]]] = {}
        self._wildcard = False
        self._types: frozenset[AgentEventType] = frozenset()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_maxsize)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- subscription -------------------------------------------------------------------
    def subscribe(self, event_type: AgentEventType | str | None, handler: EventHandler, *,
                  priority: int = 0) -> None:
        """Call ``handler`` for events of ``event_type`` (None = every event)."""
        if not callable(handler):
            raise InvalidArgumentError(f"subscriber must be callable, got {type(handler).__name__}")
        etype = None if event_type is None else AgentEventType(event_type)
        is_async = inspect.iscoroutinefunction(handler)
        with self._lock:
            self._subs.append((priority, next(_ORDER), etype, handler, is_async))
            self._rebuild()

    def unsubscribe(self, handler: EventHandler) -> bool:
        """Remove every subscription of ``handler``; return whether any existed."""
        with self._lock:
            before = len(self._subs)
            self._subs = [s for s in self._subs if s[3] is not handler]
            self._rebuild()
            return len(self._subs) != before

    def _rebuild(self) -> None:
        self._subs.sort(key=lambda s: (s[0], s[1]))
        by_type: dict[AgentEventType | None, list[tuple[EventHandler, bool]]] = {}
        wildcard = [(s[3], s[4]) for s in self._subs if s[2] is None]
        for etype in AgentEventType:
            handlers = [(s[3], s[4]) for s in self._subs if s[2] is None or s[2] is etype]
            if handlers:
                by_type[etype] = handlers
        by_type[None] = wildcard
        self._by_type = by_type
        self._wildcard = bool(wildcard)
        self._types = frozenset(t for t in by_type if t is not None)

    def wants(self, event_type: AgentEventType) -> bool:
        """True when publishing an event of this type would reach a subscriber."""
        return event_type in self._types

    # -- publishing ---------------------------------------------------------------------
    def publish(self, event: AgentEvent) -> None:
        """Deliver ``event``: sync subscribers now (or queued to the worker thread),
        async subscribers as tasks on the running event loop."""
        handlers = self._by_type.get(event.type)
        if not handlers:
            return
        sync_handlers: list[EventHandler] = []
        for handler, is_async in handlers:
            if is_async:
                self._spawn(handler, event)
            else:
                sync_handlers.append(handler)
        if not sync_handlers:
            return
        if self.sync_dispatch == "thread":
            self._enqueue((sync_handlers, event))
        else:
            for handler in sync_handlers:
                self._call(handler, event)

    async def publish_async(self, event: AgentEvent) -> None:
        """Deliver ``event`` and await its async subscribers before returning."""
        handlers = self._by_type.get(event.type)
        if not handlers:
            return
        for handler, is_async in handlers:
            if is_async:
                try:
                    await handler(event)
                except Exception:
                    if not self.suppress_subscriber_errors:
                        raise
                    logger.exception("event subscriber %r failed on %s", handler, event.type.value)
            elif self.sync_dispatch == "thread":
                self._enqueue(([handler], event))
            else:
                self._call(handler, event)

    def _call(self, handler: EventHandler, event: AgentEvent) -> None:
        if not self.suppress_subscriber_errors:
            handler(event)
            return
        try:
            handler(event)
        except Exception:
            logger.exception("event subscriber %r failed on %s", handler, event.type.value)

    def _spawn(self, handler: EventHandler, event: AgentEvent) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No running loop (publish from a plain thread): run it to completion here.
            asyncio.run(self._run_async(handler, event))
            return
        task = loop.create_task(self._run_async(handler, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, handler: EventHandler, event: AgentEvent) -> None:
        try:
            await handler(event)
        except Exception:
            # A task has no caller to raise into: always log.
            logger.exception("async event subscriber %r failed on %s", handler, event.type.value)

    # -- thread dispatch ----------------------------------------------------------------
    def _enqueue(self, item: Any) -> None:
        self._ensure_worker()
        if self.on_overflow == "block":
            self._queue.put(item)
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if self.on_overflow == "drop_newest":
                self.dropped += 1
                return
            try:
                self._queue.get_nowait()
                self._queue.task_done()
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def _ensure_worker(self) -> None:
        if self._worker is not None:
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="power-loop-events", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                handlers, event = item
                for handler in handlers:
                    try:
                        handler(event)
                    except Exception:
                        logger.exception("event subscriber %r failed on %s", handler, event.type.value)
            finally:
                self._queue.task_done()

    # -- lifecycle ----------------------------------------------------------------------
    async def drain(self, *, timeout: float | None = None) -> bool:
        """Wait for queued and running deliveries; return False if ``timeout`` hit first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _done, pending = await asyncio.wait(set(self._tasks), timeout=remaining)
            if pending and remaining is not None and deadline is not None and loop.time() >= deadline:
                return False
        if self._worker is not None:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            ok = await asyncio.to_thread(self._join_queue, remaining)
            if not ok:
                return False
        return True

    def _join_queue(self, timeout: float | None) -> bool:
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout)

    def shutdown(self, *, timeout: float = 5.0) -> None:
        """Flush the worker thread and stop it; idempotent."""
        if self._closed:
            return
        self._closed = True
        worker = self._worker
        if worker is not None:
            self._queue.put(_STOP)
            worker.join(timeout)
