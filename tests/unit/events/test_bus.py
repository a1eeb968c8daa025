"""AgentEventBus: subscription order, inline and threaded dispatch, overflow, async subscribers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from power_loop import AgentEvent, AgentEventBus, AgentEventType, InvalidArgumentError
from power_loop.contracts.events import SystemLogPayload, UserNotificationPayload

T = AgentEventType
WAIT_S = 5.0


def note(message: str = "", **kwargs: Any) -> AgentEvent:
    return AgentEvent(T.USER_NOTIFICATION, data=UserNotificationPayload(message=message), **kwargs)


def log(message: str = "") -> AgentEvent:
    return AgentEvent(T.SYSTEM_LOG, data=SystemLogPayload(message=message))


class Gate:
    """A subscriber that blocks the worker thread on its first event until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[str] = []

    def __call__(self, event: AgentEvent) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(WAIT_S), "test never released the gate"
        self.seen.append(event.payload["message"])


# -- subscription -----------------------------------------------------------------------
def test_typed_subscriber_gets_only_its_type_and_wildcard_gets_every_event() -> None:
    bus = AgentEventBus()
    typed: list[AgentEvent] = []
    every: list[AgentEvent] = []
    bus.subscribe(T.USER_NOTIFICATION, typed.append)
    bus.subscribe(None, every.append)
    a, b = note("a"), log("b")
    bus.publish(a)
    bus.publish(b)
    assert typed == [a]
    assert [e.seq for e in every] == [a.seq, b.seq]


def test_subscribe_accepts_the_event_type_value_string() -> None:
    bus = AgentEventBus()
    seen: list[AgentEvent] = []
    bus.subscribe("user_notification", seen.append)
    bus.publish(note("x"))
    assert len(seen) == 1


def test_subscribers_run_by_ascending_priority_then_registration_order() -> None:
    bus = AgentEventBus()
    calls: list[str] = []

    def rec(name: str) -> Callable[[AgentEvent], None]:
        return lambda _e: calls.append(name)

    bus.subscribe(T.USER_NOTIFICATION, rec("typed-0-first"))
    bus.subscribe(None, rec("wild-5"), priority=5)
    bus.subscribe(None, rec("wild-0-second"))
    bus.subscribe(T.USER_NOTIFICATION, rec("typed-neg"), priority=-1)
    bus.subscribe(T.USER_NOTIFICATION, rec("typed-0-third"))
    bus.publish(note())
    assert calls == ["typed-neg", "typed-0-first", "wild-0-second", "typed-0-third", "wild-5"]


def test_unsubscribe_removes_every_subscription_of_the_handler_and_reports_it() -> None:
    bus = AgentEventBus()
    seen: list[AgentEvent] = []
    bus.subscribe(T.USER_NOTIFICATION, seen.append)
    bus.subscribe(None, seen.append)
    assert bus.unsubscribe(seen.append) is True
    assert bus.unsubscribe(seen.append) is False
    bus.publish(note())
    assert seen == []


def test_unsubscribe_accepts_a_fresh_bound_method_of_the_same_object() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[AgentEvent] = []

        def on_event(self, event: AgentEvent) -> None:
            self.seen.append(event)

    bus = AgentEventBus()
    sink = Sink()
    bus.subscribe(None, sink.on_event)
    assert bus.unsubscribe(sink.on_event) is True
    bus.publish(note())
    assert sink.seen == []


def test_wants_reflects_typed_and_wildcard_subscriptions() -> None:
    bus = AgentEventBus()
    assert not any(bus.wants(t) for t in T)
    handler: Callable[[AgentEvent], None] = lambda _e: None  # noqa: E731
    bus.subscribe(T.STREAM_DELTA, handler)
    assert bus.wants(T.STREAM_DELTA)
    assert not bus.wants(T.USER_NOTIFICATION)
    bus.subscribe(None, print)
    assert all(bus.wants(t) for t in T)
    bus.unsubscribe(print)
    bus.unsubscribe(handler)
    assert not any(bus.wants(t) for t in T)


def test_publish_without_subscribers_is_a_no_op() -> None:
    AgentEventBus().publish(note())
    AgentEventBus(sync_dispatch="thread").publish(note())


