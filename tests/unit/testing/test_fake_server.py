"""The fake LLM server over real HTTP, read by the official openai SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from power_loop.contracts.errors import InvalidArgumentError, UsageError
from power_loop.testing import FakeLLMServer, Fault, Rule
from power_loop.testing.fake_server.faults import parse_fault_header

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ADD: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
SEARCH: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "kb.search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


@pytest.fixture
def client(fake_server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_server.base_url, api_key="test-key", max_retries=0, timeout=5) as c:
        yield c


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def ask(client: openai.OpenAI, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.chat.completions.create(model="fake-model", messages=messages, **kwargs)  # type: ignore[arg-type]


def test_plain_message_is_echoed_with_usage(client: openai.OpenAI, fake_server: FakeLLMServer) -> None:
    completion = ask(client, [user("hello there")])
    assert completion.choices[0].message.content == "You said: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion"
    body = fake_server.requests[-1].body
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == -(-len(body) // 4)
    assert completion.usage.completion_tokens == -(-len("You said: hello there") // 4)
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_memory_recalls_the_latest_statement(client: openai.OpenAI) -> None:
    history = [
        user("My favorite color is red."),
        {"role": "assistant", "content": "ok"},
        user("Actually my favorite color is teal"),
        {"role": "assistant", "content": "ok"},
    ]
    assert ask(client, [*history, user("What is my favorite color?")]).choices[0].message.content == (
        "Your favorite color is teal."
    )
    assert ask(client, [*history, user("what's my name?")]).choices[0].message.content == (
        "I don't know your name yet."
    )
    assert ask(client, [user("my name is Ada")]).choices[0].message.content == "Noted: your name is Ada."


def test_named_tools_are_called_with_arguments_from_text(client: openai.OpenAI) -> None:
    completion = ask(
        client, [user("call add a=2 b=3.5 and call get_weather for Paris")], tools=[ADD, WEATHER]
    )
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_1", "add", {"a": 2, "b": 3.5}),
        ("call_2", "get_weather", {"city": "Paris"}),
    ]


def test_tool_arguments_come_from_json_quotes_or_numbers(client: openai.OpenAI) -> None:
    calls = (
        ask(client, [user('use kb.search {"query": "durable agents"}')], tools=[SEARCH])
        .choices[0]
        .message.tool_calls
    )
    assert json.loads(calls[0].function.arguments) == {"query": "durable agents"}
    calls = (
        ask(client, [user("use kb.search for 'power loop'")], tools=[SEARCH]).choices[0].message.tool_calls
    )
    assert json.loads(calls[0].function.arguments) == {"query": "power loop"}
    calls = ask(client, [user("call add 4 and 5")], tools=[ADD]).choices[0].message.tool_calls
    assert json.loads(calls[0].function.arguments) == {"a": 4, "b": 5}


def test_tool_mentions_are_ignored_without_offered_tools(client: openai.OpenAI) -> None:
    assert ask(client, [user("call add a=1 b=2")]).choices[0].message.content == "You said: call add a=1 b=2"
    assert ask(client, [user("use the force")], tools=[ADD]).choices[0].message.tool_calls is None


def test_weather_question_calls_get_weather(client: openai.OpenAI) -> None:
    calls = (
        ask(client, [user("What is the weather in New York?")], tools=[WEATHER]).choices[0].message.tool_calls
    )
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "New York"}


def test_same_conversation_gets_same_tool_call_ids(client: openai.OpenAI) -> None:
    first = ask(client, [user("call add a=1 b=2")], tools=[ADD]).choices[0].message.tool_calls
    again = ask(client, [user("call add a=1 b=2")], tools=[ADD]).choices[0].message.tool_calls
    assert [c.model_dump() for c in first] == [c.model_dump() for c in again]


def test_tool_results_are_summarised_in_call_order(client: openai.OpenAI) -> None:
    messages = [
        user("call add and call get_weather"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    text = ask(client, messages, tools=[ADD, WEATHER]).choices[0].message.content
    assert text == 'Here is what the tools returned:\n- add: 3\n- get_weather: {"temp_c": 21}'


def test_user_rules_come_first(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    fake_server.add_rule(
        Rule(r"capital of (\w+)", reply=lambda m: f"I do not know the capital of {m.group(1)}.")
    )
    fake_server.add_rule(
        Rule(r"weather", tool_calls=[("get_weather", {"city": "Oslo"})], think="cold up north")
    )
    assert ask(client, [user("capital of Peru?")]).choices[0].message.content == (
        "I do not know the capital of Peru."
    )
    message = ask(client, [user("what is the weather in Rome")], tools=[WEATHER]).choices[0].message
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert message.model_extra == {"reasoning_content": "cold up north"}


def test_stream_is_parsed_by_the_sdk_into_the_same_message(client: openai.OpenAI) -> None:
    messages = [user("call add a=2 b=3 and tell me")]
    plain = ask(client, messages, tools=[ADD]).choices[0].message
    options: dict[str, Any] = {"messages": messages, "tools": [ADD]}
    options["stream_options"] = {"include_usage": True}
    with client.chat.completions.stream(model="fake-model", **options) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message

    def shape(calls: Any) -> list[tuple[str, str, str]]:
        return [(c.id, c.function.name, c.function.arguments) for c in calls or []]

    assert shape(streamed.tool_calls) == shape(plain.tool_calls) == [("call_1", "add", '{"a": 2, "b": 3}')]
    assert final.usage is not None and final.usage.total_tokens > 0

    chunks = list(ask(client, [user("a fairly long sentence to split")], stream=True))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 2
    assert "".join(deltas) == "You said: a fairly long sentence to split"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk


def test_usage_details_are_configurable() -> None:
    with (
        FakeLLMServer(cached_tokens=5, reasoning_tokens=2) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        usage = ask(client, [user("hi")]).usage
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details.reasoning_tokens == 2


def test_http_error_faults(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    fake_server.inject_fault(Fault("http_error", status=429, retry_after_s=1.5))
    fake_server.inject_fault(Fault("http_error", status=400, message="bad field 'x'"))
    fake_server.inject_fault(Fault("http_error", status=503, count=2))
    with pytest.raises(openai.RateLimitError) as rate:
        ask(client, [user("hi")])
    assert rate.value.response.headers["retry-after"] == "1.5"
    assert rate.value.response.headers["retry-after-ms"] == "1500"
    with pytest.raises(openai.BadRequestError) as bad:
        ask(client, [user("hi")])
    assert bad.value.body == {
        "message": "bad field 'x'",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request",
    }
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client, [user("hi")])
    assert fake_server.pending_faults == 0
    assert ask(client, [user("hi")]).choices[0].message.content == "You said: hi"


def test_reset_faults_drops_the_queue(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    fake_server.inject_fault(Fault("http_error", count=3))
    fake_server.reset_faults()
    assert ask(client, [user("hi")]).choices[0].message.content == "You said: hi"


def test_reply_faults(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    fake_server.inject_fault(Fault("malformed_tool_json"))
    fake_server.inject_fault(Fault("empty_choices"))
    fake_server.inject_fault(Fault("truncated_stream"))
    calls = ask(client, [user("hi")], tools=[WEATHER]).choices[0].message.tool_calls
    assert calls[0].function.name == "get_weather"
    with pytest.raises(ValueError):
        json.loads(calls[0].function.arguments)
    assert ask(client, [user("hi")]).choices == []
    chunks = list(ask(client, [user("a long answer that is cut")], stream=True))
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_slow_and_disconnect_faults(fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("slow", delay_s=0.5))
    fake_server.inject_fault(Fault("disconnect"))
    with openai.OpenAI(base_url=fake_server.base_url, api_key="k", max_retries=0, timeout=0.1) as client:
        with pytest.raises(openai.APITimeoutError):
            ask(client, [user("hi")])
        with pytest.raises(openai.APIConnectionError):
            ask(client, [user("hi")])


def test_header_faults_apply_to_one_request(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    fake_server.inject_fault(Fault("http_error", status=500))
    with pytest.raises(openai.RateLimitError):
        ask(client, [user("hi")], extra_headers={"X-Fake-Fault": "http_error;status=429;retry_after_s=2"})
    with pytest.raises(openai.InternalServerError):  # the queued fault is still there
        ask(client, [user("hi")])
    with pytest.raises(openai.BadRequestError, match="unknown fault kind"):
        ask(client, [user("hi")], extra_headers={"X-Fake-Fault": "explode"})


def test_fault_header_parsing_and_validation() -> None:
    fault = parse_fault_header("slow; delay_s=0.25")
    assert (fault.kind, fault.delay_s) == ("slow", 0.25)
    with pytest.raises(InvalidArgumentError, match="unknown X-Fake-Fault option 'colour'"):
        parse_fault_header("slow;colour=red")
    with pytest.raises(InvalidArgumentError, match="count must be >= 1"):
        Fault("slow", count=0)
    with pytest.raises(InvalidArgumentError, match="not a regular expression"):
        Rule("(", reply="x")


def test_requests_are_recorded(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    ask(client, [user("hi")], temperature=0.5)
    (recorded,) = fake_server.requests
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.json == json.loads(recorded.body)
    assert recorded.json["temperature"] == 0.5
    fake_server.clear_requests()
    assert fake_server.requests == []


def test_models_and_unknown_routes(fake_server: FakeLLMServer, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["fake-model"]
    with pytest.raises(openai.NotFoundError):
        client.post("/nowhere", cast_to=object, body={})
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.post("/chat/completions", cast_to=object, body={"model": "m"})


def test_lifecycle() -> None:
    server = FakeLLMServer()
    with pytest.raises(UsageError, match="not started"):
        _ = server.base_url
    url = server.start()
    assert server.start() == url and url == f"http://127.0.0.1:{server.port}/v1"
    server.stop()
    server.stop()


def test_runs_as_its_own_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "power_loop.testing.fake_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_LLM_URL=http://127.0.0.1:") and line.endswith("/v1")
        with openai.OpenAI(base_url=line.split("=", 1)[1], api_key="k", max_retries=0, timeout=5) as client:
            assert ask(client, [user("ping")]).choices[0].message.content == "You said: ping"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr


def test_a_burst_of_concurrent_connections_is_served(fake_server: FakeLLMServer) -> None:
    # 200 clients connecting at once overflow a default (5-deep) listen backlog: some
    # connections then look open to the client while the server never reads them.
    import asyncio

    body = json.dumps({"model": "fake-model", "messages": [user("ping")]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake_server.port)
        writer.write(head + body)
        status = await reader.readline()
        writer.close()
        return status

    async def burst() -> list[bytes]:
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(200))), timeout=20)

    statuses = asyncio.run(burst())
    assert statuses == [b"HTTP/1.1 200 OK\r\n"] * 200
