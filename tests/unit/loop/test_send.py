"""One send: statuses, usage, stats, tool failures as results, concurrency, order."""

from __future__ import annotations

import asyncio
import json

import pytest
from loop_support import LoopFactory, roles

from power_loop import (
    AgentEventBus,
    AgentEventType,
    AgentLoopConfig,
    InvalidArgumentError,
    LLMProviderError,
    LLMResponse,
    LLMRetryPolicy,
    LLMTokenUsage,
    SessionNotFoundError,
    ToolNotFound,
)
from power_loop.testing import ScriptedLLM


async def test_tool_round_then_answer_commits_four_messages_and_sums_usage(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 2, "b": 3})]), "It is 5."])
    loop = make_loop(llm)
    sid = await loop.new_session()
    result = await loop.send("What is 2+3?", session_id=sid)
    assert result.status == "completed"
    assert result.final_text == "It is 5."
    assert result.rounds == 2 and result.tool_calls == 1 and result.send_index == 1
    assert result.usage["calls"] == 2
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"] > 0
    messages = await loop.get_messages(sid)
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    assert messages[2] == {"role": "tool", "content": "5", "tool_call_id": "call_1"}
    stats = await loop.get_session_stats(sid)
    assert stats is not None
    assert (stats.sends, stats.rounds, stats.llm_calls, stats.tool_calls) == (1, 2, 2, 1)
    assert stats.total_tokens == result.usage["total_tokens"]


async def test_warm_tool_round_costs_four_commits_and_no_history_read(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["hi", ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "2"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    await loop.send("hello", session_id=sid)
    assert loop.store is not None
    counters = loop.store.db.counters
    counters.reset()
    await loop.send("add", session_id=sid)
    assert counters.commits == 4
    assert counters.reads == 0  # the warm window is fenced by next_seq on its first write


async def test_history_is_sent_back_each_round(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["first", "second"])
    loop = make_loop(llm, config=AgentLoopConfig(system_prompt="Be brief."))
    sid = await loop.new_session()
    await loop.send("one", session_id=sid)
    await loop.send("two", session_id=sid)
    req = llm.last_request
    assert req.system_prompt is not None and req.system_prompt.startswith("Be brief.")
    assert [m["content"] for m in req.messages] == ["one", "first", "two"]


async def test_system_prompt_precedence_per_call_over_session_over_config(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["a", "b", "c"])
    loop = make_loop(llm, config=AgentLoopConfig(system_prompt="CONFIG", inject_tool_descriptions=False))
    sid = await loop.new_session(system_prompt="SESSION")
    other = await loop.new_session()
    await loop.send("x", session_id=sid, system_prompt="CALL")
    assert llm.last_request.system_prompt == "CALL"
    await loop.send("x", session_id=sid)
    assert llm.last_request.system_prompt == "SESSION"
    await loop.send("x", session_id=other)
    assert llm.last_request.system_prompt == "CONFIG"
    assert await loop.resolve_system_prompt(session_id=sid) == "SESSION"


async def test_tool_catalog_lists_exactly_the_offered_tools(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["ok"])
    loop = make_loop(llm, config=AgentLoopConfig(system_prompt="P"))
    sid = await loop.new_session()
    await loop.send("x", session_id=sid, tools=["add"])
    req = llm.last_request
    assert req.system_prompt == "P\n\n# Available Tools\n- add: Add two integers."
    assert [t["function"]["name"] for t in req.tools or []] == ["add"]


async def test_unoffered_tool_is_answered_unknown_and_never_runs(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("boom", {"reason": "no"})]), "done"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid, tools=["add"])
    messages = await loop.get_messages(sid)
    assert messages[2]["content"] == "Error: unknown tool 'boom'"
    assert result.tool_calls == 0


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("nope", {}), "Error: unknown tool 'nope'"),
        (("add", '{"a": 1,'), "Error: invalid JSON arguments for tool 'add': "),
        (("add", {"a": 1}), "Error: invalid arguments for tool 'add': missing required parameter 'b'"),
        (("boom", {"reason": "kaput"}), "Error: RuntimeError: kaput"),
    ],
)
async def test_tool_failures_become_results_and_events(
    make_loop: LoopFactory, call: tuple[str, object], expected: str
) -> None:
    bus = AgentEventBus()
    failed: list[str] = []
    bus.subscribe(AgentEventType.TOOL_CALL_FAILED, lambda e: failed.append(e.payload["output"]))
    llm = ScriptedLLM([ScriptedLLM.tool_calls([call]), "recovered"])  # type: ignore[list-item]
    loop = make_loop(llm, bus=bus)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "completed"
    tool_msg = (await loop.get_messages(sid))[2]
    assert tool_msg["content"].startswith(expected)
    assert failed and failed[0].startswith(expected)
    # the model saw the failure in the next request
    assert llm.last_request.messages[-1]["content"].startswith(expected)


async def test_tool_timeout_becomes_a_result(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("slow", {"seconds": 5})]), "ok"])
    loop = make_loop(llm, config=AgentLoopConfig(tool_timeout_s=0.05))
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    assert "timed out" in (await loop.get_messages(sid))[2]["content"]


async def test_oversized_tool_output_is_truncated_with_a_marker(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("big", {"n": 5000})]), "ok"])
    loop = make_loop(llm, config=AgentLoopConfig(max_tool_output_chars=1000))
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    content = (await loop.get_messages(sid))[2]["content"]
    assert len(content) < 1200 and "truncated" in content


async def test_parallel_tool_calls_overlap_and_results_keep_call_order(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("slow", {"seconds": 0.3}), ("add", {"a": 1, "b": 2}),
                                               ("slow", {"seconds": 0.3})]), "ok"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    started = asyncio.get_running_loop().time()
    await loop.send("x", session_id=sid)
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 0.55  # two 0.3 s calls ran concurrently
    msgs = await loop.get_messages(sid)
    assert [m.get("tool_call_id") for m in msgs[2:5]] == ["call_1", "call_2", "call_3"]
    assert [m["content"] for m in msgs[2:5]] == ["slept", "3", "slept"]


