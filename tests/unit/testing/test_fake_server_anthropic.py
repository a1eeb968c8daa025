"""The fake server's Anthropic Messages API, read by the official anthropic SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from power_loop.testing import FakeLLMServer, Fault, Rule
from power_loop.testing.fake_server.anthropic_wire import brain_messages

ADD: dict[str, Any] = {
    "name": "add",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}
PERSON: dict[str, Any] = {
    "name": "person",
    "input_schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}},
}


@pytest.fixture
def client(fake_server: FakeLLMServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key="test-key", max_retries=0,
                             timeout=5) as c:
        yield c


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def ask(client: anthropic.Anthropic, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.messages.create(model="fake-model", max_tokens=100, messages=messages, **kwargs)  # type: ignore[arg-type]


def test_plain_message_with_usage(client: anthropic.Anthropic, fake_server: FakeLLMServer) -> None:
    message = ask(client, [user("hello there")], system="Be brief.")
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "You said: hello there"
    assert (message.role, message.stop_reason, message.model) == ("assistant", "end_turn", "fake-model")
    body = fake_server.requests[-1].body
    assert message.usage.input_tokens == -(-len(body) // 4) and message.usage.output_tokens == 6
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (0, 0)


def test_cache_usage_is_configurable() -> None:
    with (
        FakeLLMServer(cached_tokens=5, cache_creation_tokens=3) as server,
        anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0) as client,
    ):
        usage = ask(client, [user("hi")]).usage
        prompt = -(-len(server.requests[-1].body) // 4)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 3)
    assert usage.input_tokens == prompt - 8


def test_tool_use_and_results_round_trip(client: anthropic.Anthropic) -> None:
    first = ask(client, [user("call add a=2 b=3 and call add a=1 b=1")], tools=[ADD])
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [("call_1", "add", {"a": 2, "b": 3}),
                                                      ("call_2", "add", {"a": 1, "b": 1})]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": str(u.input["a"] + u.input["b"])}
               for u in uses]
    second = ask(client, [user("call add a=2 b=3 and call add a=1 b=1"),
                          {"role": "assistant", "content": [u.model_dump() for u in uses]},
                          {"role": "user", "content": results}], tools=[ADD])
    assert second.content[0].text == "Here is what the tools returned:\n- add: 5\n- add: 2"


def test_the_brain_sees_the_openai_shaped_conversation() -> None:
    body = {"system": [{"type": "text", "text": "Sys."}], "messages": [
        user("hi"),
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "1"}]},
                                     {"type": "text", "text": "more"},
                                     {"type": "image", "source": {"type": "url", "url": "u"}}]},
    ]}
    assert brain_messages(body) == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "ok", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "1"},
        {"role": "user", "content": [{"type": "text", "text": "more"},
                                     {"type": "image", "source": {"type": "url", "url": "u"}}]},
    ]


def test_forced_and_any_tool_choice(client: anthropic.Anthropic) -> None:
    forced = ask(client, [user("name=Ada age=36")], tools=[PERSON], tool_choice={"type": "tool", "name": "person"})
    (use,) = forced.content
    assert (use.type, use.name, use.input) == ("tool_use", "person", {"name": "Ada", "age": 36})
    any_tool = ask(client, [user("name=Bo")], tools=[ADD, PERSON], tool_choice={"type": "any"})
    assert [(b.name, b.input) for b in any_tool.content] == [("person", {"name": "Bo", "age": 0})]
    called = ask(client, [user("call add a=1 b=2")], tools=[ADD, PERSON], tool_choice={"type": "any"})
    assert [b.name for b in called.content] == ["add"]
    nothing = ask(client, [user("call add a=1 b=2")], tools=[ADD], tool_choice={"type": "none"})
    assert [b.type for b in nothing.content] == ["text"]


def test_stream_is_parsed_by_the_sdk_into_the_same_message(
    client: anthropic.Anthropic, fake_server: FakeLLMServer
) -> None:
    fake_server.add_rule(Rule("ponder", reply="Forty-two, said the fake.", think="Hmm.",
                              tool_calls=[("add", {"a": 40, "b": 2})]))
    plain = ask(client, [user("ponder")], tools=[ADD])
    with client.messages.stream(model="fake-model", max_tokens=100, messages=[user("ponder")],  # type: ignore[list-item]
                                tools=[ADD]) as stream:  # type: ignore[list-item]
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in plain.content]
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert (final.stop_reason, final.usage.output_tokens) == (plain.stop_reason, plain.usage.output_tokens)
    assert kinds[0] == "message_start" and kinds.count("content_block_start") == 3


def test_error_bodies_have_the_anthropic_shape(client: anthropic.Anthropic, fake_server: FakeLLMServer) -> None:
    fake_server.inject_fault(Fault("http_error", status=529, retry_after_s=2))
    fake_server.inject_fault(Fault("http_error", status=400, message="max_tokens: too large"))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        ask(client, [user("hi")])
    assert overloaded.value.status_code == 529 and overloaded.value.response.headers["retry-after"] == "2"
    assert overloaded.value.body == {"type": "error", "error": {
        "type": "overloaded_error", "message": "fake server: injected HTTP 529 error"}}
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: too large"):
        ask(client, [user("hi")])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.post("/v1/messages", cast_to=object, body={"model": "m", "messages": [user("x")]})


def test_header_faults_and_reply_faults(client: anthropic.Anthropic, fake_server: FakeLLMServer) -> None:
    with pytest.raises(anthropic.RateLimitError):
        ask(client, [user("hi")], extra_headers={"X-Fake-Fault": "http_error;status=429"})
    fake_server.inject_fault(Fault("malformed_tool_json"))
    fake_server.inject_fault(Fault("empty_choices"))
    malformed = ask(client, [user("hi")], tools=[ADD])
    assert [(b.type, b.name, b.input) for b in malformed.content if b.type == "tool_use"] == [
        ("tool_use", "add", '{"malformed": tru')]
    assert ask(client, [user("hi")]).content == []
    stream = ask(client, [user("a long answer that is cut")], stream=True,
                 extra_headers={"X-Fake-Fault": "truncated_stream"})
    assert "message_stop" not in [event.type for event in stream]


def test_slow_stream_sends_events_one_by_one(client: anthropic.Anthropic) -> None:
    started = time.monotonic()
    stream = ask(client, [user("one two three four five six")], stream=True,
                 extra_headers={"X-Fake-Fault": "slow_stream;delay_s=0.05"})
    arrivals = [time.monotonic() - started for _ in stream]
    assert arrivals[-1] - arrivals[0] > 0.2 and len(arrivals) > 5


def test_unknown_models_are_rejected_in_each_wire_shape() -> None:
    with FakeLLMServer(accepted_models={"claude-real"}) as server:
        with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0) as client:
            with pytest.raises(anthropic.NotFoundError, match="'fake-model' does not exist"):
                ask(client, [user("hi")])
            assert client.messages.create(model="claude-real", max_tokens=5, messages=[user("hi")]).content
        with (
            openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as oa,
            pytest.raises(openai.NotFoundError),
        ):
            oa.chat.completions.create(model="gpt-x", messages=[user("hi")])  # type: ignore[list-item]


def test_openai_wire_options_for_compatible_servers() -> None:
    tool = {"type": "function", "function": {"name": "add", "parameters": ADD["input_schema"]}}
    with (
        FakeLLMServer(repeat_stream_tool_ids=True, response_formats={"text"}) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as oa,
    ):
        messages: Any = [user("call add a=12345 b=67890")]
        chunks = list(oa.chat.completions.create(model="m", messages=messages, tools=[tool],  # type: ignore[list-item]
                                                 stream=True))
        calls = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or ()]
        assert len(calls) > 2 and all(c.id == "call_1" and c.function.name == "add" for c in calls)
        with pytest.raises(openai.BadRequestError, match="json_object"):
            oa.chat.completions.create(model="m", messages=[user("hi")],  # type: ignore[list-item]
                                       response_format={"type": "json_object"})
    schema = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON["input_schema"]}}
    with FakeLLMServer() as server, openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as oa:
        reply = oa.chat.completions.create(model="m", messages=[user("name=Cy age=9")],  # type: ignore[list-item]
                                           response_format=schema)  # type: ignore[arg-type]
        assert json.loads(reply.choices[0].message.content or "") == {"name": "Cy", "age": 9}
