"""Streamed tool-call arguments reach the bus as typed deltas, on both wires, and
reassemble into exactly the call that is stored (with the registry name, not the wire name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from provider_support import PROVIDERS, Recorder, loop_over

from power_loop import AgentEventBus, AgentEventType, ToolRegistry
from power_loop.testing import FakeLLMServer


def _dotted_registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(name="fs.lookup")
    def lookup(key: str, limit: int = 3) -> str:
        """Look a key up.

        Args:
            key: The key.
            limit: How many.
        """
        return f"{key}:{limit}"

    return registry


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_call_argument_deltas_reassemble_into_the_stored_call(provider: str, tmp_path: Path) -> None:
    bus = AgentEventBus()
    recorder = Recorder(bus)
    with FakeLLMServer(stream_chunk_chars=3) as server:
        async with loop_over(server, provider, tmp_path, tools=_dotted_registry(), bus=bus) as loop:
            sid = await loop.new_session()
            # the model sees the provider-legal wire name, the loop and the bus the registry name
            result = await loop.send('call fs_lookup {"key": "alpha-beta-gamma", "limit": 2}', session_id=sid)
            assert result.status == "completed"
            stored = (await loop.get_messages(sid))[1]["tool_calls"][0]
    deltas = recorder.of(AgentEventType.STREAM_TOOL_CALL_DELTA)
    assert len(deltas) >= 2  # the arguments arrived in pieces
    first = deltas[0].payload
    assert first["name"] == "fs.lookup" and first["tool_call_id"] == stored["id"] and first["index"] == 0
    assembled = "".join(e.payload["arguments_delta"] for e in deltas if e.payload["index"] == 0)
    assert json.loads(assembled) == json.loads(stored["function"]["arguments"]) == {"key": "alpha-beta-gamma",
                                                                                   "limit": 2}
    assert all(e.session_id == sid and e.stream_id == first["stream_id"] for e in deltas)
