"""What each hook directive does to a send (API.md §6)."""

from __future__ import annotations

import pytest
from loop_support import LoopFactory, roles

from power_loop import (
    AgentEventBus,
    AgentEventType,
    HookDirective,
    HookPoint,
    LLMBeforeCtx,
    LLMResponse,
    MessageAppendCtx,
    RoundStartCtx,
    ToolAfterCtx,
    ToolBeforeCtx,
    ToolErrorCtx,
)
from power_loop.testing import ScriptedLLM


async def test_tool_before_skip_uses_output_verbatim(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("boom", {"reason": "x"})]), "ok"])
    loop = make_loop(llm)

    def veto(ctx: ToolBeforeCtx) -> HookDirective:
        ctx.output = "vetoed by policy"
        return HookDirective.SKIP

    loop.hooks.register(HookPoint.TOOL_BEFORE, veto)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert (await loop.get_messages(sid))[2]["content"] == "vetoed by policy"
    assert result.tool_calls == 0


async def test_tool_before_can_rewrite_arguments(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "ok"])
    loop = make_loop(llm)

    def double(ctx: ToolBeforeCtx) -> None:
        ctx.tool_args = {"a": 10, "b": 10}

    loop.hooks.register(HookPoint.TOOL_BEFORE, double)
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    assert (await loop.get_messages(sid))[2]["content"] == "20"


async def test_llm_before_short_circuit_skips_the_llm(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([])
    loop = make_loop(llm)

    async def canned(ctx: LLMBeforeCtx) -> HookDirective:
        ctx.output = LLMResponse(raw_text="cached", content_text="cached")
        return HookDirective.SHORT_CIRCUIT

    loop.hooks.register(HookPoint.LLM_BEFORE, canned)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.final_text == "cached" and llm.requests == []


async def test_round_start_break_ends_the_run_completed(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "never"])
    loop = make_loop(llm)

    def stop_second(ctx: RoundStartCtx) -> HookDirective | None:
        return HookDirective.BREAK if ctx.round_index == 2 else None

    loop.hooks.register(HookPoint.ROUND_START, stop_second)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "completed" and llm.remaining == 1


async def test_message_append_edits_what_is_persisted(make_loop: LoopFactory) -> None:
    loop = make_loop(ScriptedLLM(["secret answer"]))

    def redact(ctx: MessageAppendCtx) -> None:
        if ctx.message["role"] == "assistant":
            ctx.message["content"] = "[redacted]"

    loop.hooks.register(HookPoint.MESSAGE_APPEND, redact)
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    assert (await loop.get_messages(sid))[1]["content"] == "[redacted]"


async def test_tool_after_break_skips_the_rest_of_the_batch(make_loop: LoopFactory) -> None:
    calls = [("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2})]
    llm = ScriptedLLM([ScriptedLLM.tool_calls(calls), "ok"])
    loop = make_loop(llm, config=None)
    loop.config = loop.config.with_changes(max_parallel_tool_calls=1)

    def stop(ctx: ToolAfterCtx) -> HookDirective:
        return HookDirective.BREAK

    loop.hooks.register(HookPoint.TOOL_AFTER, stop)
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    tools = [m["content"] for m in await loop.get_messages(sid) if m["role"] == "tool"]
    assert tools == ["2", "<skipped: tool.after hook stopped the batch>"]


async def test_tool_error_skip_turns_failure_into_normal_result(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("boom", {"reason": "x"})]), "ok"])
    bus = AgentEventBus()
    failed: list[object] = []
    bus.subscribe(AgentEventType.TOOL_CALL_FAILED, failed.append)
    loop = make_loop(llm, bus=bus)

    def fallback(ctx: ToolErrorCtx) -> HookDirective:
        ctx.output = f"fallback after {ctx.error_message}"
        return HookDirective.SKIP

    loop.hooks.register(HookPoint.TOOL_ERROR, fallback)
    sid = await loop.new_session()
    await loop.send("x", session_id=sid)
    assert (await loop.get_messages(sid))[2]["content"] == "fallback after x"
    assert failed == []