def test_subscribing_a_non_callable_or_unknown_type_raises_invalid_argument() -> None:
    bus = AgentEventBus()
    with pytest.raises(InvalidArgumentError):
        bus.subscribe(None, "not callable")  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(InvalidArgumentError, match="no_such_event"):
        bus.subscribe("no_such_event", print)


def test_invalid_constructor_arguments_are_all_reported_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        AgentEventBus(sync_dispatch="process", queue_maxsize=0, on_overflow="explode")  # type: ignore[arg-type]
    message = str(info.value)
    assert "sync_dispatch" in message and "queue_maxsize" in message and "on_overflow" in message
    assert info.value.code == "invalid_argument"


# -- inline errors ----------------------------------------------------------------------
def test_a_raising_subscriber_propagates_to_the_publisher_by_default() -> None:
    bus = AgentEventBus()

    def boom(_e: AgentEvent) -> None:
        raise RuntimeError("subscriber broke")

    bus.subscribe(None, boom)
    with pytest.raises(RuntimeError, match="subscriber broke"):
        bus.publish(note())


def test_suppressed_subscriber_errors_are_logged_and_later_subscribers_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = AgentEventBus(suppress_subscriber_errors=True)
    seen: list[AgentEvent] = []

    def boom(_e: AgentEvent) -> None:
        raise RuntimeError("subscriber broke")

    bus.subscribe(None, boom)
    bus.subscribe(None, seen.append, priority=1)
    with caplog.at_level(logging.ERROR, logger="power_loop.events.bus"):
        bus.publish(note())
    assert len(seen) == 1
    assert any("subscriber" in r.getMessage() and r.exc_info for r in caplog.records)


# -- async subscribers ------------------------------------------------------------------
async def test_async_subscriber_runs_as_a_task_that_drain_awaits() -> None:
    bus = AgentEventBus()
    release = asyncio.Event()
    seen: list[int] = []

    async def slow(event: AgentEvent) -> None:
        await release.wait()
        seen.append(event.seq)

    bus.subscribe(None, slow)
    event = note()
    bus.publish(event)
    assert seen == []  # publish does not wait for async subscribers
    release.set()
    assert await bus.drain(timeout=WAIT_S) is True
    assert seen == [event.seq]


async def test_drain_returns_false_when_the_timeout_elapses_first() -> None:
    bus = AgentEventBus()
    release = asyncio.Event()

    async def stuck(_e: AgentEvent) -> None:
        await release.wait()

    bus.subscribe(None, stuck)
    bus.publish(note())
    assert await bus.drain(timeout=0.01) is False
    release.set()
    assert await bus.drain(timeout=WAIT_S) is True


async def test_drain_on_an_idle_bus_returns_true() -> None:
    assert await AgentEventBus().drain(timeout=0) is True


async def test_a_raising_async_subscriber_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    bus = AgentEventBus()

    async def boom(_e: AgentEvent) -> None:
        raise RuntimeError("async subscriber broke")

    bus.subscribe(None, boom)
    with caplog.at_level(logging.ERROR, logger="power_loop.events.bus"):
        bus.publish(note())
        assert await bus.drain(timeout=WAIT_S)
    assert any(r.exc_info and "async subscriber broke" in str(r.exc_info[1]) for r in caplog.records)


async def test_publish_async_awaits_async_subscribers_before_returning() -> None:
    bus = AgentEventBus()
    calls: list[str] = []

    async def first(_e: AgentEvent) -> None:
        resumed = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(resumed.set_result, None)
        await resumed  # a real suspension: publish_async must not return before it ends
        calls.append("async")

    bus.subscribe(None, first)
    bus.subscribe(None, lambda _e: calls.append("sync"), priority=1)
    await bus.publish_async(note())
    assert calls == ["async", "sync"]


async def test_publish_async_propagates_a_raising_async_subscriber_unless_suppressed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(_e: AgentEvent) -> None:
        raise ValueError("nope")

    strict = AgentEventBus()
    strict.subscribe(None, boom)
    with pytest.raises(ValueError, match="nope"):
        await strict.publish_async(note())

    lenient = AgentEventBus(suppress_subscriber_errors=True)
    lenient.subscribe(None, boom)
    with caplog.at_level(logging.ERROR, logger="power_loop.events.bus"):
        await lenient.publish_async(note())
    assert any(r.exc_info for r in caplog.records)


