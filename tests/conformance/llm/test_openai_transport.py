"""The OpenAI-compatible transport over real HTTP against the fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from power_loop.contracts.errors import LLMProviderError
from power_loop.llm.config import LLMProviderConfig
from power_loop.llm.contract import EncodedHistory, LLMRequest, LLMResponse, LLMService
from power_loop.llm.retry import LLMRetryPolicy, with_retry
from power_loop.llm.transports.openai import OpenAICompatLLMService
from power_loop.testing import FakeLLMServer, Fault, Rule

READ_FILE: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "fs.read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
ADD: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def config(server: FakeLLMServer, **kwargs: Any) -> LLMProviderConfig:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": "test-key",
        "model": "fake-model",
        "timeout_s": 5.0,
        **kwargs,
    }
    return LLMProviderConfig(**values)


@pytest.fixture
async def llm(fake_server: FakeLLMServer) -> AsyncIterator[OpenAICompatLLMService]:
    service = OpenAICompatLLMService(config(fake_server))
    yield service
    await service.close()


def prompt(text: str, **kwargs: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], **kwargs)


def wire_body(server: FakeLLMServer) -> dict[str, Any]:
    return server.requests[-1].json


async def test_plain_answer(llm: OpenAICompatLLMService, fake_server: FakeLLMServer) -> None:
    assert isinstance(llm, LLMService) and llm.provider == "openai"
    response = await llm.complete(prompt("hello", system_prompt="Be brief."))
    assert (response.content_text, response.raw_text) == ("You said: hello", "You said: hello")
    assert (response.finish_reason, response.model, response.tool_calls) == ("stop", "fake-model", [])
    assert response.ok and not response.token_usage.is_estimated
    recorded = fake_server.requests[-1]
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.json == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        "max_tokens": 8000,
        "temperature": 0.0,
    }


async def test_request_fields_override_the_config(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    request = prompt(
        "hi",
        model="other",
        max_tokens=5,
        temperature=0.3,
        response_format={"type": "json_object"},
        extra={"temperature": 0.9, "seed": 7},
        tool_choice="auto",
    )
    await llm.complete(request)
    body = wire_body(fake_server)
    assert (body["model"], body["max_tokens"], body["temperature"], body["seed"]) == ("other", 5, 0.9, 7)
    assert body["response_format"] == {"type": "json_object"}
    assert "tool_choice" not in body  # only sent with tools
    none_llm = OpenAICompatLLMService(config(fake_server, temperature=None))
    await none_llm.complete(prompt("hi"))
    await none_llm.close()
    assert "temperature" not in wire_body(fake_server)


async def test_dotted_tool_names_go_out_legal_and_come_back_registered(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    request = prompt(
        "use fs_read_file path=/etc/hosts",
        tools=[READ_FILE],
        tool_choice={"type": "function", "function": {"name": "fs.read_file"}},
    )
    response = await llm.complete(request)
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "fs.read_file", "arguments": '{"path": "/etc/hosts"}'},
        }
    ]
    body = wire_body(fake_server)
    assert body["tools"][0]["function"]["name"] == "fs_read_file"
    assert body["tool_choice"]["function"]["name"] == "fs_read_file"
    assert READ_FILE["function"]["name"] == "fs.read_file"  # the caller's tools are not mutated

    history = [
        *request.messages,
        response.to_message(),
        {"role": "tool", "tool_call_id": "call_1", "name": "fs.read_file", "content": "127.0.0.1 localhost"},
    ]
    final = await llm.complete(LLMRequest(messages=history, tools=[READ_FILE]))
    assert final.content_text == "Here is what the tools returned:\n- fs_read_file: 127.0.0.1 localhost"
    sent = wire_body(fake_server)["messages"]
    assert (
        sent[1]["tool_calls"][0]["function"]["name"] == "fs_read_file" and sent[2]["name"] == "fs_read_file"
    )
    assert history[1]["tool_calls"][0]["function"]["name"] == "fs.read_file"


async def test_streamed_answer_equals_the_plain_one(llm: OpenAICompatLLMService) -> None:
    for request in (
        prompt("a sentence long enough to arrive in several pieces"),
        prompt("call add a=1 b=2 and call fs_read_file path=x", tools=[ADD, READ_FILE]),
    ):
        plain = await llm.complete(request)
        deltas: list[str] = []
        ended: list[LLMResponse] = []
        streamed = await llm.complete(request, on_chunk_delta_text=deltas.append, on_stream_end=ended.append)
        assert "".join(deltas) == plain.content_text
        assert (streamed.content_text, streamed.tool_calls, streamed.finish_reason, streamed.model) == (
            plain.content_text,
            plain.tool_calls,
            plain.finish_reason,
            plain.model,
        )
        assert ended == [streamed] and streamed.stream_chunks
        assert not streamed.token_usage.is_estimated
    assert len(deltas) == 0 and [c["function"]["name"] for c in plain.tool_calls] == ["add", "fs.read_file"]


async def test_stream_iterator_ends_with_the_assembled_calls(llm: OpenAICompatLLMService) -> None:
    chunks = [c async for c in llm.stream(prompt("call fs_read_file path=a.txt", tools=[READ_FILE]))]
    final = chunks[-1]
    assert final.is_final and not any(c.is_final for c in chunks[:-1])
    assert final.tool_calls[0]["function"] == {"name": "fs.read_file", "arguments": '{"path": "a.txt"}'}
    assert final.token_usage is not None and final.token_usage.total > 0
    assert (
        chunks[0].delta_tool_calls is not None
        and chunks[0].delta_tool_calls[0]["function"]["name"] == "fs.read_file"
    )


async def test_usage_mapping() -> None:
    with FakeLLMServer(cached_tokens=7, reasoning_tokens=3) as server:
        service = OpenAICompatLLMService(config(server))
        usage = (await service.complete(prompt("hi"))).token_usage
        await service.close()
        body_len = len(server.requests[-1].body)
    assert usage.prompt_tokens == -(-body_len // 4) and usage.completion_tokens == 3
    assert usage.total_tokens == usage.prompt_tokens + 3
    assert (usage.cached_tokens, usage.prompt_cached_tokens, usage.cache_read) == (7, 7, 7)
    assert (usage.reasoning_tokens, usage.completion_reasoning_tokens, usage.reasoning) == (3, 3, 3)


async def test_stream_without_usage_is_estimated() -> None:
    with FakeLLMServer(stream_usage=False) as server:
        service = OpenAICompatLLMService(config(server))
        response = await service.complete(prompt("hello"), on_chunk_delta_text=lambda _: None)
        await service.close()
    assert response.content_text == "You said: hello"
    assert response.token_usage.is_estimated and response.token_usage.completion_tokens == 4


async def test_reasoning_content_becomes_think(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.add_rule(Rule("ponder", reply="42", think="Let me think."))
    thoughts: list[str] = []
    streamed = await llm.complete(prompt("ponder"), on_chunk_think=thoughts.append)
    plain = await llm.complete(prompt("ponder"))
    assert (streamed.think, plain.think, "".join(thoughts)) == ("Let me think.",) * 3
    assert streamed.content_text == plain.content_text == "42"


async def test_parse_json(llm: OpenAICompatLLMService, fake_server: FakeLLMServer) -> None:
    fake_server.add_rule(Rule("json please", reply='```json\n{"answer": 42}\n```'))
    response = await llm.complete(prompt("json please", parse_json=True))
    assert response.json_data == {"answer": 42} and response.parse_error is None
    response = await llm.complete(prompt("not json", parse_json=True))
    assert response.parse_error is not None and not response.ok


async def test_429_with_retry_after_is_retryable(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("http_error", status=429, retry_after_s=1.5))
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(prompt("hi"))
    error = info.value
    assert (error.provider, error.status_code, error.retryable, error.retry_after_s) == (
        "openai",
        429,
        True,
        1.5,
    )
    assert isinstance(error.__cause__, openai.RateLimitError)


async def test_streamed_http_errors_are_translated(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("http_error", status=429, retry_after_s=2))
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(prompt("hi"), on_chunk_delta_text=lambda _: None)
    assert (info.value.status_code, info.value.retryable, info.value.retry_after_s) == (429, True, 2.0)
    fake_server.inject_fault(Fault("http_error", status=401, message="bad key"))
    with pytest.raises(LLMProviderError, match="bad key") as info:
        _ = [chunk async for chunk in llm.stream(prompt("hi"))]
    assert (info.value.status_code, info.value.retryable) == (401, False)


async def test_without_stream_support_callbacks_get_the_whole_answer(fake_server: FakeLLMServer) -> None:
    service = OpenAICompatLLMService(config(fake_server, extra={"supports_stream": False}))
    deltas: list[str] = []
    response = await service.complete(prompt("hello"), on_chunk_delta_text=deltas.append)
    await service.close()
    assert deltas == [response.content_text] == ["You said: hello"]
    assert "stream" not in wire_body(fake_server)


async def test_400_is_not_retryable_and_carries_the_message(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("http_error", status=400, message="context too long"))
    with pytest.raises(LLMProviderError, match="HTTP 400: context too long") as info:
        await llm.complete(prompt("hi"))
    assert (info.value.status_code, info.value.retryable, info.value.retry_after_s) == (400, False, None)


@pytest.mark.parametrize("status", [408, 409, 500, 503])
async def test_server_errors_are_retryable(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer, status: int
) -> None:
    fake_server.inject_fault(Fault("http_error", status=status))
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(prompt("hi"))
    assert (info.value.status_code, info.value.retryable) == (status, True)


async def test_malformed_tool_arguments_pass_through(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("malformed_tool_json", count=2))
    plain = await llm.complete(prompt("hi", tools=[READ_FILE]))
    streamed = await llm.complete(prompt("hi", tools=[READ_FILE]), on_chunk_delta_text=lambda _: None)
    for response in (plain, streamed):
        (call,) = response.tool_calls
        assert call["function"]["name"] == "fs.read_file"
        with pytest.raises(ValueError):
            json.loads(call["function"]["arguments"])


@pytest.mark.parametrize("streaming", [False, True])
async def test_empty_choices_is_a_retryable_error(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer, streaming: bool
) -> None:
    fake_server.inject_fault(Fault("empty_choices"))
    with pytest.raises(LLMProviderError, match="choices") as info:
        await llm.complete(prompt("hi"), on_chunk_delta_text=(lambda _: None) if streaming else None)
    assert info.value.retryable


@pytest.mark.parametrize("streaming", [False, True])
async def test_truncated_answer_is_a_retryable_error(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer, streaming: bool
) -> None:
    fake_server.inject_fault(Fault("truncated_stream"))
    with pytest.raises(LLMProviderError) as info:
        await llm.complete(
            prompt("a long answer to cut"), on_chunk_delta_text=(lambda _: None) if streaming else None
        )
    assert info.value.retryable


async def test_disconnect_is_a_retryable_connection_error(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("disconnect"))
    with pytest.raises(LLMProviderError, match="cannot reach") as info:
        await llm.complete(prompt("hi"))
    assert info.value.retryable and info.value.status_code is None


async def test_slow_server_is_a_retryable_timeout(fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("slow", delay_s=0.5))
    service = OpenAICompatLLMService(config(fake_server, timeout_s=0.1))
    with pytest.raises(LLMProviderError, match=r"did not answer within timeout_s=0\.1") as info:
        await service.complete(prompt("hi"))
    await service.close()
    assert info.value.retryable


async def test_retry_layer_recovers_from_server_errors(
    llm: OpenAICompatLLMService, fake_server: FakeLLMServer
) -> None:
    fake_server.inject_fault(Fault("http_error", status=503, count=2))
    retrying = with_retry(llm, policy=LLMRetryPolicy(backoff_initial=0.001, max_attempts=3))
    assert (await retrying.complete(prompt("hi"))).content_text == "You said: hi"
    assert len(fake_server.requests) == 3


async def test_close_then_reuse(llm: OpenAICompatLLMService) -> None:
    await llm.complete(prompt("one"))
    await llm.close()
    assert (await llm.complete(prompt("two"))).content_text == "You said: two"


@pytest.mark.parametrize("case", ["plain", "tools", "stream", "everything"])
async def test_wire_body_is_byte_identical_to_sdk_create(fake_server: FakeLLMServer, case: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "héllo — call add a=1 b=2"}]
    fields: dict[str, Any] = {}
    if case != "plain":
        fields = {"tools": [ADD], "tool_choice": "auto"}
    if case == "everything":
        fields |= {"response_format": {"type": "json_object"}, "extra": {"seed": 3, "max_tokens": 9}}
    request = LLMRequest(messages=messages, system_prompt="sys", temperature=0.2, **fields)
    service = OpenAICompatLLMService(config(fake_server))
    streaming = case in ("stream", "everything")
    await service.complete(request, on_chunk_delta_text=(lambda _: None) if streaming else None)
    await service.close()
    ours = fake_server.requests[-1].body

    kwargs: dict[str, Any] = {
        "model": "fake-model",
        "max_tokens": 8000,
        "temperature": 0.2,
        "messages": [{"role": "system", "content": "sys"}, *messages],
    }
    if case != "plain":
        kwargs |= {"tools": [ADD], "tool_choice": "auto"}
    if case == "everything":
        kwargs |= {"response_format": {"type": "json_object"}, "extra_body": {"seed": 3, "max_tokens": 9}}
    if streaming:
        kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
    async with openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="test-key", max_retries=0) as client:
        result = await client.chat.completions.create(**kwargs)
        if streaming:
            async for _ in result:
                pass
    sdk = fake_server.requests[-1]
    assert ours == sdk.body
    assert fake_server.requests[-2].headers["authorization"] == sdk.headers["authorization"]


async def test_a_loaded_history_goes_out_as_the_store_encoded_it(fake_server: FakeLLMServer) -> None:
    """``history_encoded`` is spliced into the body as is (the store vouches for it): the
    server receives the seed's bytes where the messages it covers go, and the body is
    exactly what encoding the messages would give when the seed is their encoding."""
    history: list[dict[str, Any]] = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} ✓"}
                                     for i in range(12)]
    text = json.dumps(history, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()
    service = OpenAICompatLLMService(config(fake_server))
    await service.complete(LLMRequest(messages=history, system_prompt="sys", history_wire_safe=True))
    plain = fake_server.requests[-1].body  # encoded from the messages
    await service.close()
    seeded = OpenAICompatLLMService(config(fake_server))
    await seeded.complete(LLMRequest(messages=history, system_prompt="sys", history_wire_safe=True,
                                     history_encoded=EncodedHistory(len(history), history[0], history[-1], text)))
    await seeded.close()
    assert fake_server.requests[-1].body == plain

    fresh = OpenAICompatLLMService(config(fake_server))  # no cached entry: only the seed can supply it
    marked = text.replace(b"turn 5", b"TURN 5")  # a seed that differs, to see where it lands
    await fresh.complete(LLMRequest(messages=history, system_prompt="sys", history_wire_safe=True,
                                    history_encoded=EncodedHistory(len(history), history[0], history[-1], marked)))
    await fresh.close()
    assert fake_server.requests[-1].body == plain.replace(b"turn 5", b"TURN 5")
    uncovered = OpenAICompatLLMService(config(fake_server))
    await uncovered.complete(LLMRequest(messages=history, system_prompt="sys", history_wire_safe=False,
                                        history_encoded=EncodedHistory(len(history), history[0], history[-1],
                                                                       marked)))
    await uncovered.close()
    assert fake_server.requests[-1].body == plain  # not wire-safe: the hint does not apply
