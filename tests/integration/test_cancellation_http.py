"""Cancellation over real HTTP: a stop_event stops a send promptly at the next safe point
(mid-stream, mid-response, during retry backoff, between tool calls) with status
``cancelled``, a consistent store and no dangling tool calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from provider_support import PROVIDERS, loop_over, registry

from power_loop import (
    AgentEvent,
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    CancellationToken,
    LLMRetryPolicy,
    StatefulAgentLoop,
)
from power_loop.testing import FakeLLMServer, Fault, Rule

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)
PROMPT_S = 0.5


async def cancel_after(token: CancellationToken, delay_s: float) -> float:
    await asyncio.sleep(delay_s)
    token.cancel("user pressed stop")
    return time.monotonic()


async def assert_usable(loop: StatefulAgentLoop, sid: str) -> None:
    assert await loop.get_pending(sid) is None
    assert (await loop.send("are you there?", sid)).status == "completed"


async def test_cancel_mid_stream_abandons_the_http_stream(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("slow_stream", delay_s=0.3))
    token = CancellationToken()
    cancelled_at: list[float] = []
    bus = AgentEventBus()

    def on_delta(event: AgentEvent) -> None:
        if not cancelled_at:
            cancelled_at.append(time.monotonic())
            token.cancel("stop mid-stream")

    bus.subscribe(AgentEventType.STREAM_DELTA, on_delta)
    async with loop_over(fake_server, provider, tmp_path, bus=bus) as loop:
        sid = await loop.new_session()
        result = await loop.send("a long answer that streams slowly word by word", sid, stop_event=token)
        returned = time.monotonic()
        assert [m["role"] for m in await loop.get_messages(sid)] == ["user"]
        await assert_usable(loop, sid)
    assert result.status == "cancelled" and cancelled_at
    assert returned - cancelled_at[0] < PROMPT_S


async def test_cancel_while_waiting_for_a_slow_response(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("slow", delay_s=5.0))
    token = CancellationToken()
    async with loop_over(fake_server, provider, tmp_path) as loop:
        sid = await loop.new_session()
        canceller = asyncio.ensure_future(cancel_after(token, 0.2))
        result = await loop.send("hello", sid, stop_event=token)
        returned = time.monotonic()
        await assert_usable(loop, sid)
    assert result.status == "cancelled" and returned - await canceller < PROMPT_S


async def test_cancel_during_retry_backoff(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    fake_server.inject_fault(Fault("http_error", status=503, retry_after_s=5))
    token = CancellationToken()
    config = AgentLoopConfig(retry_policy=LLMRetryPolicy(max_attempts=3, backoff_max=10, total_timeout=None))
    async with loop_over(fake_server, provider, tmp_path, config=config) as loop:
        sid = await loop.new_session()
        canceller = asyncio.ensure_future(cancel_after(token, 0.3))
        result = await loop.send("hello", sid, stop_event=token)
        returned = time.monotonic()
        assert len(fake_server.requests) == 1  # the retry never started
        await assert_usable(loop, sid)
    assert result.status == "cancelled" and returned - await canceller < PROMPT_S


async def test_cancel_between_tool_calls(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    stop = threading.Event()
    ran: list[str] = []

    def on_call(what: str) -> None:
        ran.append(what)
        stop.set()  # the first call asks to stop: the second must not run

    fake_server.add_rule(Rule("twice", tool_calls=[("math_add", {"a": 1, "b": 2}), ("math_add", {"a": 3, "b": 4})]))
    config = AgentLoopConfig(max_parallel_tool_calls=1)
    async with loop_over(fake_server, provider, tmp_path, config=config, tools=registry(on_call=on_call)) as loop:
        sid = await loop.new_session()
        result = await loop.send("add twice", sid, stop_event=stop)
        messages = await loop.get_messages(sid)
        assert len(fake_server.requests) == 1  # no LLM call after the stop
        stop.clear()
        await assert_usable(loop, sid)
    assert result.status == "cancelled" and ran == ["add 1 2"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [m["content"] for m in messages[2:]] == ["3", "<cancelled>"]


@pytest.mark.parametrize("kind", ["asyncio.Event", "threading.Event", "callable", "is_set object"])
async def test_every_kind_of_stop_event_works(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str, kind: str
) -> None:
    fake_server.inject_fault(Fault("slow", delay_s=5.0))
    flag = threading.Event()

    class Flag:
        def is_set(self) -> bool:
            return flag.is_set()

    stop_event: Any
    trigger: Callable[[], None]
    if kind == "asyncio.Event":
        stop_event = asyncio.Event()
        trigger = stop_event.set
    else:
        stop_event = {"threading.Event": flag, "callable": flag.is_set, "is_set object": Flag()}[kind]
        trigger = flag.set
    async with loop_over(fake_server, provider, tmp_path) as loop:
        sid = await loop.new_session()
        asyncio.get_running_loop().call_later(0.2, trigger)
        started = time.monotonic()
        result = await loop.send("hello", sid, stop_event=stop_event)
    assert result.status == "cancelled" and time.monotonic() - started < 0.2 + PROMPT_S
