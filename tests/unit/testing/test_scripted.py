"""ScriptedLLM: queued replies, recorded requests, deltas, delays and exhaustion."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from power_loop.contracts.errors import PowerLoopError
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMService, LLMTokenUsage
from power_loop.testing import ScriptedLLM, ScriptExhaustedError


def prompt(text: str) -> LLMRequest:
    return LLMRequest.from_prompt(prompt=text)


def test_is_an_llm_service() -> None:
    assert isinstance(ScriptedLLM(), LLMService)


async def test_plays_text_in_order_and_records_requests() -> None:
    llm = ScriptedLLM(["first", "second"])
    one, two = prompt("a"), prompt("b")
    assert (await llm.complete(one)).content_text == "first"
    response = await llm.complete(two)
    assert response.content_text == response.raw_text == "second"
    assert response.finish_reason == "stop"
    assert llm.requests == [one, two] and llm.last_request is two
    assert llm.remaining == 0


async def test_usage_is_estimated_at_four_chars_per_token() -> None:
    usage = (await ScriptedLLM(["12345678"]).complete(prompt("abcd"))).token_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1, 2, 3)
    assert not usage.is_estimated


async def test_tool_calls_get_sequential_ids_and_json_arguments() -> None:
    llm = ScriptedLLM(
        [
            ScriptedLLM.tool_calls([("add", {"a": 1}), ("fs.read_file", '{"path": "x"')], text="working"),
            ScriptedLLM.tool_calls([("add", {"a": 2})]),
            ScriptedLLM.tool_calls([("add", {})], ids=["mine"]),
        ]
    )
    first = await llm.complete(prompt("go"))
    assert first.content_text == "working" and first.finish_reason == "tool_calls"
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in first.tool_calls] == [
        ("call_1", "add", '{"a": 1}'),
        ("call_2", "fs.read_file", '{"path": "x"'),
    ]
    assert (await llm.complete(prompt("go"))).tool_calls[0]["id"] == "call_3"
    third = await llm.complete(prompt("go"))
    assert third.tool_calls[0]["id"] == "mine"
    assert json.loads(third.tool_calls[0]["function"]["arguments"]) == {}


async def test_exceptions_are_raised_and_consume_their_turn() -> None:
    llm = ScriptedLLM([RuntimeError("boom"), TimeoutError, "after"])
    with pytest.raises(RuntimeError, match="boom"):
        await llm.complete(prompt("x"))
    with pytest.raises(TimeoutError):
        await llm.complete(prompt("x"))
    assert (await llm.complete(prompt("x"))).content_text == "after"


async def test_callables_see_the_request() -> None:
    async def later(request: LLMRequest) -> LLMResponse:
        return LLMResponse(raw_text="async", content_text="async")

    llm = ScriptedLLM([lambda request: f"echo {request.messages[-1]['content']}", later])
    assert (await llm.complete(prompt("hi"))).content_text == "echo hi"
    response = await llm.complete(prompt("hi"))
    assert response.content_text == "async"
    assert response.token_usage.total_tokens == 3  # filled in: the scripted response had none


async def test_scripted_response_keeps_its_own_usage() -> None:
    usage = LLMTokenUsage(prompt_tokens=10, completion_tokens=1)
    llm = ScriptedLLM([LLMResponse(raw_text="x", content_text="x", token_usage=usage)])
    assert (await llm.complete(prompt("q"))).token_usage is usage


async def test_streaming_callbacks_and_stream_iterator() -> None:
    text = "a reasonably long answer for deltas"
    llm = ScriptedLLM([text, ScriptedLLM.tool_calls([("add", {"a": 1})], text="hm")])
    deltas: list[str] = []
    ended: list[LLMResponse] = []

    async def on_end(response: LLMResponse) -> None:
        ended.append(response)

    response = await llm.complete(prompt("q"), on_chunk_delta_text=deltas.append, on_stream_end=on_end)
    assert len(deltas) > 1 and "".join(deltas) == text
    assert ended == [response]
    chunks = [chunk async for chunk in llm.stream(prompt("q"))]
    assert "".join(c.delta_text for c in chunks) == "hm"
    assert chunks[-1].is_final and chunks[-1].tool_calls[0]["function"]["name"] == "add"
    assert chunks[-1].token_usage is not None


async def test_delayed_reply_can_be_cancelled() -> None:
    llm = ScriptedLLM([ScriptedLLM.delayed("late", 30.0), "next"])
    begun = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(llm.complete(prompt("q")), 0.05)
    assert time.monotonic() - begun < 1.0
    assert len(llm.requests) == 1 and llm.remaining == 1


async def test_exhausted_script_names_the_request() -> None:
    llm = ScriptedLLM(["only"]).add()
    await llm.complete(prompt("one"))
    with pytest.raises(ScriptExhaustedError, match=r"request #2 \(last user message: 'two'\)") as info:
        await llm.complete(prompt("two"))
    assert isinstance(info.value, PowerLoopError) and isinstance(info.value, AssertionError)
    assert info.value.code == "testing.script_exhausted"


async def test_unknown_script_items_are_rejected() -> None:
    with pytest.raises(TypeError, match="cannot play a int"):
        await ScriptedLLM([42]).complete(prompt("q"))  # type: ignore[list-item]


async def test_close_marks_closed() -> None:
    llm = ScriptedLLM(["x"])
    await llm.close()
    assert llm.closed
