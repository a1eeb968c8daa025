"""Pending tool calls: SessionPendingError, heal_pending, resume, abort_pending."""

from __future__ import annotations

import pytest
from loop_support import LoopFactory, roles

from power_loop import SessionPendingError, StatefulAgentLoop, ToolRegistry
from power_loop.testing import ScriptedLLM


async def _pending_session(make_loop: LoopFactory, db: str) -> tuple[StatefulAgentLoop, str]:
    """A session whose last assistant turn has two unanswered calls (no registry ran them)."""
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})])])
    loop = make_loop(llm, tools=None, db=db)
    sid = await loop.new_session()
    result = await loop.send("compute", session_id=sid)
    assert result.status == "pending_tools"
    return loop, sid


async def test_send_on_pending_session_raises_and_writes_nothing(make_loop: LoopFactory, tmp_path: object) -> None:
    loop, sid = await _pending_session(make_loop, f"{tmp_path}/p.db")
    before = await loop.get_messages(sid)
    with pytest.raises(SessionPendingError) as info:
        await loop.send("next", session_id=sid)
    err = info.value
    assert err.code == "session.pending" and err.assistant_seq == 2
    assert [c["id"] for c in err.pending_tool_calls] == ["call_1", "call_2"]
    for word in ("resume", "abort_pending", "heal_pending=True"):
        assert word in str(err)
    assert await loop.get_messages(sid) == before


async def test_heal_pending_aborts_calls_then_sends(make_loop: LoopFactory, tmp_path: object,
                                                    registry: ToolRegistry) -> None:
    db = f"{tmp_path}/h.db"
    _, sid = await _pending_session(make_loop, db)
    llm = ScriptedLLM(["healed answer"])
    loop = make_loop(llm, db=db)
    result = await loop.send("go on", session_id=sid, heal_pending=True)
    assert result.status == "completed"
    msgs = await loop.get_messages(sid)
    assert roles(msgs) == ["user", "assistant", "tool", "tool", "user", "assistant"]
    assert msgs[2]["content"] == msgs[3]["content"] == "<aborted: auto-healed by send(heal_pending=True)>"


async def test_resume_runs_unresolved_calls_once_and_continues(make_loop: LoopFactory, tmp_path: object) -> None:
    db = f"{tmp_path}/r.db"
    _, sid = await _pending_session(make_loop, db)
    llm = ScriptedLLM(["3 and 7"])
    loop = make_loop(llm, db=db)
    result = await loop.resume(sid)
    assert result.status == "completed" and result.final_text == "3 and 7"
    assert result.tool_calls == 2
    msgs = await loop.get_messages(sid)
    assert [m["content"] for m in msgs[2:4]] == ["3", "7"]
    assert await loop.get_pending(sid) is None


async def test_resume_with_one_call_already_answered_runs_only_the_other(
    make_loop: LoopFactory, tmp_path: object
) -> None:
    db = f"{tmp_path}/r2.db"
    first, sid = await _pending_session(make_loop, db)
    assert first.store is not None
    # answer call_1 by hand, as a crash between two results would leave it
    from power_loop.store.rows import NewMessage

    row = await first.store.get_session(sid)
    assert row is not None
    await first.store.append_messages(sid, [NewMessage(role="tool", content="3", tool_call_id="call_1")],
                                      expected_next_seq=row.next_seq)
    llm = ScriptedLLM(["done"])
    loop = make_loop(llm, db=db)
    pending = await loop.get_pending(sid)
    assert pending is not None and [c["id"] for c in pending["tool_calls"]] == ["call_2"]
    result = await loop.resume(sid)
    assert result.tool_calls == 1
    msgs = await loop.get_messages(sid)
    assert [(m.get("tool_call_id"), m["content"]) for m in msgs if m["role"] == "tool"] == [
        ("call_1", "3"), ("call_2", "7")]


async def test_abort_pending_closes_calls_without_running_them(make_loop: LoopFactory, tmp_path: object) -> None:
    db = f"{tmp_path}/a.db"
    _, sid = await _pending_session(make_loop, db)
    loop = make_loop(ScriptedLLM(["after abort"]), db=db)
    assert await loop.abort_pending(sid, reason="operator") == 2
    assert await loop.abort_pending(sid) == 0
    msgs = await loop.get_messages(sid)
    assert [m["content"] for m in msgs[2:4]] == ["<aborted: operator>", "<aborted: operator>"]
    assert (await loop.send("next", session_id=sid)).final_text == "after abort"


async def test_resume_without_pending_runs_one_more_round(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["one", "two"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    await loop.send("hi", session_id=sid)
    result = await loop.resume(sid)
    assert result.final_text == "two" and result.send_index == 1  # it continues send 1
    assert roles(await loop.get_messages(sid)) == ["user", "assistant", "assistant"]
