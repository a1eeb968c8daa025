"""Follow-ups, cancellation, events, the sync API and aclose."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from loop_support import LoopFactory, roles

from power_loop import (
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    CancellationToken,
    FollowUpQueued,
    LoopClosedError,
    SessionBusyError,
    StatefulAgentLoop,
    StoreConfigError,
    ToolBeforeCtx,
    UsageError,
)
from power_loop.testing import ScriptedLLM


async def test_follow_up_joins_a_running_send_at_the_next_round(make_loop: LoopFactory) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "answer one", "answer two"])
    loop = make_loop(llm)

    async def hold(ctx: ToolBeforeCtx) -> None:
        entered.set()
        await gate.wait()

    loop.hooks.register("tool.before", hold)
    sid = await loop.new_session()
    send = asyncio.create_task(loop.send("first", session_id=sid))
    await entered.wait()
    queued = await loop.follow_up("also this", sid)
    assert isinstance(queued, FollowUpQueued) and queued.queue_depth == 1
    gate.set()
    result = await send
    msgs = await loop.get_messages(sid)
    assert roles(msgs) == ["user", "assistant", "tool", "user", "assistant"]
    assert msgs[3]["content"] == "<follow_up>\nalso this\n</follow_up>"
    assert result.final_text == "answer one" and llm.remaining == 1
    assert loop.store is not None and await loop.store.list_follow_ups(sid) == []


async def test_follow_up_on_idle_session_is_a_send(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM(["idle answer"]))
    sid = await loop.new_session()
    result = await loop.follow_up("hi", sid)
    assert not isinstance(result, FollowUpQueued) and result.final_text == "idle answer"


async def test_cancel_before_start_stops_without_llm_call(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["never"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    token = CancellationToken()
    token.cancel("user stop")
    result = await loop.send("x", session_id=sid, stop_event=token)
    assert result.status == "cancelled" and llm.requests == []
    assert roles(await loop.get_messages(sid)) == ["user"]


@pytest.mark.parametrize("kind", ["token", "asyncio", "threading", "callable"])
async def test_cancel_mid_llm_call_abandons_it_promptly(make_loop: LoopFactory, kind: str) -> None:
    llm = ScriptedLLM([ScriptedLLM.delayed("too late", 5.0)])
    loop = make_loop(llm)
    sid = await loop.new_session()
    token = CancellationToken()
    stop: object = {"token": token, "asyncio": asyncio.Event(), "threading": threading.Event(),
                    "callable": token.is_cancelled}[kind]
    task = asyncio.create_task(loop.send("x", session_id=sid, stop_event=stop))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    token.cancel()
    if isinstance(stop, (asyncio.Event, threading.Event)):
        stop.set()
    t0 = asyncio.get_running_loop().time()
    result = await asyncio.wait_for(task, 2.0)
    assert asyncio.get_running_loop().time() - t0 < 1.0
    assert result.status == "cancelled"
    assert await loop.get_pending(sid) is None


async def test_cancel_between_tool_calls_answers_unstarted_calls(make_loop: LoopFactory) -> None:
    token = CancellationToken()
    calls = [("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2})]
    loop = make_loop(ScriptedLLM([ScriptedLLM.tool_calls(calls), "never"]))
    loop.config = loop.config.with_changes(max_parallel_tool_calls=1)

    def cancel_after_first(ctx: object) -> None:
        token.cancel("enough")

    loop.hooks.register("tool.after", cancel_after_first)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid, stop_event=token)
    assert result.status == "cancelled"
    tools = [m["content"] for m in await loop.get_messages(sid) if m["role"] == "tool"]
    assert tools == ["2", "<cancelled>"]
    assert await loop.get_pending(sid) is None


async def test_events_carry_session_id_and_strictly_increasing_seq(make_loop: LoopFactory) -> None:
    bus = AgentEventBus()
    events: list[object] = []
    bus.subscribe(None, events.append)
    loop = make_loop(ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "two"]), bus=bus)
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    seqs = [e.seq for e in events]  # type: ignore[attr-defined]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e.session_id == sid for e in events)  # type: ignore[attr-defined]
    types = [e.type for e in events]  # type: ignore[attr-defined]
    assert types[0] is AgentEventType.SESSION_STARTED and types[-1] is AgentEventType.SESSION_ENDED
    assert types.count(AgentEventType.USAGE_UPDATED) == 2
    assert AgentEventType.STREAM_DELTA in types  # a stream subscriber turns streaming on


def test_sync_api_runs_outside_an_event_loop(tmp_path: object) -> None:
    loop = StatefulAgentLoop(llm=ScriptedLLM(["sync answer"]), dsn=f"{tmp_path}/s.db")
    sid = loop.new_session_sync()
    assert loop.send_sync("hi", sid).final_text == "sync answer"
    loop.close()


async def test_sync_api_inside_a_running_loop_is_a_usage_error(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM([]))
    with pytest.raises(UsageError) as info:
        loop.new_session_sync()
    assert info.value.code == "usage.invalid"


async def test_aclose_drains_in_flight_sends_then_refuses(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM([ScriptedLLM.delayed("slow answer", 0.2)]))
    sid = await loop.new_session()
    send = asyncio.create_task(loop.send("x", session_id=sid))
    await asyncio.sleep(0.02)
    await loop.aclose()
    assert (await send).final_text == "slow answer"
    with pytest.raises(LoopClosedError) as info:
        await loop.send("again", session_id=sid)
    assert info.value.code == "loop.closed"


def test_store_and_dsn_together_are_refused() -> None:
    with pytest.raises(StoreConfigError):
        StatefulAgentLoop(llm=ScriptedLLM([]), store=object(), dsn="x.db")  # type: ignore[arg-type]
    with pytest.raises(StoreConfigError):
        StatefulAgentLoop(llm=ScriptedLLM([]), dsn="a.db", db_path="b.db")


async def test_invalid_table_prefix_is_refused_on_first_use(tmp_path: object) -> None:
    loop = StatefulAgentLoop(llm=ScriptedLLM([]), dsn=f"{tmp_path}/p.db", table_prefix="x;drop table")
    with pytest.raises(StoreConfigError) as info:
        await loop.new_session()
    assert "x;drop table" in str(info.value)
    assert not await asyncio.to_thread(Path(f"{tmp_path}/p.db").exists)


async def test_the_lease_stays_held_through_a_send_longer_than_its_ttl(make_loop: LoopFactory) -> None:
    # Appends after the first only check the lease (no write); the keeper renews it every
    # ttl/3. A send of ~2 ttl must keep it: another holder is refused throughout.
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("slow", {"seconds": 0.8})]),
                       ScriptedLLM.tool_calls([("slow", {"seconds": 0.8})]), "done"])
    loop = make_loop(llm, config=AgentLoopConfig(lease_ttl_s=1))
    sid = await loop.new_session()
    send = asyncio.ensure_future(loop.send("go", session_id=sid))
    store = await loop.ensure_store()
    refused = 0
    for _ in range(12):
        await asyncio.sleep(0.2)
        if send.done():
            break
        with pytest.raises(SessionBusyError):
            await store.acquire_lease(sid, holder="intruder", ttl_ms=10_000, wait_s=0)
        refused += 1
    result = await send
    assert result.status == "completed" and refused >= 6  # >= 1.2 s: past the 1 s the first append set
    lease = await store.get_lease(sid)
    assert lease is not None and lease.expires_at == 0  # let go at the end of the send
