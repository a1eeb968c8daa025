"""The loop over every backend: warm and cold loops send byte-identical requests, and a
session exported from SQLite continues on any other backend (and prefix)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from store_targets import Backend

from power_loop import StatefulAgentLoop, ToolRegistry
from power_loop.llm.contract import LLMRequest
from power_loop.store.dsn import open_store
from power_loop.store.session_store import SessionStore
from power_loop.testing import ScriptedLLM
from power_loop.testing.scripted import ScriptItem


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: First addend.
            b: Second addend.
        """
        return a + b

    return registry


def wire(request: LLMRequest) -> str:
    """The request as bytes a transport would see (messages, prompt, tools), without the
    ``history_encoded`` hint (a cold load's encoding of the same messages, checked apart)."""
    return json.dumps(dataclasses.asdict(dataclasses.replace(request, history_encoded=None)),
                      ensure_ascii=False, sort_keys=False)


def check_encoded(request: LLMRequest) -> None:
    """A request's ``history_encoded``, if any, is exactly the wire encoding of what it covers."""
    encoded = request.history_encoded
    if encoded is None:
        return
    assert encoded.covers(request.messages)
    covered = request.messages[:encoded.count]
    assert encoded.text == json.dumps(covered, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()


def first_send_script() -> list[ScriptItem]:
    return [ScriptedLLM.tool_calls([("add", {"a": 2, "b": 3})], ids=["call_a"]), "It is 5 — ünïcode ✓."]


async def test_warm_and_cold_loops_send_byte_identical_requests(store: SessionStore) -> None:
    warm = StatefulAgentLoop(llm=ScriptedLLM(first_send_script() * 2), store=store, tool_registry=tools())
    cold_sid = await warm.new_session(system_prompt="be exact")
    warm_sid = await warm.new_session(system_prompt="be exact")
    for sid in (cold_sid, warm_sid):
        await warm.send("What is 2+3?", sid)
    warm.llm = warm_llm = ScriptedLLM(["again"])
    await warm.send("And again?", warm_sid)
    cold = StatefulAgentLoop(llm=(cold_llm := ScriptedLLM(["again"])), store=store, tool_registry=tools())
    await cold.send("And again?", cold_sid)
    assert wire(cold_llm.requests[0]) == wire(warm_llm.requests[0])
    assert len(cold_llm.requests[0].messages) == 5
    check_encoded(cold_llm.requests[0])
    if store.db.dialect.window_json("t", "1 = 1") is not None:  # the engine built the wire JSON
        assert cold_llm.requests[0].history_encoded is not None
    await warm.aclose()
    await cold.aclose()


async def test_a_sqlite_session_continues_on_every_backend(backend: Backend, tmp_path: Path) -> None:
    async with await open_store(str(tmp_path / "source.db")) as source:
        loop = StatefulAgentLoop(llm=ScriptedLLM(first_send_script()), store=source, tool_registry=tools())
        sid = await loop.new_session(system_prompt="be exact")
        await loop.send("What is 2+3?", sid)
        await loop.aclose()
        archive = await source.export_session(sid)
        history = [m.to_message() for m in await source.load_all_messages(sid)]
    async with await open_store(backend.dsn(), table_prefix=backend.prefix("moved_")) as target:
        assert await target.import_session(json.loads(json.dumps(archive))) == sid
        llm = ScriptedLLM(["Still 5."])
        moved = StatefulAgentLoop(llm=llm, store=target, tool_registry=tools())
        result = await moved.send("Sure?", sid)
        assert result.final_text == "Still 5." and result.send_index == 2
        # The model saw the whole imported history, then the new input.
        assert llm.requests[0].messages == [*history, {"role": "user", "content": "Sure?"}]
        rows = await target.load_all_messages(sid)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
        assert [r.send_index for r in rows[-2:]] == [2, 2]
        session = await target.get_session(sid)
        assert session is not None and (session.next_seq, session.send_count) == (7, 2)
        stats = await target.get_session_stats(sid)
        assert stats is not None and stats.sends == 2
        await moved.aclose()
