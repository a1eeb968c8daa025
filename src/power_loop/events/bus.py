"""AgentEventBus: typed publish/subscribe with ordered, optionally off-thread dispatch.

Invariants: sync subscribers see events in ``seq`` order (inline, or on one worker
thread behind a bounded FIFO with ``sync_dispatch="thread"``); async subscribers run as
tasks the bus owns and ``drain()`` awaits; ``wants(type)`` is O(1) so publishers skip
building events nobody receives. A raising subscriber propagates to the publisher
unless ``suppress_subscriber_errors=True``, which logs and continues (on the worker
thread and in tasks there is no caller, so errors are always logged). After
``shutdown()`` the worker has flushed and stopped; later events reach sync subscribers
inline, in the publisher's thread, so nothing is lost and no publisher ever hangs.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.events import AgentEvent, AgentEventType

logger = logging.getLogger(__name__)

EventHandler = Callable[[AgentEvent], Any]
_ORDER = itertools.count()
_Batch = tuple[list[EventHandler], AgentEvent]


def _is_async_callable(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


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
        problems: list[str] = []
        if sync_dispatch not in ("inline", "thread"):
            problems.append(f"sync_dispatch must be 'inline' or 'thread', not {sync_dispatch!r}")
        if on_overflow not in ("drop_newest", "drop_oldest", "block"):
            problems.append(
                f"on_overflow must be 'drop_newest', 'drop_oldest' or 'block', not {on_overflow!r}")
        if isinstance(queue_maxsize, bool) or not isinstance(queue_maxsize, int) or queue_maxsize < 1:
            problems.append(f"queue_maxsize must be an integer >= 1, not {queue_maxsize!r}")
        if problems:
            raise InvalidArgumentError("invalid AgentEventBus: " + "; ".join(problems))
        self.suppress_subscriber_errors = suppress_subscriber_errors
        self.sync_dispatch = sync_dispatch
        self.on_overflow = on_overflow
        self.queue_maxsize = queue_maxsize
        self.dropped = 0
        """Events the bounded queue discarded (``drop_newest``/``drop_oldest``)."""
        self._subs: list[tuple[int, int, AgentEventType | None, EventHandler, bool]] = []
        self._by_type: dict[AgentEventType | None, list[tuple[EventHandler, bool]]] = {}
        self._types: frozenset[AgentEventType] = frozenset()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        # Thread dispatch: a bounded FIFO guarded by one condition (queue.Queue cannot
        # express "stopped" without a sentinel that drop_oldest might discard).
        self._cond = threading.Condition()
        self._items: deque[_Batch] = deque()
        self._unfinished = 0
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._worker_done = False
        self._closed = False

    # -- subscription -------------------------------------------------------------------
    def subscribe(self, event_type: AgentEventType | str | None, handler: EventHandler, *,
                  priority: int = 0) -> None:
        """Call ``handler`` for events of ``event_type`` (None = every event).

        Raises:
            InvalidArgumentError: ``invalid_argument`` for a non-callable handler or an
                unknown event type.
        """
        if not callable(handler):
            raise InvalidArgumentError(f"subscriber must be callable, got {type(handler).__name__}")
        try:
            etype = None if event_type is None else AgentEventType(event_type)
        except ValueError:
            known = ", ".join(t.value for t in AgentEventType)
            raise InvalidArgumentError(f"unknown event type {event_type!r}; known: {known}") from None
        is_async = _is_async_callable(handler)
        with self._lock:
            self._subs.append((priority, next(_ORDER), etype, handler, is_async))
            self._rebuild()

    def unsubscribe(self, handler: EventHandler) -> bool:
        """Remove every subscription of ``handler``; return whether any existed.

        Handlers compare with ``==``, so ``obj.method`` unsubscribes a bound method
        subscribed as ``obj.method`` (each attribute access builds a new object).
        """
        with self._lock:
            before = len(self._subs)
            self._subs = [s for s in self._subs if not (s[3] is handler or s[3] == handler)]
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
        if self.sync_dispatch == "thread":
            sync_handlers = [h for h, is_async in handlers if not is_async]
            if sync_handlers:
                self._enqueue((sync_handlers, event))
        for handler, is_async in handlers:
            if is_async:
                try:
                    await handler(event)
                except Exception:
                    if not self.suppress_subscriber_errors:
                        raise
                    logger.exception("event subscriber %r failed on %s", handler, event.type.value)
            elif self.sync_dispatch != "thread":
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
    def _enqueue(self, batch: _Batch) -> None:
        on_worker = threading.current_thread() is self._worker
        with self._cond:
            if self._worker_done:
                inline = True
            else:
                self._ensure_worker()
                inline = False
                if len(self._items) >= self.queue_maxsize:
                    if self.on_overflow == "drop_newest":
                        self.dropped += 1
                        return
                    if self.on_overflow == "drop_oldest":
                        self._items.popleft()
                        self._unfinished -= 1
                        self.dropped += 1
                    elif on_worker:
                        # A subscriber publishing into its own full queue would wait for
                        # itself forever: deliver this one in place instead.
                        inline = True
                    else:
                        while len(self._items) >= self.queue_maxsize and not self._worker_done:
                            self._cond.wait()
                        inline = self._worker_done
                if not inline:
                    self._items.append(batch)
                    self._unfinished += 1
                    self._cond.notify_all()
        if inline:
            handlers, event = batch
            for handler in handlers:
                self._call(handler, event)

    def _ensure_worker(self) -> None:
        # Called with self._cond held.
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="power-loop-events", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._items and not self._stopping:
                        self._cond.wait()
                    if not self._items:
                        return
                    handlers, event = self._items.popleft()
                    self._cond.notify_all()  # room for a blocked publisher
                try:
                    for handler in handlers:
                        try:
                            handler(event)
                        except Exception:
                            logger.exception("event subscriber %r failed on %s", handler, event.type.value)
                finally:
                    with self._cond:
                        self._unfinished -= 1
                        self._cond.notify_all()
        finally:
            with self._cond:
                # Whatever is still queued (only after an unexpected BaseException) is
                # lost: count it so drain() and blocked publishers cannot wait forever.
                self.dropped += len(self._items)
                self._unfinished -= len(self._items)
                self._items.clear()
                self._worker_done = True
                self._cond.notify_all()

    def _join_queue(self, timeout: float | None, clock: Callable[[], float]) -> bool:
        deadline = None if timeout is None else clock() + timeout
        with self._cond:
            while self._unfinished > 0:
                remaining = None if deadline is None else deadline - clock()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- lifecycle ----------------------------------------------------------------------
    async def drain(self, *, timeout: float | None = None) -> bool:
        """Wait for queued and running deliveries; return False if ``timeout`` hit first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _done, pending = await asyncio.wait(set(self._tasks), timeout=remaining)
            if pending and deadline is not None and loop.time() >= deadline:
                return False
        if self._worker is not None:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            return await asyncio.to_thread(self._join_queue, remaining, time.monotonic)
        return True

    def shutdown(self, *, timeout: float = 5.0) -> None:
        """Flush the worker thread and stop it, waiting up to ``timeout`` s; idempotent.

        Later events reach sync subscribers inline, in the publisher's thread.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            if self._worker is None:
                self._worker_done = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

