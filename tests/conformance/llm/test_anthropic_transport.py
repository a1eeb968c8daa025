"""The Anthropic Messages transport over real HTTP against the fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from llm_support import ADD, PERSON_FORMAT, READ_FILE, config, prompt

from power_loop.contracts.errors import LLMProviderError, MissingExtraError
from power_loop.llm.config import LLMProviderConfig, create_llm_service_from_config
from power_loop.llm.contract import LLMRequest, LLMService
from power_loop.llm.retry import LLMRetryPolicy, with_retry
from power_loop.llm.transports.anthropic import AnthropicLLMService
from power_loop.testing import FakeLLMServer, Fault, Rule


@pytest.fixture
async def llm(fake_server: FakeLLMServer) -> AsyncIterator[AnthropicLLMService]:
    service = AnthropicLLMService(config(fake_server, "anthropic"))
    yield service
    await service.close()


def wire_body(server: FakeLLMServer) -> dict[str, Any]:
    return server.requests[-1].json


async def test_plain_answer(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    assert isinstance(llm, LLMService) and llm.provider == "anthropic"
    response = await llm.complete(prompt("hello", system_prompt="Be brief."))
    assert (response.content_text, response.finish_reason, response.model) == ("You said: hello", "stop", "fake-model")
    assert response.debug["stop_reason"] == "end_turn" and response.ok
    recorded = fake_server.requests[-1]
    assert recorded.path == "/v1/messages" and recorded.headers["anthropic-version"]
    assert recorded.json == {
        "max_tokens": 8000,
        "messages": [{"role": "user", "content": "hello"}],
        "model": "fake-model",
        "system": "Be brief.",
        "temperature": 0.0,
    }


async def test_a_trailing_v1_in_base_url_is_dropped(fake_server: FakeLLMServer) -> None:
    service = AnthropicLLMService(config(fake_server, "anthropic", base_url=fake_server.base_url))
    assert (await service.complete(prompt("hi"))).content_text == "You said: hi"
    await service.close()
    assert fake_server.requests[-1].path == "/v1/messages"


async def test_request_fields_and_raw_body_fields(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    await llm.complete(prompt("hi", model="claude-x", max_tokens=5, temperature=0.3, extra={"top_k": 4}))
    body = wire_body(fake_server)
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_k"]) == ("claude-x", 5, 0.3, 4)
    no_temperature = AnthropicLLMService(config(fake_server, "anthropic", temperature=None, max_tokens=77))
    await no_temperature.complete(prompt("hi"))
    await no_temperature.close()
    assert "temperature" not in wire_body(fake_server) and wire_body(fake_server)["max_tokens"] == 77


async def test_history_maps_to_alternating_turns(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "name": "memory_facts", "content": "User likes tea."},
        {"role": "user", "content": "call add a=1 b=2 and call add a=3 b=4"},
        {"role": "assistant", "content": "On it.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "t2", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}},
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": "3"},
        {"role": "tool", "tool_call_id": "t2", "content": "7"},
        {"role": "user", "content": "thanks"},
        {"role": "user", "content": "   "},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "and now?"},
    ]
    await llm.complete(LLMRequest(messages=messages, system_prompt="Sys.", tools=[ADD]))
    body = wire_body(fake_server)
    assert body["system"] == "Sys.\n\nUser likes tea."
    assert body["messages"] == [
        {"role": "user", "content": "call add a=1 b=2 and call add a=3 b=4"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "On it."},
            {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1, "b": 2}},
            {"type": "tool_use", "id": "t2", "name": "add", "input": {"a": 3, "b": 4}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "3"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "7"},
            {"type": "text", "text": "thanks"},
            {"type": "text", "text": "and now?"},
        ]},
    ]
    assert body["tools"] == [{"name": "add", "description": "Add two integers.",
                              "input_schema": ADD["function"]["parameters"]}]
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'  # not mutated


async def test_malformed_history_arguments_are_sent_as_an_empty_input(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a": tru'}},
            {"id": "t2", "type": "function", "function": {"name": "add", "arguments": "[1, 2]"}},
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: invalid JSON"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: not an object"},
    ]
    response = await llm.complete(LLMRequest(messages=messages, tools=[ADD]))
    uses = wire_body(fake_server)["messages"][1]["content"]
    assert [u["input"] for u in uses] == [{}, {}]
    assert response.content_text.startswith("Here is what the tools returned:")


async def test_tool_names_go_out_legal_and_come_back_registered(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    request = prompt("use fs_read_file path=/etc/hosts", tools=[READ_FILE], tool_choice="fs.read_file")
    response = await llm.complete(request)
    assert response.tool_calls == [{"id": "call_1", "type": "function",
                                    "function": {"name": "fs.read_file", "arguments": '{"path": "/etc/hosts"}'}}]
    assert response.finish_reason == "tool_calls" and response.debug["stop_reason"] == "tool_use"
    body = wire_body(fake_server)
    assert body["tools"][0]["name"] == "fs_read_file"
    assert body["tool_choice"] == {"type": "tool", "name": "fs_read_file"}
    history = [*request.messages, response.to_message(),
               {"role": "tool", "tool_call_id": "call_1", "content": "127.0.0.1 localhost"}]
    final = await llm.complete(LLMRequest(messages=history, tools=[READ_FILE]))
    assert final.content_text == "Here is what the tools returned:\n- fs_read_file: 127.0.0.1 localhost"
    assert wire_body(fake_server)["messages"][1]["content"][0]["name"] == "fs_read_file"


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ("add", {"type": "tool", "name": "add"}),
    ({"type": "function", "function": {"name": "add"}}, {"type": "tool", "name": "add"}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"type": "any", "disable_parallel_tool_use": True}),
])
async def test_tool_choice_mapping(
    llm: AnthropicLLMService, fake_server: FakeLLMServer, choice: Any, wire: dict[str, Any]
) -> None:
    await llm.complete(prompt("call add a=1 b=2", tools=[ADD], tool_choice=choice))
    assert wire_body(fake_server)["tool_choice"] == wire


async def test_tool_choice_none_gets_no_tool_call(llm: AnthropicLLMService) -> None:
    response = await llm.complete(prompt("call add a=1 b=2", tools=[ADD], tool_choice="none"))
    assert response.tool_calls == [] and response.content_text.startswith("You said")


async def test_json_schema_response_format_is_forced_tool_use(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    response = await llm.complete(prompt("name=Ada age=36", response_format=PERSON_FORMAT))
    assert json.loads(response.content_text) == {"name": "Ada", "age": 36}
    assert (response.tool_calls, response.finish_reason) == ([], "stop")
    body = wire_body(fake_server)
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert body["tools"][0]["name"] == "person" and body["tools"][0]["input_schema"] == PERSON_FORMAT[
        "json_schema"]["schema"]


async def test_json_schema_beside_real_tools_lets_the_model_call_them(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    called = await llm.complete(prompt("call add a=1 b=2", tools=[ADD], response_format=PERSON_FORMAT))
    assert [c["function"]["name"] for c in called.tool_calls] == ["add"]
    body = wire_body(fake_server)
    assert [t["name"] for t in body["tools"]] == ["add", "person"] and body["tool_choice"] == {"type": "any"}
    answered = await llm.complete(prompt("name=Bo age=7", tools=[ADD], response_format=PERSON_FORMAT))
    assert json.loads(answered.content_text) == {"name": "Bo", "age": 7} and not answered.tool_calls


async def test_json_object_response_format_adds_an_instruction(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    await llm.complete(prompt("hi", system_prompt="Sys.", response_format={"type": "json_object"}))
    assert wire_body(fake_server)["system"] == "Sys.\n\nReply with a single JSON object and no other text."


async def test_usage_counts_the_whole_prompt() -> None:
    with FakeLLMServer(cached_tokens=7, cache_creation_tokens=5) as server:
        service = AnthropicLLMService(config(server, "anthropic"))
        usage = (await service.complete(prompt("hi"))).token_usage
        await service.close()
        body_len = len(server.requests[-1].body)
    assert usage.prompt_tokens == -(-body_len // 4) and usage.completion_tokens == 3
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.cache_read) == (7, 5, 7)
    assert usage.total_tokens == usage.prompt_tokens + 3 and not usage.is_estimated


async def test_thinking_blocks_become_think(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    fake_server.add_rule(Rule("ponder", reply="42", think="Let me think."))
    thoughts: list[str] = []
    streamed = await llm.complete(prompt("ponder"), on_chunk_think=thoughts.append)
    plain = await llm.complete(prompt("ponder"))
    assert (streamed.think, plain.think, "".join(thoughts)) == ("Let me think.",) * 3
    assert streamed.content_text == plain.content_text == "42"


async def test_multimodal_parts_become_image_and_document_blocks(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "native"}},
    ]
    response = await llm.complete(LLMRequest(messages=[{"role": "user", "content": content}]))
    assert response.content_text == "You said: what is this?"
    assert wire_body(fake_server)["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
         "title": "a.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "native"}},
    ]


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (401, False), (404, False), (408, True),
                                                    (409, True), (429, True), (500, True), (529, True)])
async def test_http_errors_are_translated(
    llm: AnthropicLLMService, fake_server: FakeLLMServer, status: int, retryable: bool
) -> None:
    fake_server.inject_fault(Fault("http_error", status=status, message=f"boom {status}", retry_after_s=1.5))
    with pytest.raises(LLMProviderError, match=f"HTTP {status}: boom {status}") as info:
        await llm.complete(prompt("hi"))
    error = info.value
    assert (error.provider, error.status_code, error.retryable, error.retry_after_s) == (
        "anthropic", status, retryable, 1.5)
    assert isinstance(error.__cause__, anthropic.APIStatusError)


async def test_streamed_http_errors_are_translated(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("http_error", status=529))
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(prompt("hi"), on_chunk_delta_text=lambda _: None)
    assert (info.value.status_code, info.value.retryable) == (529, True)
    fake_server.inject_fault(Fault("http_error", status=400, message="prompt is too long"))
    with pytest.raises(LLMProviderError, match="prompt is too long") as info:
        _ = [chunk async for chunk in llm.stream(prompt("hi"))]
    assert (info.value.status_code, info.value.retryable) == (400, False)


async def test_malformed_tool_input_passes_through_as_text(
    llm: AnthropicLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("malformed_tool_json", count=2))
    plain = await llm.complete(prompt("hi", tools=[READ_FILE]))
    streamed = await llm.complete(prompt("hi", tools=[READ_FILE]), on_chunk_delta_text=lambda _: None)
    for response in (plain, streamed):
        (call,) = response.tool_calls
        assert call["function"]["name"] == "fs.read_file"
        with pytest.raises(ValueError):
            json.loads(call["function"]["arguments"])


@pytest.mark.parametrize("kind", ["empty_choices", "truncated_stream"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_empty_and_cut_answers_are_retryable_errors(
    llm: AnthropicLLMService, fake_server: FakeLLMServer, kind: str, streaming: bool
) -> None:
    fake_server.inject_fault(Fault(kind))  # type: ignore[arg-type]
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(prompt("a long answer to cut"), on_chunk_delta_text=(lambda _: None) if streaming else None)
    assert info.value.retryable and info.value.provider == "anthropic"


async def test_disconnect_and_timeout_are_retryable(fake_server: FakeLLMServer) -> None:
    service = AnthropicLLMService(config(fake_server, "anthropic", timeout_s=0.2))
    fake_server.inject_fault(Fault("disconnect"))
    with pytest.raises(LLMProviderError, match="cannot reach") as info:
        await service.complete(prompt("hi"))
    assert info.value.retryable and info.value.status_code is None
    fake_server.inject_fault(Fault("slow", delay_s=1.0))
    with pytest.raises(LLMProviderError, match=r"did not answer within timeout_s=0\.2") as info:
        await service.complete(prompt("hi"))
    assert info.value.retryable
    await service.close()


async def test_retry_layer_recovers_from_overload(llm: AnthropicLLMService, fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("http_error", status=529, count=2))
    retrying = with_retry(llm, policy=LLMRetryPolicy(backoff_initial=0.001, max_attempts=3))
    assert (await retrying.complete(prompt("hi"))).content_text == "You said: hi"
    assert len(fake_server.requests) == 3


async def test_close_then_reuse(llm: AnthropicLLMService) -> None:
    await llm.complete(prompt("one"))
    await llm.close()
    assert (await llm.complete(prompt("two"))).content_text == "You said: two"


@pytest.mark.parametrize("case", ["plain", "tools", "stream", "everything"])
async def test_wire_body_is_byte_identical_to_sdk_create(fake_server: FakeLLMServer, case: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "héllo — call add a=1 b=2"}]
    wire_messages: list[dict[str, Any]] = list(messages)
    fields: dict[str, Any] = {}
    if case != "plain":
        fields = {"tools": [ADD], "tool_choice": "auto"}
    if case == "everything":
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "3"},
        ]
        wire_messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "add",
                                               "input": {"a": 1, "b": 2}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "3"}]},
        ]
        fields |= {"extra": {"top_k": 3, "max_tokens": 9}}
    request = LLMRequest(messages=messages, system_prompt="sys", temperature=0.2, **fields)
    service = AnthropicLLMService(config(fake_server, "anthropic"))
    streaming = case in ("stream", "everything")
    await service.complete(request, on_chunk_delta_text=(lambda _: None) if streaming else None)
    await service.close()
    ours = fake_server.requests[-1]

    kwargs: dict[str, Any] = {"model": "fake-model", "max_tokens": 8000, "messages": wire_messages, "system": "sys",
                              "extra_body": {"temperature": 0.2}}
    if case != "plain":
        kwargs |= {"tools": [{"name": "add", "description": "Add two integers.",
                              "input_schema": ADD["function"]["parameters"]}], "tool_choice": {"type": "auto"}}
    if case == "everything":
        kwargs["extra_body"] |= {"top_k": 3, "max_tokens": 9}
    if streaming:
        kwargs["stream"] = True
    async with anthropic.AsyncAnthropic(base_url=fake_server.anthropic_base_url, api_key="test-key",
                                        max_retries=0) as client:
        result = await client.messages.create(**kwargs)
        if streaming:
            async for _ in result:
                pass
    sdk = fake_server.requests[-1]
    assert ours.body == sdk.body
    for header in ("x-api-key", "authorization", "anthropic-version", "content-type"):
        assert ours.headers.get(header) == sdk.headers.get(header)


def test_chosen_by_provider_name_or_environment(fake_server: FakeLLMServer) -> None:
    env = {"POWER_LOOP_PROVIDER": "claude", "POWER_LOOP_BASE_URL": fake_server.anthropic_base_url,
           "POWER_LOOP_API_KEY": "k", "POWER_LOOP_MODEL": "claude-x", "POWER_LOOP_MAX_RETRIES": "5"}
    service = create_llm_service_from_config(LLMProviderConfig.from_env(env=env))
    assert isinstance(service, AnthropicLLMService) and service.retry_policy.max_attempts == 6
    assert "k" not in repr(service)


def test_without_the_sdk_the_extra_is_named(monkeypatch: pytest.MonkeyPatch, fake_server: FakeLLMServer) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "anthropic" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"power-loop\[anthropic\]") as info:
        AnthropicLLMService(config(fake_server, "anthropic"))
    assert info.value.extra == "anthropic"


def _growing_history(n: int) -> list[dict[str, Any]]:
    """Sends of user text, a tool call, its result, an answer — with merges on the way:
    two tool results in a row (one user turn), a user text after a tool result, and a
    system message in the middle."""
    history: list[dict[str, Any]] = []
    for i in range(n):
        history.append({"role": "user", "content": f"ask {i} — é"})
        history.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"a{i}", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": f"b{i}", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}]})
        history.append({"role": "tool", "tool_call_id": f"a{i}", "content": "3"})
        history.append({"role": "tool", "tool_call_id": f"b{i}", "content": "7"})
        if i % 3 == 1:
            history.append({"role": "user", "content": "and also"})  # merges into the tool-result turn
        if i == 2:
            history.append({"role": "system", "content": "be brief"})
        history.append({"role": "assistant", "content": f"answer {i}"})
    return history


def _fields(parts: Any) -> tuple[Any, ...]:
    return parts.system, parts.messages, parts.tools, parts.tool_choice, parts.synthetic_tool


def test_an_append_only_history_resumes_where_the_last_call_stopped() -> None:
    from power_loop.llm.tool_names import ToolNameMapCache
    from power_loop.llm.transports._anthropic_request import TurnMemo, build_request_parts

    history = _growing_history(8)
    name_map = ToolNameMapCache().get([ADD])
    memo = TurnMemo()
    for end in range(1, len(history) + 1):
        request = LLMRequest(messages=history[:end], system_prompt="sys", tools=[ADD], history_wire_safe=True)
        fresh = build_request_parts(request, name_map, None)
        assert _fields(build_request_parts(request, name_map, memo)) == _fields(fresh)
    assert memo.prefixes  # the walks above resumed from it
    # A history that is not append-only (an edited message) is never resumed from a stale prefix.
    edited = [*history[:-1], {"role": "assistant", "content": "edited"}]
    request = LLMRequest(messages=edited, system_prompt="sys", tools=[ADD], history_wire_safe=False)
    fresh = build_request_parts(request, name_map, None)
    assert _fields(build_request_parts(request, name_map, memo)) == _fields(fresh)


async def test_fragment_encoded_bodies_equal_plain_encoding(fake_server: FakeLLMServer) -> None:
    service = AnthropicLLMService(config(fake_server, "anthropic"))
    history = _growing_history(8)
    await service.complete(LLMRequest(messages=history[:1]))  # opens the client: learns the wire format
    assert service._dumps is not None and service._fragments is not None
    for end in range(1, len(history) + 1):
        request = LLMRequest(messages=history[:end], system_prompt="sys", tools=[ADD], history_wire_safe=True)
        parts, _ = service._parts(request)
        body = service.build_body(request, stream=False, parts=parts)
        assert service._encode(request, body) == service._dumps(body)
    await service.close()