async def test_round_decide_break_answers_calls_and_stops(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "never"])
    loop = make_loop(llm)
    loop.hooks.register(HookPoint.ROUND_DECIDE, lambda ctx: HookDirective.BREAK)
    sid = await loop.new_session()
    result = await loop.send("x", session_id=sid)
    assert result.status == "completed"
    assert (await loop.get_messages(sid))[2]["content"] == "<skipped: round.decide hook>"
    assert await loop.get_pending(sid) is None


async def test_raising_hook_aborts_send_keeps_rows_and_reports(make_loop: LoopFactory) -> None:
    bus = AgentEventBus()
    seen: list[str] = []
    bus.subscribe(None, lambda e: seen.append(e.type.value))
    llm = ScriptedLLM([ScriptedLLM.tool_calls([("add", {"a": 1, "b": 1})]), "never"])
    loop = make_loop(llm, bus=bus)

    def explode(ctx: ToolBeforeCtx) -> None:
        raise KeyError("policy service down")

    loop.hooks.register(HookPoint.TOOL_BEFORE, explode)
    sid = await loop.new_session()
    with pytest.raises(KeyError):
        await loop.send("x", session_id=sid)
    assert seen[-2:] == ["agent_error", "session_ended"]
    assert roles(await loop.get_messages(sid)) == ["user", "assistant"]
    assert await loop.get_pending(sid) is not None  # resumable afterwards


async def test_session_start_edits_apply_to_this_run_only(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["a", "b"])
    loop = make_loop(llm)

    def inject(ctx: object) -> None:
        ctx.messages.insert(0, {"role": "user", "content": "(context for this run)"})  # type: ignore[attr-defined]

    loop.hooks.register(HookPoint.SESSION_START, inject)
    sid = await loop.new_session()
    await loop.send("hello", session_id=sid)
    assert [m["content"] for m in llm.last_request.messages] == ["(context for this run)", "hello"]
    assert [m["content"] for m in await loop.get_messages(sid)] == ["hello", "a"]


async def test_in_place_edits_by_hooks_stay_in_their_run(make_loop: LoopFactory) -> None:
    """A hook that edits a message dict in place (not only the list) changes what this
    run sends and nothing else: the cached window, later sends and ``get_messages`` keep
    the stored text, and the next request's bytes match its messages."""
    llm = ScriptedLLM(["a", "b", "c", "d"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    await loop.send("secret one", session_id=sid)

    def redact_start(ctx: object) -> None:
        ctx.messages[0]["content"] = "[redacted]"  # type: ignore[attr-defined]

    def redact_call(ctx: LLMBeforeCtx) -> None:
        ctx.messages[1]["content"] = "[hidden]"

    loop.hooks.register(HookPoint.SESSION_START, redact_start)
    loop.hooks.register(HookPoint.LLM_BEFORE, redact_call)
    await loop.send("two", session_id=sid)
    assert [m["content"] for m in llm.last_request.messages] == ["[redacted]", "[hidden]", "two"]
    loop.hooks.unregister(HookPoint.SESSION_START, redact_start)
    loop.hooks.unregister(HookPoint.LLM_BEFORE, redact_call)
    await loop.send("three", session_id=sid)
    assert [m["content"] for m in llm.last_request.messages] == ["secret one", "a", "two", "b", "three"]


async def test_get_messages_returns_copies(make_loop: LoopFactory) -> None:
    llm = ScriptedLLM(["a", "b"])
    loop = make_loop(llm)
    sid = await loop.new_session()
    await loop.send("one", session_id=sid)
    (await loop.get_messages(sid))[0]["content"] = "changed by the caller"
    await loop.send("two", session_id=sid)
    assert llm.last_request.messages[0]["content"] == "one"
    assert (await loop.get_messages(sid))[0]["content"] == "one"
