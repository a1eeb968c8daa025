"""One scripted conversation through each transport, streamed and not: the same answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from llm_support import ADD, PERSON_FORMAT, PROVIDERS, READ_FILE, collect, essentials, prompt, service

from power_loop.llm.contract import LLMRequest, LLMService
from power_loop.testing import FakeLLMServer, Rule


@pytest.fixture(params=PROVIDERS)
async def llm(request: pytest.FixtureRequest, fake_server: FakeLLMServer) -> AsyncIterator[LLMService]:
    fake_server.add_rule(Rule("ponder", reply="The answer is 42.", think="Six times seven."))
    transport = service(fake_server, request.param)
    yield transport
    await transport.close()


CONVERSATION: dict[str, LLMRequest] = {
    "text": prompt("a sentence long enough to arrive in several pieces", system_prompt="Be brief."),
    "think": prompt("ponder"),
    "single_tool_call": prompt("call fs_read_file path=notes.txt", tools=[READ_FILE]),
    "parallel_tool_calls": prompt("call add a=1 b=2 and call add a=30 b=12 and call fs_read_file path=x",
                                  tools=[ADD, READ_FILE]),
    "tool_results": LLMRequest(messages=[
        {"role": "user", "content": "call add a=1 b=2 and call add a=3 b=4"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "tool", "tool_call_id": "call_2", "content": "7"},
    ], tools=[ADD]),
    "structured": prompt("name=Ada age=36", response_format=PERSON_FORMAT),
}


@pytest.mark.parametrize("case", list(CONVERSATION))
async def test_streamed_answer_equals_the_plain_one(llm: LLMService, case: str) -> None:
    request = CONVERSATION[case]
    plain = await llm.complete(request)
    streamed, deltas = await collect(llm, request)
    assert essentials(streamed) == essentials(plain)
    assert not plain.token_usage.is_estimated and plain.token_usage.total > 0
    assert "".join(deltas) == plain.content_text or case == "structured"
    if case == "structured":
        assert json.loads("".join(deltas)) == json.loads(plain.content_text) == {"name": "Ada", "age": 36}
    assert streamed.stream_chunks and not plain.stream_chunks


async def test_the_conversation_gets_the_same_answers_on_both_wires(fake_server: FakeLLMServer) -> None:
    answers: dict[str, list[Any]] = {}
    for provider in PROVIDERS:
        transport = service(fake_server, provider)
        answers[provider] = [
            (r.content_text, r.tool_calls, r.finish_reason)
            for r in [await transport.complete(request) for request in CONVERSATION.values()]
        ]
        await transport.close()
    assert answers["openai"] == answers["anthropic"]


async def test_parallel_tool_calls_are_assembled_by_index(llm: LLMService) -> None:
    streamed, _ = await collect(llm, CONVERSATION["parallel_tool_calls"])
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in streamed.tool_calls]
    assert calls == [("add", {"a": 1, "b": 2}), ("add", {"a": 30, "b": 12}), ("fs.read_file", {"path": "x"})]
    assert len({c["id"] for c in streamed.tool_calls}) == 3 and streamed.finish_reason == "tool_calls"


async def test_stream_yields_typed_tool_call_argument_deltas(llm: LLMService) -> None:
    chunks = [c async for c in llm.stream(CONVERSATION["parallel_tool_calls"])]
    final = chunks[-1]
    assert final.is_final and not any(c.is_final for c in chunks[:-1])
    assert final.token_usage is not None and final.token_usage.total > 0
    fragments: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for delta in chunk.delta_tool_calls or ():
            fragments.setdefault(delta["index"], []).append(delta["function"].get("arguments") or "")
            if delta["function"].get("name"):
                names.setdefault(delta["index"], delta["function"]["name"])
    assert names == {0: "add", 1: "add", 2: "fs.read_file"}
    assert [json.loads("".join(fragments[i])) for i in sorted(fragments)] == [
        json.loads(c["function"]["arguments"]) for c in final.tool_calls
    ]
    assert max(len(f) for f in fragments.values()) > 1  # arguments really arrive in pieces


async def test_stream_yields_text_and_think_deltas(llm: LLMService) -> None:
    chunks = [c async for c in llm.stream(CONVERSATION["think"])]
    assert "".join(c.think for c in chunks) == "Six times seven."
    assert "".join(c.delta_text for c in chunks) == "The answer is 42."
    assert sum(1 for c in chunks if c.delta_text) > 1