async def test_round_limit_adds_a_note_and_one_tool_free_call(make_loop: LoopFactory) -> None:
    calls = [ScriptedLLM.tool_calls([("add", {"a": i, "b": i})]) for i in range(2)]
    llm = ScriptedLLM([*calls, "summary"])
    bus = AgentEventBus()
    kinds: list[str] = []
    bus.subscribe(AgentEventType.STATUS_CHANGED, lambda e: kinds.append(e.payload["kind"]))
    loop = make_loop(llm, config=AgentLoopConfig(max_rounds=2), bus=bus)
    sid = await loop.new_session()
    result = await loop.send("loop", session_id=sid)
    assert result.status == "hit_round_limit"
    assert result.final_text == "summary"
    assert llm.last_request.tools is None
    assert "hit_round_limit" in kinds
    msgs = await loop.get_messages(sid)
    assert roles(msgs) == ["user", "assistant", "tool", "assistant", "tool", "user", "assistant"]


async def test_budget_stops_at_round_boundary_without_another_call(make_loop: LoopFactory) -> None:
    big = LLMResponse(raw_text="", tool_calls=[{"id": "c1", "type": "function",
                                                "function": {"name": "add", "arguments": '{"a":1,"b":1}'}}],
                      token_usage=LLMTokenUsage(prompt_tokens=900, completion_tokens=200))
    llm = ScriptedLLM([big, "never"])
    loop = make_loop(llm, config=AgentLoopConfig(max_tokens_per_run=1000))
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "budget_exceeded"
    assert llm.remaining == 1
    msgs = await loop.get_messages(sid)
    assert roles(msgs) == ["user", "assistant", "tool"]  # the crossing round finished cleanly
    assert await loop.get_pending(sid) is None


async def test_llm_failure_after_retries_degrades_and_session_stays_usable(make_loop: LoopFactory) -> None:
    err = LLMProviderError("overloaded", provider="scripted", status_code=503, retryable=True)
    llm = ScriptedLLM([err, err, "fine now"])
    bus = AgentEventBus()
    retries: list[int] = []
    bus.subscribe(AgentEventType.LLM_RETRY_ATTEMPTED, lambda e: retries.append(e.payload["attempt"]))
    policy = LLMRetryPolicy(max_attempts=2, backoff_initial=0.001, backoff_max=0.001)
    loop = make_loop(llm, config=AgentLoopConfig(retry_policy=policy), bus=bus)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "degraded"
    assert result.final_text.startswith("[degraded: LLM retry exhausted — LLMProviderError: overloaded")
    assert retries == [1]
    again = await loop.send("y", session_id=sid)
    assert again.status == "completed" and again.final_text == "fine now"


async def test_non_retryable_provider_error_degrades_without_retry(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([LLMProviderError("bad model", provider="scripted", status_code=400), "unused"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "degraded"
    assert llm.remaining == 1


async def test_tool_calls_without_registry_leave_session_pending(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 2})])])
    loop = make_loop(llm, tools=None)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "pending_tools"
    assert result.pending_tool_calls[0]["function"]["name"] == "add"
    pending = await loop.get_pending(sid)
    assert pending is not None and pending["assistant_seq"] == 2


async def test_concurrent_sends_on_one_session_are_serialised(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.delayed("first answer", 0.1), "second answer"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    a, b = await asyncio.gather(loop.send("A", session_id=sid), loop.send("B", session_id=sid))
    assert {a.final_text, b.final_text} == {"first answer", "second answer"}
    msgs = await loop.get_messages(sid)
    assert [m["content"] for m in msgs] == ["A", "first answer", "B", "second answer"]


async def test_sessions_run_concurrently(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.delayed("x", 0.2), ScriptedLLM.delayed("y", 0.2)])
    loop = make_loop(llm)
    s1, s2 = await loop.new_session(), await loop.new_session()
    t0 = asyncio.get_running_loop().time()
    await asyncio.gather(loop.send("1", session_id=s1), loop.send("2", session_id=s2))
    assert asyncio.get_running_loop().time() - t0 < 0.35


@pytest.mark.parametrize("bad", ["", "   ", 42, None, {"content": ""}, {"role": "system", "content": "x"}])
async def test_bad_user_input_is_refused_before_any_write(make_loop: LoopFactory, bad: object) -> None:
    loop = make_loop(ScriptedLLM([]))
    sid = await loop.new_session()
    with pytest.raises(InvalidArgumentError) as info:
        await loop.send(bad, session_id=sid)  # type: ignore[arg-type]
    assert info.value.code == "invalid_argument"
    assert await loop.get_messages(sid) == []


async def test_unknown_session_raises_not_found(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM([]))
    with pytest.raises(SessionNotFoundError) as info:
        await loop.send("hi", session_id="no-such-session")
    assert info.value.code == "session.not_found" and info.value.session_id == "no-such-session"
    assert await loop.prewarm("no-such-session") is False


async def test_unknown_tool_name_in_tools_is_refused_before_any_write(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM([]))
    sid = await loop.new_session()
    with pytest.raises(ToolNotFound):
        await loop.send("hi", session_id=sid, tools=["add", "ghost"])
    assert await loop.get_messages(sid) == []


async def test_message_parts_input_is_stored_as_given(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["seen"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    await loop.send({"role": "user", "content": parts}, sid)
    assert (await loop.get_messages(sid))[0]["content"] == parts
    assert json.dumps(llm.last_request.messages[0]["content"]) == json.dumps(parts)
