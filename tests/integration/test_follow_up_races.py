"""Follow-ups and other sends around a send's last answer (found in review): the lease
is let go only when the run is over, and no queued input is left behind a finished send."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from power_loop import AgentLoopConfig, FollowUpQueued, HookPoint, StatefulAgentLoop
from power_loop.testing import ScriptedLLM

CONFIG = AgentLoopConfig(lease_wait_s=5.0)


def contents(messages: list[dict[str, Any]]) -> list[Any]:
    return [m["content"] for m in messages]


async def test_a_structured_repair_keeps_the_session_until_it_is_done(tmp_path: Path) -> None:
    """The answer that fails the schema is not the last write: another loop's send waits
    for the repair instead of running between (which made the repair raise LeaseLostError)."""
    db = str(tmp_path / "r.db")
    cfg = AgentLoopConfig(lease_wait_s=5.0, output_schema={"name": "o", "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}})
    a = StatefulAgentLoop(llm=ScriptedLLM(["not json", '{"a": 1}']), dsn=db, config=cfg)
    b = StatefulAgentLoop(llm=ScriptedLLM(["b answer"]), dsn=db, config=CONFIG)
    sid = await a.new_session()
    tasks: list[asyncio.Task[Any]] = []

    async def round_end(ctx: object) -> None:
        if not tasks:
            tasks.append(asyncio.create_task(b.send("from B", sid)))
            await asyncio.sleep(0.3)

    a.hooks.register(HookPoint.ROUND_END, round_end)
    result = await a.send("give json", sid)
    assert result.status == "completed" and result.structured == {"a": 1}
    assert (await tasks[0]).status == "completed"
    messages = await a.get_messages(sid)
    assert contents(messages)[:4] == ["give json", "not json", messages[2]["content"], '{"a": 1}']
    assert contents(messages)[4:] == ["from B", "b answer"]  # B ran after A, not inside it
    await a.aclose()
    await b.aclose()


async def test_a_follow_up_from_another_loop_during_the_last_call_joins_the_send(tmp_path: Path) -> None:
    """Queued while the running send waits for its final answer: that answer's commit
    keeps the lease (inputs are queued) and the send goes on to answer it."""
    db = str(tmp_path / "f.db")
    llm = ScriptedLLM([ScriptedLLM.delayed("first answer", 0.5), "answer to the follow-up"])
    a = StatefulAgentLoop(llm=llm, dsn=db, config=CONFIG)
    b = StatefulAgentLoop(llm=ScriptedLLM([]), dsn=db, config=CONFIG)
    sid = await a.new_session()
    send = asyncio.create_task(a.send("hi", sid))
    await asyncio.sleep(0.2)
    queued = await b.follow_up("also consider X", sid)
    assert isinstance(queued, FollowUpQueued)
    result = await asyncio.wait_for(send, 10)
    assert result.final_text == "answer to the follow-up" and result.status == "completed"
    assert a.store is not None and await a.store.list_follow_ups(sid) == []
    assert contents(await a.get_messages(sid))[2] == "<follow_up>\nalso consider X\n</follow_up>"
    await a.aclose()
    await b.aclose()


async def test_a_follow_up_after_the_send_let_go_is_sent_on_its_own(tmp_path: Path) -> None:
    """Once the running send has let its lease go, another loop's follow-up is not queued
    behind it (where nothing would run it): it runs as its own send."""
    db = str(tmp_path / "g.db")
    a = StatefulAgentLoop(llm=ScriptedLLM(["first answer"]), dsn=db, config=CONFIG)
    b = StatefulAgentLoop(llm=ScriptedLLM(["second answer"]), dsn=db, config=CONFIG)
    sid = await a.new_session()
    released = asyncio.Event()
    done = asyncio.Event()

    async def round_end(ctx: object) -> None:
        released.set()  # the final answer (and the lease release) is committed
        await done.wait()

    a.hooks.register(HookPoint.ROUND_END, round_end)
    send = asyncio.create_task(a.send("hi", sid))
    await asyncio.wait_for(released.wait(), 5)
    # a's lease row is released but a still runs: b must not queue into it
    assert a.store is not None
    held = await a.store.get_lease(sid)
    assert held is not None and not held.is_live(2**62 - 1)
    result = await b.follow_up("and then?", sid)
    assert getattr(result, "final_text", None) == "second answer"
    done.set()
    await asyncio.wait_for(send, 10)
    assert await a.store.list_follow_ups(sid) == []
    await a.aclose()
    await b.aclose()


async def test_a_local_follow_up_after_the_last_answer_is_still_answered(tmp_path: Path) -> None:
    """Arriving while the send's ROUND_END hook runs (after its final answer let the lease
    go), the input is drained: the run takes the lease back and answers it."""
    db = str(tmp_path / "h.db")
    llm = ScriptedLLM(["first answer", "answer to more"])
    a = StatefulAgentLoop(llm=llm, dsn=db, config=CONFIG)
    sid = await a.new_session()
    fired: list[Any] = []

    async def round_end(ctx: object) -> None:
        if not fired:
            fired.append(await a.follow_up("one more thing", sid))

    a.hooks.register(HookPoint.ROUND_END, round_end)
    result = await a.send("hi", sid)
    assert isinstance(fired[0], FollowUpQueued)
    assert result.final_text == "answer to more"
    assert a.store is not None and await a.store.list_follow_ups(sid) == []
    held = await a.store.get_lease(sid)
    assert held is not None and held.expires_at == 0  # let go again at the end
    await a.aclose()


async def test_follow_ups_with_content_parts_keep_their_parts(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    llm = ScriptedLLM([ScriptedLLM.delayed("first", 0.3), "second"])
    a = StatefulAgentLoop(llm=llm, dsn=db, config=CONFIG)
    sid = await a.new_session()
    send = asyncio.create_task(a.send("hi", sid))
    await asyncio.sleep(0.1)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    await a.follow_up({"role": "user", "content": [{"type": "text", "text": "look at this"}, image]}, sid)
    await a.follow_up("and this text", sid)
    await asyncio.wait_for(send, 10)
    drained = (await a.get_messages(sid))[2]["content"]
    assert drained == [{"type": "text", "text": "<follow_up>"}, {"type": "text", "text": "look at this"}, image,
                       {"type": "text", "text": "and this text"}, {"type": "text", "text": "</follow_up>"}]
    await a.aclose()
