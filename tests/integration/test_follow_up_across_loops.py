"""A follow-up from another lease holder (another process, or another loop) joins the
running send through the durable queue; the send finds it via the probe in its writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from power_loop import FollowUpQueued, StatefulAgentLoop, ToolRegistry
from power_loop.testing import ScriptedLLM


async def test_follow_up_from_another_holder_is_queued_and_drained(tmp_path: Path) -> None:
    db = str(tmp_path / "f.db")
    entered, gate = asyncio.Event(), asyncio.Event()
    registry = ToolRegistry()

    @registry.tool
    async def wait_a_bit() -> str:
        """Wait until released."""
        entered.set()
        await gate.wait()
        return "waited"

    llm = ScriptedLLM([ScriptedLLM.tool_calls([("wait_a_bit", {})]), "answer to both"])
    running = StatefulAgentLoop(llm=llm, dsn=db, tool_registry=registry)
    other = StatefulAgentLoop(llm=ScriptedLLM([]), dsn=db)
    sid = await running.new_session()
    send = asyncio.create_task(running.send("first question", session_id=sid))
    await asyncio.wait_for(entered.wait(), 5)
    queued = await other.follow_up("and a second one", sid)
    assert isinstance(queued, FollowUpQueued) and queued.queue_depth == 1
    gate.set()
    result = await asyncio.wait_for(send, 10)
    assert result.status == "completed" and result.final_text == "answer to both"
    contents = [m["content"] for m in await running.get_messages(sid)]
    assert "<follow_up>\nand a second one\n</follow_up>" in contents
    assert llm.last_request.messages[-1]["content"] == "<follow_up>\nand a second one\n</follow_up>"
    assert running.store is not None and await running.store.list_follow_ups(sid) == []
    await running.aclose()
    await other.aclose()


async def test_leftover_follow_up_is_delivered_by_the_next_send(tmp_path: Path) -> None:
    db = str(tmp_path / "left.db")
    loop = StatefulAgentLoop(llm=ScriptedLLM(["one", "two"]), dsn=db)
    sid = await loop.new_session()
    await loop.send("hello", session_id=sid)
    assert loop.store is not None
    await loop.store.enqueue_follow_up(sid, "queued while nobody ran")  # e.g. its runner died
    result = await loop.send("next", session_id=sid)
    contents = [m["content"] for m in await loop.get_messages(sid)]
    assert contents[2:] == ["next", "<follow_up>\nqueued while nobody ran\n</follow_up>", "two"]
    assert result.final_text == "two"
    assert await loop.store.list_follow_ups(sid) == []
    await loop.aclose()