async def test_an_async_callable_object_is_treated_as_an_async_subscriber() -> None:
    class AsyncSink:
        def __init__(self) -> None:
            self.seen: list[AgentEvent] = []

        async def __call__(self, event: AgentEvent) -> None:
            self.seen.append(event)

    bus = AgentEventBus()
    sink = AsyncSink()
    bus.subscribe(None, sink)
    await bus.publish_async(note())
    assert len(sink.seen) == 1


def test_async_subscriber_without_a_running_loop_runs_to_completion_in_publish() -> None:
    bus = AgentEventBus()
    seen: list[AgentEvent] = []

    async def handler(event: AgentEvent) -> None:
        seen.append(event)

    bus.subscribe(None, handler)
    bus.publish(note())
    assert len(seen) == 1


# -- thread dispatch --------------------------------------------------------------------
async def test_thread_dispatch_runs_sync_subscribers_on_one_worker_thread_in_order() -> None:
    bus = AgentEventBus(sync_dispatch="thread")
    seen: list[tuple[str, int]] = []
    bus.subscribe(None, lambda e: seen.append((threading.current_thread().name, e.seq)))
    events = [note(str(i)) for i in range(50)]
    for event in events:
        bus.publish(event)
    assert await bus.drain(timeout=WAIT_S)
    assert [seq for _name, seq in seen] == [e.seq for e in events]
    names = {name for name, _seq in seen}
    assert len(names) == 1 and threading.current_thread().name not in names
    bus.shutdown()


async def test_thread_dispatch_logs_a_raising_subscriber_and_keeps_delivering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = AgentEventBus(sync_dispatch="thread")
    seen: list[str] = []

    def boom(_e: AgentEvent) -> None:
        raise RuntimeError("worker subscriber broke")

    bus.subscribe(None, boom)
    bus.subscribe(None, lambda e: seen.append(e.payload["message"]), priority=1)
    with caplog.at_level(logging.ERROR, logger="power_loop.events.bus"):
        bus.publish(note("a"))
        bus.publish(note("b"))
        assert await bus.drain(timeout=WAIT_S)
    assert seen == ["a", "b"]
    assert sum(1 for r in caplog.records if r.exc_info) == 2
    bus.shutdown()


async def test_publish_async_in_thread_mode_queues_sync_subscribers() -> None:
    bus = AgentEventBus(sync_dispatch="thread")
    threads: list[str] = []
    bus.subscribe(None, lambda _e: threads.append(threading.current_thread().name))
    await bus.publish_async(note())
    assert await bus.drain(timeout=WAIT_S)
    assert threads == ["power-loop-events"]
    bus.shutdown()


@pytest.mark.parametrize(
    ("policy", "delivered"),
    [("drop_newest", ["0", "1", "2"]), ("drop_oldest", ["0", "3", "4"])],
)
async def test_a_full_queue_drops_by_policy_and_counts_what_it_dropped(
    policy: str, delivered: list[str],
) -> None:
    bus = AgentEventBus(sync_dispatch="thread", queue_maxsize=2, on_overflow=policy)  # type: ignore[arg-type]
    gate = Gate()
    bus.subscribe(None, gate)
    bus.publish(note("0"))
    assert gate.entered.wait(WAIT_S)  # the worker holds "0"; the queue is empty again
    for i in range(1, 5):
        bus.publish(note(str(i)))
    assert bus.dropped == 2
    gate.release.set()
    assert await bus.drain(timeout=WAIT_S)
    assert gate.seen == delivered
    bus.shutdown()


