"""The window cache is a pure accelerator: warm and cold loops send byte-identical requests,
and a warm window made stale by another writer is detected and reloaded."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from power_loop import (
    LLMProviderConfig,
    StatefulAgentLoop,
    ToolRegistry,
    create_llm_service_from_config,
)
from power_loop.store.dsn import open_store
from power_loop.testing import FakeLLMServer, ScriptedLLM


def _registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool
    def get_weather(city: str) -> dict[str, object]:
        """Weather for a city.

        Args:
            city: City name.
        """
        return {"city": city, "temp_c": 21, "note": "ünïcode ✓"}

    return reg


SERVER_ENV = {"postgres": "POWER_LOOP_TEST_PG_DSN", "mysql": "POWER_LOOP_TEST_MYSQL_DSN"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
async def test_warm_and_cold_loops_send_byte_identical_requests(
    backend: str, fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    """A warm loop's request equals, byte for byte, that of a loop with an empty cache
    continuing the same durable state (a copy of the SQLite file; on a server, the same
    session exported and imported under another prefix)."""
    def llm() -> object:
        return create_llm_service_from_config(
            LLMProviderConfig(base_url=fake_server.base_url, api_key="k", model="fake-model"))

    if backend == "sqlite":
        dsn = str(tmp_path / "warm.db")
    else:
        dsn = os.environ.get(SERVER_ENV[backend], "")
        if not dsn:
            pytest.skip(f"{backend}: set {SERVER_ENV[backend]} to run against a server")
    warm_prefix, cold_prefix = f"w{uuid.uuid4().hex[:8]}_", f"c{uuid.uuid4().hex[:8]}_"
    warm = StatefulAgentLoop(llm=llm(), dsn=dsn, table_prefix=warm_prefix, tool_registry=_registry())  # type: ignore[arg-type]
    cold_dsn = dsn
    try:
        sid = await warm.new_session(system_prompt="Pinned prompt.")
        for text in ("My favorite color is teal.", "What is the weather in Paris?", "call get_weather city=Oslo"):
            await warm.send(text, session_id=sid)
        assert warm.store is not None
        if backend == "sqlite":
            await warm.store.checkpoint()
            cold_dsn = str(tmp_path / "cold.db")
            shutil.copy(dsn, cold_dsn)
            cold_prefix = warm_prefix
        else:
            archive = await warm.store.export_session(sid)
            async with await open_store(dsn, table_prefix=cold_prefix) as other:
                await other.import_session(archive)

        fake_server.clear_requests()
        await warm.send("What is the weather in Rome?", session_id=sid)
        warm_bodies = [r.body for r in fake_server.requests]

        fake_server.clear_requests()
        cold = StatefulAgentLoop(llm=llm(), dsn=cold_dsn, table_prefix=cold_prefix,  # type: ignore[arg-type]
                                 tool_registry=_registry())
        await cold.send("What is the weather in Rome?", session_id=sid)
        cold_bodies = [r.body for r in fake_server.requests]
        await cold.aclose()

        assert len(warm_bodies) == 2  # a tool round and the answer
        assert warm_bodies == cold_bodies
    finally:
        await warm.aclose()
        if backend != "sqlite":
            from test_multiprocess_lease_store import drop_prefix

            await drop_prefix(dsn, warm_prefix)
            await drop_prefix(dsn, cold_prefix)


async def test_stale_warm_window_is_fenced_and_reloaded(tmp_path: Path) -> None:
    db = str(tmp_path / "stale.db")
    first_llm = ScriptedLLM(["a1", "a3"])
    first = StatefulAgentLoop(llm=first_llm, dsn=db)
    second = StatefulAgentLoop(llm=ScriptedLLM(["a2"]), dsn=db)
    sid = await first.new_session()
    await first.send("m1", session_id=sid)          # first's window is warm
    await second.send("m2", session_id=sid)         # another writer appends behind its back
    result = await first.send("m3", session_id=sid)  # must see m2, not overwrite or lose it
    assert result.final_text == "a3"
    assert [m["content"] for m in first_llm.last_request.messages] == ["m1", "a1", "m2", "a2", "m3"]
    assert [m["content"] for m in await second.get_messages(sid)] == ["m1", "a1", "m2", "a2", "m3", "a3"]
    assert first.cache_stats.hits >= 1
    await first.aclose()
    await second.aclose()


async def test_pending_seen_in_a_stale_window_is_confirmed_before_refusing(tmp_path: Path) -> None:
    db = str(tmp_path / "pending.db")
    first = StatefulAgentLoop(llm=ScriptedLLM([ScriptedLLM.tool_calls([("x", {})])]), dsn=db)
    sid = await first.new_session()
    assert (await first.send("go", session_id=sid)).status == "pending_tools"
    other = StatefulAgentLoop(llm=ScriptedLLM([]), dsn=db)
    assert await other.abort_pending(sid) == 1  # resolved elsewhere; first's cache still says pending
    first.llm = ScriptedLLM(["fine"])
    assert (await first.send("next", session_id=sid)).final_text == "fine"
    await first.aclose()
    await other.aclose()
