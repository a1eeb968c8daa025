"""OpenAI-compatible servers that are not OpenAI: their deviations must not break us."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llm_support import ADD, PERSON_FORMAT, READ_FILE, collect, config, essentials, prompt

from power_loop.contracts.errors import LLMProviderError
from power_loop.llm.contract import LLMRequest
from power_loop.llm.transports.openai import OpenAICompatLLMService
from power_loop.testing import FakeLLMServer, Fault, Rule


def openai_service(server: FakeLLMServer, **kwargs: Any) -> OpenAICompatLLMService:
    return OpenAICompatLLMService(config(server, "openai", **kwargs))


async def test_streamed_chunks_repeating_id_and_name_are_assembled_by_index() -> None:
    with FakeLLMServer(repeat_stream_tool_ids=True) as server:
        llm = openai_service(server)
        request = prompt("call add a=10 b=20 and call fs_read_file path=/tmp/some/long/path.txt",
                         tools=[ADD, READ_FILE])
        plain = await llm.complete(request)
        streamed, _ = await collect(llm, request)
        chunks = [c async for c in llm.stream(request)]
        await llm.close()
    assert essentials(streamed) == essentials(plain)
    assert [c["function"]["name"] for c in streamed.tool_calls] == ["add", "fs.read_file"]  # never "addadd…"
    assert json.loads(streamed.tool_calls[1]["function"]["arguments"]) == {"path": "/tmp/some/long/path.txt"}
    repeated = [d for c in chunks for d in c.delta_tool_calls or () if d["function"].get("name")]
    assert len(repeated) > 2  # the server really repeated the name on every chunk


async def test_stream_without_usage_is_recorded_as_estimated() -> None:
    with FakeLLMServer(stream_usage=False) as server:
        llm = openai_service(server)
        streamed, _ = await collect(llm, prompt("call add a=1 b=2", tools=[ADD]))
        chunks = [c async for c in llm.stream(prompt("hello"))]
        await llm.close()
    usage = streamed.token_usage
    assert usage.is_estimated and usage.prompt_tokens and usage.completion_tokens
    assert usage.total == usage.prompt_tokens + usage.completion_tokens
    final = chunks[-1].token_usage
    assert final is not None and final.is_estimated


async def test_refused_json_schema_falls_back_to_json_object_then_to_the_prompt() -> None:
    with FakeLLMServer(response_formats={"json_object", "text"}) as server:
        server.add_rule(Rule("who", reply='{"name": "Ada", "age": 36}'))
        llm = openai_service(server)
        response = await llm.complete(prompt("who is it?", system_prompt="Sys.", response_format=PERSON_FORMAT))
        assert json.loads(response.content_text) == {"name": "Ada", "age": 36}
        refused, accepted = server.requests[-2].json, server.requests[-1].json
        assert refused["response_format"] == PERSON_FORMAT
        assert accepted["response_format"] == {"type": "json_object"}
        system = accepted["messages"][0]["content"]
        assert system.startswith("Sys.\n\n") and '"required": ["name", "age"]' in system
        assert llm.response_format_mode == "json_object"
        before = len(server.requests)
        await llm.complete(prompt("who again?", response_format=PERSON_FORMAT), on_chunk_delta_text=lambda _: None)
        assert len(server.requests) == before + 1  # remembered: no second refusal
        await llm.close()

    with FakeLLMServer(response_formats={"text"}) as server:
        server.add_rule(Rule("who", reply='{"name": "Bo", "age": 7}'))
        llm = openai_service(server)
        response = await llm.complete(prompt("who is it?", response_format=PERSON_FORMAT))
        assert json.loads(response.content_text) == {"name": "Bo", "age": 7}
        assert [r.json.get("response_format", {}).get("type") for r in server.requests] == [
            "json_schema", "json_object", None]
        assert "JSON Schema" in server.requests[-1].json["messages"][0]["content"]
        assert llm.response_format_mode == "prompt"
        await llm.close()


async def test_other_400s_are_not_mistaken_for_a_refused_response_format() -> None:
    with FakeLLMServer(accepted_models={"real-model"}) as server:
        llm = openai_service(server)
        with pytest.raises(LLMProviderError, match="does not exist") as info:
            await llm.complete(prompt("hi", response_format=PERSON_FORMAT))
        await llm.close()
    assert (info.value.status_code, info.value.retryable) == (404, False)
    assert llm.response_format_mode == "json_schema" and len(server.requests) == 1


async def test_an_invalid_schema_is_reported_not_downgraded(fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("http_error", status=400, message="Invalid schema for response_format 'person':"
                                   " 'additionalProperties' is required to be supplied and to be false"))
    llm = openai_service(fake_server)
    with pytest.raises(LLMProviderError, match="additionalProperties") as info:
        await llm.complete(prompt("hi", response_format=PERSON_FORMAT))
    await llm.close()
    assert info.value.status_code == 400 and llm.response_format_mode == "json_schema"
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ("fs.read_file", {"type": "function", "function": {"name": "fs_read_file"}}),
])
async def test_tool_choice_mapping(fake_server: FakeLLMServer, choice: str, wire: Any) -> None:
    llm = openai_service(fake_server)
    await llm.complete(prompt("call add a=1 b=2", tools=[ADD, READ_FILE], tool_choice=choice))
    await llm.close()
    assert fake_server.requests[-1].json["tool_choice"] == wire


async def test_multimodal_parts_are_sent_as_they_are(fake_server: FakeLLMServer) -> None:
    content = [{"type": "text", "text": "look"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    llm = openai_service(fake_server)
    response = await llm.complete(LLMRequest(messages=[{"role": "user", "content": content}]))
    await llm.close()
    assert response.content_text == "You said: look"
    assert fake_server.requests[-1].json["messages"][0]["content"] == content