async def test_block_policy_makes_the_publisher_wait_for_room_and_loses_nothing() -> None:
    bus = AgentEventBus(sync_dispatch="thread", queue_maxsize=1, on_overflow="block")
    gate = Gate()
    bus.subscribe(None, gate)
    bus.publish(note("0"))
    assert gate.entered.wait(WAIT_S)
    bus.publish(note("1"))  # fills the queue
    published = threading.Event()

    def publisher() -> None:
        bus.publish(note("2"))
        published.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    assert not published.wait(0.05)  # still blocked: the queue is full
    gate.release.set()
    assert published.wait(WAIT_S)
    thread.join(WAIT_S)
    assert await bus.drain(timeout=WAIT_S)
    assert gate.seen == ["0", "1", "2"]
    assert bus.dropped == 0
    bus.shutdown()


async def test_a_subscriber_publishing_into_its_own_full_blocking_queue_does_not_deadlock() -> None:
    bus = AgentEventBus(sync_dispatch="thread", queue_maxsize=1, on_overflow="block")
    seen: list[str] = []

    def relay(event: AgentEvent) -> None:
        seen.append(event.payload["message"])
        if event.payload["message"] == "outer":
            for i in range(3):
                bus.publish(note(f"inner{i}"))

    bus.subscribe(T.USER_NOTIFICATION, relay)
    bus.publish(note("outer"))
    assert await bus.drain(timeout=WAIT_S)
    assert sorted(seen) == ["inner0", "inner1", "inner2", "outer"]
    bus.shutdown()


async def test_shutdown_flushes_queued_events_and_is_idempotent() -> None:
    bus = AgentEventBus(sync_dispatch="thread")
    gate = Gate()
    bus.subscribe(None, gate)
    bus.publish(note("0"))
    assert gate.entered.wait(WAIT_S)
    bus.publish(note("1"))
    bus.publish(note("2"))
    gate.release.set()
    bus.shutdown(timeout=WAIT_S)
    assert gate.seen == ["0", "1", "2"]
    bus.shutdown()
    assert await bus.drain(timeout=WAIT_S)


async def test_after_shutdown_sync_subscribers_run_inline_and_drain_does_not_hang() -> None:
    bus = AgentEventBus(sync_dispatch="thread", queue_maxsize=1, on_overflow="block")
    threads: list[str] = []
    bus.subscribe(None, lambda _e: threads.append(threading.current_thread().name))
    bus.publish(note("before"))
    bus.shutdown(timeout=WAIT_S)
    for i in range(3):  # more than queue_maxsize: a dead worker must not block the publisher
        bus.publish(note(str(i)))
    assert threads == ["power-loop-events"] + [threading.current_thread().name] * 3
    assert await bus.drain(timeout=WAIT_S)


def test_shutdown_of_an_inline_bus_is_harmless_and_delivery_continues() -> None:
    bus = AgentEventBus()
    seen: list[AgentEvent] = []
    bus.subscribe(None, seen.append)
    bus.shutdown()
    bus.shutdown()
    bus.publish(note())
    assert len(seen) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_publisher=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    queue_maxsize=st.integers(min_value=1, max_value=8),
)
def test_concurrent_publishers_keep_each_stream_in_seq_order_for_every_subscriber(
    per_publisher: list[int], queue_maxsize: int,
) -> None:
    bus = AgentEventBus(sync_dispatch="thread", queue_maxsize=queue_maxsize, on_overflow="block")
    first: list[AgentEvent] = []
    second: list[AgentEvent] = []
    bus.subscribe(T.USER_NOTIFICATION, first.append)
    bus.subscribe(None, second.append, priority=1)
    start = threading.Barrier(len(per_publisher))
    published: dict[int, list[int]] = {}

    def publisher(index: int, count: int) -> None:
        start.wait(WAIT_S)
        seqs = []
        for i in range(count):
            event = note(f"{index}:{i}", session_id=str(index))
            seqs.append(event.seq)
            bus.publish(event)
        published[index] = seqs

    threads = [threading.Thread(target=publisher, args=(i, n)) for i, n in enumerate(per_publisher)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    bus.shutdown(timeout=WAIT_S)

    assert bus.dropped == 0
    assert [e.seq for e in first] == [e.seq for e in second]  # one worker: one order for all
    for index, seqs in published.items():
        stream = [e.seq for e in first if e.session_id == str(index)]
        assert stream == seqs == sorted(seqs)
    assert len(first) == sum(per_publisher)
