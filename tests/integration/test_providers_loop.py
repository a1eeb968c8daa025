"""StatefulAgentLoop over each real transport and the fake server: tools, streaming,
structured output, tool_choice and multimodal input behave the same on both providers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from provider_support import FAST_RETRY, PERSON, PROVIDERS, Recorder, loop_over, registry

from power_loop import (
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    StructuredOutputSpec,
    ToolNotFound,
    image_part,
    user_message,
)
from power_loop.contracts.errors import InvalidArgumentError
from power_loop.testing import FakeLLMServer, Fault, Rule

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                    "53de0000000c4944415408d763f8cfc000000301010018dd8db40000000049454e44ae426082")


async def test_tool_round_trip_with_a_dotted_registry_name(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    async with loop_over(fake_server, provider, tmp_path, tools=registry()) as loop:
        sid = await loop.new_session()
        result = await loop.send("call math_add a=2 b=40 and call math_add a=1 b=1", sid)
        messages = await loop.get_messages(sid)
    assert (result.status, result.tool_calls, result.rounds) == ("completed", 2, 2)
    assert result.final_text == "Here is what the tools returned:\n- math_add: 42\n- math_add: 2"
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c["function"]["name"] for c in messages[1]["tool_calls"]] == ["math.add", "math.add"]
    assert result.usage["calls"] == 2 and result.usage["prompt_tokens"] > 0


async def test_stream_events_reach_the_bus(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    bus = AgentEventBus()
    recorder = Recorder(bus)
    async with loop_over(fake_server, provider, tmp_path, tools=registry(), bus=bus) as loop:
        sid = await loop.new_session()
        result = await loop.send("call math_add a=1 b=2", sid)
    started = recorder.of(AgentEventType.STREAM_STARTED)
    deltas = recorder.of(AgentEventType.STREAM_DELTA)
    completed = recorder.of(AgentEventType.STREAM_COMPLETED)
    tool_deltas = recorder.of(AgentEventType.STREAM_TOOL_CALL_DELTA)
    # two streamed calls: the tool round (tool-call deltas, no text), then the answer
    assert len(started) == len(completed) == 2
    assert tool_deltas and {e.stream_id for e in tool_deltas} == {started[0].stream_id}
    assert completed[0].payload["text"] == ""
    assert len(deltas) > 1 and "".join(e.payload["text"] for e in deltas) == result.final_text
    assert completed[1].payload["text"] == result.final_text
    assert {e.stream_id for e in deltas} == {started[1].stream_id}
    assert all(r.json.get("stream") is True for r in fake_server.requests)


async def test_structured_output_is_parsed(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    config = AgentLoopConfig(output_schema={"name": "person", "schema": PERSON})
    async with loop_over(fake_server, provider, tmp_path, config=config) as loop:
        sid = await loop.new_session()
        result = await loop.send("Extract: name=Ada age=36", sid)
    assert (result.status, result.structured, result.structured_error) == (
        "completed", {"name": "Ada", "age": 36}, None)
    assert json.loads(result.final_text) == {"name": "Ada", "age": 36}
    body = fake_server.requests[-1].json
    if provider == "openai":
        assert body["response_format"]["json_schema"]["name"] == "person"
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "person"}


async def test_an_invalid_reply_is_sent_back_once_for_repair(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.add_rule(Rule("does not match the required JSON schema", reply='{"name": "Ada", "age": 36}'))
    fake_server.add_rule(Rule("Extract", reply='{"name": "Ada"}'))
    config = AgentLoopConfig(output_schema=StructuredOutputSpec(name="person", schema=PERSON))
    async with loop_over(fake_server, provider, tmp_path, config=config) as loop:
        sid = await loop.new_session()
        result = await loop.send("Extract the person", sid)
        messages = await loop.get_messages(sid)
    assert (result.status, result.structured, result.structured_error) == (
        "completed", {"name": "Ada", "age": 36}, None)
    assert result.rounds == 2 and len(fake_server.requests) == 2
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "missing required field 'age'" in messages[2]["content"]


async def test_a_reply_still_invalid_after_repair_sets_structured_error(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.add_rule(Rule(".", reply='{"name": "Ada", "age": "old"}'))
    config = AgentLoopConfig(output_schema={"name": "person", "schema": PERSON})
    async with loop_over(fake_server, provider, tmp_path, config=config) as loop:
        sid = await loop.new_session()
        result = await loop.send("Extract the person", sid)
        again = await loop.send("And now?", sid)  # the session stays usable
    assert (result.status, result.structured, result.structured_error) == ("completed", None, "wrong_type:age")
    assert len(fake_server.requests) == 4 and again.status == "completed"


async def test_per_send_output_schema_and_tool_choice(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    async with loop_over(fake_server, provider, tmp_path, tools=registry()) as loop:
        sid = await loop.new_session()
        shaped = await loop.send("name=Bo age=7", sid, output_schema={"name": "person", "schema": PERSON})
        plain = await loop.send("hello", sid)
        forced = await loop.send("please add a=1 b=2", sid, tool_choice="math.add")
        with pytest.raises(ToolNotFound):
            await loop.send("hi", sid, tool_choice="nope")
        with pytest.raises(InvalidArgumentError):
            await loop.send("hi", sid, output_schema={"name": "person"})
        assert len(await loop.get_messages(sid)) == 2 + 2 + 4  # the refused sends wrote nothing
    assert shaped.structured == {"name": "Bo", "age": 7}
    assert plain.structured is None and plain.final_text == "You said: hello"
    first_of_forced = fake_server.requests[-2].json
    if provider == "openai":
        assert "response_format" not in fake_server.requests[1].json
        assert first_of_forced["tool_choice"] == {"type": "function", "function": {"name": "math_add"}}
    else:
        assert "tool_choice" not in fake_server.requests[1].json
        assert first_of_forced["tool_choice"] == {"type": "tool", "name": "math_add"}
    assert forced.tool_calls == 1 and forced.status == "completed"


async def test_config_tool_choice_is_mapped(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    config = AgentLoopConfig(tool_choice="none")
    async with loop_over(fake_server, provider, tmp_path, tools=registry(), config=config) as loop:
        sid = await loop.new_session()
        result = await loop.send("call math_add a=1 b=2", sid)
    assert result.tool_calls == 0 and result.final_text.startswith("You said")
    assert fake_server.requests[-1].json["tool_choice"] in ("none", {"type": "none"})


async def test_an_image_reaches_the_provider(fake_server: FakeLLMServer, tmp_path: Path, provider: str) -> None:
    async with loop_over(fake_server, provider, tmp_path) as loop:
        sid = await loop.new_session()
        result = await loop.send(user_message("what is in this picture?", image_part(PNG)), sid)
        stored = (await loop.get_messages(sid))[0]
    assert result.final_text == "You said: what is in this picture?"
    assert stored["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    sent = fake_server.requests[-1].json["messages"][-1]["content"]
    if provider == "openai":
        assert sent[1] == stored["content"][1]
    else:
        assert sent[1]["type"] == "image" and sent[1]["source"]["media_type"] == "image/png"


async def test_a_retried_stream_completes_with_the_last_attempts_text(
    fake_server: FakeLLMServer, tmp_path: Path, provider: str
) -> None:
    fake_server.inject_fault(Fault("truncated_stream"))
    bus = AgentEventBus()
    recorder = Recorder(bus)
    async with loop_over(fake_server, provider, tmp_path, bus=bus,
                         config=AgentLoopConfig(retry_policy=FAST_RETRY)) as loop:
        sid = await loop.new_session()
        result = await loop.send("a sentence long enough to be cut in the middle", sid)
    (completed,) = recorder.of(AgentEventType.STREAM_COMPLETED)
    assert result.status == "completed" and completed.payload["text"] == result.final_text
    assert len(recorder.of(AgentEventType.LLM_RETRY_ATTEMPTED)) == 1
