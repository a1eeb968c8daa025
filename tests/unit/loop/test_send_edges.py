"""Edges of a send found in review: what a refused or bad call leaves behind, copies
handed to callers, the budget before the round limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from loop_support import LoopFactory

from power_loop import (
    AgentLoopConfig,
    InvalidArgumentError,
    LLMResponse,
    SessionPendingError,
    StatefulAgentLoop,
    ToolDefinition,
    ToolNotFound,
    ToolRegistry,
)
from power_loop.testing import ScriptedLLM

QUICK = AgentLoopConfig(lease_wait_s=0.3)


async def test_a_refused_send_leaves_the_session_free_for_other_loops(make_loop: LoopFactory) -> None:
    """``SessionPendingError`` (and a ``resume`` without tools) must not keep the lease:
    another loop can abort the pending calls at once."""
    a = make_loop(ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 2})])]), config=QUICK, tools=None)
    sid = await a.new_session()
    assert (await a.send("hi", sid)).status == "pending_tools"  # no tools offered: the calls wait
    c = make_loop(ScriptedLLM([]), config=QUICK)
    with pytest.raises(SessionPendingError):
        await c.send("again", sid)
    d = make_loop(ScriptedLLM([]), config=QUICK, tools=None)
    assert (await d.resume(sid)).status == "pending_tools"
    b = make_loop(ScriptedLLM([]), config=QUICK)
    assert await b.abort_pending(sid) == 1  # no SessionBusyError: nobody holds the session
    assert (await c.send("now", sid)).status in ("completed", "degraded")  # c re-takes its claim


async def test_bad_arguments_change_nothing_and_leave_no_claim(make_loop: LoopFactory) -> None:
    a = make_loop(ScriptedLLM(["one", "two"]), config=QUICK)
    sid = await a.new_session()
    with pytest.raises(InvalidArgumentError, match="stop_event"):
        await a.send("hi", sid, stop_event=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="system_prompt must be a string"):
        await a.send("hi", sid, system_prompt=123)  # type: ignore[arg-type]
    assert await a.get_messages(sid) == []
    queued = await a.follow_up("hello", sid)  # nothing is running: a normal send
    assert getattr(queued, "status", None) == "completed"
    b = make_loop(ScriptedLLM(["b"]), config=QUICK)
    assert (await b.send("from b", sid)).status == "completed"  # no lease left behind


async def test_pending_calls_handed_out_are_copies(make_loop: LoopFactory) -> None:
    """A host editing the pending calls it was given (to redact them for a UI) changes
    neither the loop's cache nor what is answered later."""
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 2})], ids=["call_1"]), "done"])
    a = make_loop(llm, config=QUICK, tools=None)
    sid = await a.new_session()
    result = await a.send("go", sid)
    assert result.status == "pending_tools"
    result.pending_tool_calls[0]["function"]["arguments"] = '{"a": 0}'
    pending = await a.get_pending(sid)
    assert pending is not None
    pending["tool_calls"][0]["id"] = "changed"
    with pytest.raises(SessionPendingError) as info:
        await a.send("probe", sid)
    info.value.pending_tool_calls[0]["id"] = "changed too"
    again = await a.get_pending(sid)  # a's cached window is untouched
    assert again is not None and again["tool_calls"][0]["id"] == "call_1"
    assert again["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'
    runner = make_loop(llm, config=QUICK)  # with the tools
    await runner.resume(sid)
    messages = await runner.get_messages(sid)
    assert messages == await a.get_messages(sid)  # a's cache agrees with the store
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'
    assert messages[2]["tool_call_id"] == "call_1" and messages[2]["content"] == "3"


async def test_the_budget_stops_a_run_before_the_round_limit_calls_again(make_loop: LoopFactory) -> None:
    """With the token budget spent and the round limit reached at the same boundary, no
    further LLM call is made (no round-limit summary): the status is ``budget_exceeded``."""
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 2})]), "summary"])
    a = make_loop(llm, config=AgentLoopConfig(max_rounds=1, max_tokens_per_run=1))
    sid = await a.new_session()
    result = await a.send("hi", sid)
    assert result.status == "budget_exceeded"
    assert result.usage["calls"] == 1 and len(llm.requests) == 1


async def test_text_utf8_cannot_hold_is_stored_escaped_or_refused(tmp_path: Path) -> None:
    """A tool output or a model reply with a lone surrogate (``os.fsdecode`` of a non-UTF-8
    file name) is stored with it escaped, so the send completes and a resume never
    fails on it; the same in the user's own input is refused up front."""
    registry = ToolRegistry()
    registry.register(ToolDefinition(name="ls", description="List files."), lambda: os.fsdecode(b"file\xff.txt"))
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("ls", {})]), "saw file\udcff.txt"])
    loop = StatefulAgentLoop(llm=llm, dsn=str(tmp_path / "s.db"), tool_registry=registry)
    sid = await loop.new_session()
    result = await loop.send("list files", sid)
    assert result.status == "completed" and result.final_text == "saw file\\udcff.txt"
    messages = await loop.get_messages(sid)
    assert messages[2]["content"] == "file\\udcff.txt"
    with pytest.raises(InvalidArgumentError, match="UTF-8 cannot encode"):
        await loop.send("bad \ud800 input", sid)
    with pytest.raises(InvalidArgumentError, match="UTF-8 cannot encode"):
        await loop.send({"role": "user", "content": [{"type": "text", "text": "\udfff"}]}, sid)
    assert len(await loop.get_messages(sid)) == 4
    await loop.aclose()


async def test_tool_calls_without_ids_get_unique_ones(make_loop: LoopFactory) -> None:
    """A custom service may return calls with no id, or one id twice: each still gets
    its own result (else the session would stay pending for good)."""
    call = {"type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    twice = {**call, "id": "dup"}
    llm = ScriptedLLM([LLMResponse(raw_text="", tool_calls=[call, dict(call)]),
                       LLMResponse(raw_text="", tool_calls=[twice, dict(twice)]), "done"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    result = await loop.send("go", sid)
    assert result.status == "completed" and result.tool_calls == 4
    assert await loop.get_pending(sid) is None
    messages = await loop.get_messages(sid)
    ids = [c["id"] for m in messages if m.get("tool_calls") for c in m["tool_calls"]]
    assert ids == ["call_r1_0", "call_r1_1", "dup", "call_r2_1"]
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ids


async def test_a_forced_tool_choice_must_name_an_offered_tool(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM(["x"]))
    sid = await loop.new_session()
    with pytest.raises(ToolNotFound):
        await loop.send("go", sid, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert await loop.get_messages(sid) == []
