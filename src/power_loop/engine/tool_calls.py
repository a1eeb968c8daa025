"""Running the tool calls of one assistant turn.

Calls run concurrently (bounded by ``max_parallel_tool_calls``); results are committed
in call order, each as soon as it and every earlier call are done, so a crash loses at
most the calls still running. Every failure (unknown tool, malformed JSON, invalid
arguments, raising handler, timeout) becomes the result text the model sees plus a
``tool_call_failed`` event. Hook exceptions propagate and abort the send.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from power_loop.contracts.events import (
    AgentEventType,
    ToolCallCompletedPayload,
    ToolCallFailedPayload,
    ToolCallStartedPayload,
)
from power_loop.contracts.hooks import HookDirective, HookPoint, ToolAfterCtx, ToolBeforeCtx, ToolErrorCtx
from power_loop.contracts.json import JSONObject
from power_loop.engine.context import RunContext
from power_loop.store.codec import storable
from power_loop.tools.execution import (
    ToolOutcome,
    execute_tool,
    format_invalid_json,
    format_unknown_tool,
    parse_tool_arguments,
)

CANCELLED_RESULT = "<cancelled>"
BATCH_STOPPED_RESULT = "<skipped: tool.after hook stopped the batch>"


@dataclass(slots=True)
class _Batch:
    """Shared state of one batch of concurrent tool calls."""

    stopped: bool = False


def call_parts(call: JSONObject) -> tuple[str, str, object]:
    """(id, name, raw arguments) of an OpenAI-shaped tool call, tolerant of junk."""
    fn = call.get("function") or {}
    return str(call.get("id") or ""), str(fn.get("name") or ""), fn.get("arguments")


async def run_tool_calls(ctx: RunContext, calls: list[JSONObject], *, round_index: int) -> None:
    """Execute ``calls`` and append one tool message per call, in call order."""
    batch = _Batch()
    if len(calls) == 1:
        output = await _guarded(ctx, calls[0], round_index, batch, None)
        await _append_result(ctx, calls[0], output, round_index, last=True)
        return
    limit = asyncio.Semaphore(ctx.config.max_parallel_tool_calls)
    tasks = [asyncio.ensure_future(_guarded(ctx, c, round_index, batch, limit)) for c in calls]
    try:
        last = len(calls) - 1
        for i, (call, task) in enumerate(zip(calls, tasks, strict=True)):
            output = await task
            await _append_result(ctx, call, output, round_index, last=i == last)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def answer_calls(ctx: RunContext, calls: list[JSONObject], text: str, *, round_index: int | None) -> None:
    """Answer ``calls`` with the same synthetic ``text`` in one commit (nothing executes)."""
    if calls:
        await ctx.append([_tool_message(c, text) for c in calls], round_index=round_index)


def _tool_message(call: JSONObject, output: str) -> JSONObject:
    return {"role": "tool", "tool_call_id": call_parts(call)[0], "content": storable(output)}


async def _append_result(ctx: RunContext, call: JSONObject, output: str, round_index: int, *, last: bool) -> None:
    # only the batch's last result precedes a round boundary, where follow-ups are drained
    await ctx.append([_tool_message(call, output)], round_index=round_index, probe=last)


async def _guarded(ctx: RunContext, call: JSONObject, round_index: int, batch: _Batch,
                   limit: asyncio.Semaphore | None) -> str:
    if ctx.token.is_cancelled():
        return CANCELLED_RESULT
    if batch.stopped:
        return BATCH_STOPPED_RESULT
    if limit is None:
        return await _run_one(ctx, call, round_index, batch)
    async with limit:
        if ctx.token.is_cancelled():
            return CANCELLED_RESULT
        if batch.stopped:
            return BATCH_STOPPED_RESULT
        return await _run_one(ctx, call, round_index, batch)


async def _run_one(ctx: RunContext, call: JSONObject, round_index: int, batch: _Batch) -> str:
    call_id, name, raw_args = call_parts(call)
    registry = ctx.registry
    if registry is None or not registry.has(name):
        return _rejected(ctx, call_id, name, {}, format_unknown_tool(name), "unknown_tool", round_index)
    args, detail = parse_tool_arguments(raw_args)  # type: ignore[arg-type]  # junk is reported, not trusted
    if args is None:
        return _rejected(ctx, call_id, name, {}, format_invalid_json(name, detail or "not an object"),
                         "invalid_json", round_index)
    hooks = ctx.hooks
    if hooks.has(HookPoint.TOOL_BEFORE):
        bctx = ToolBeforeCtx(tool_call=call, tool_name=name, tool_args=args, round_index=round_index,
                             session_id=ctx.session_id)
        if await hooks.run(HookPoint.TOOL_BEFORE, bctx) is HookDirective.SKIP:
            output = "" if bctx.output is None else str(bctx.output)
            _completed(ctx, call_id, bctx.tool_name, bctx.tool_args, output, False, round_index, 0.0)
            return output
        name, args = bctx.tool_name, bctx.tool_args
    if ctx.bus.wants(AgentEventType.TOOL_CALL_STARTED):
        ctx.emit(AgentEventType.TOOL_CALL_STARTED,
                 ToolCallStartedPayload(name=name, tool_input=args, tool_call_id=call_id), round_index=round_index)
    outcome = await _execute(ctx, name, args)
    if outcome.failed and outcome.error_kind == "handler_error" and hooks.has(HookPoint.TOOL_ERROR):
        ectx = ToolErrorCtx(tool_call=call, tool_name=name, tool_args=args, error=outcome.error,
                            error_message=str(outcome.error), round_index=round_index, session_id=ctx.session_id)
        directive = await hooks.run(HookPoint.TOOL_ERROR, ectx)
        if directive is HookDirective.SHORT_CIRCUIT:
            outcome = await _execute(ctx, name, args)
        elif directive is HookDirective.SKIP:
            outcome = ToolOutcome(output="" if ectx.output is None else str(ectx.output), failed=False,
                                  error_kind=None, error=None, executed=outcome.executed,
                                  duration_ms=outcome.duration_ms, truncated=False)
    if outcome.executed:
        ctx.tool_calls_executed += 1
    output, failed = outcome.output, outcome.failed
    if hooks.has(HookPoint.TOOL_AFTER):
        actx = ToolAfterCtx(tool_call=call, tool_name=name, tool_args=args, output=output, failed=failed,
                            round_index=round_index, session_id=ctx.session_id)
        if await hooks.run(HookPoint.TOOL_AFTER, actx) is HookDirective.BREAK:
            batch.stopped = True
        output, failed = str(actx.output), actx.failed
    if failed:
        _failed(ctx, call_id, name, args, output, outcome.error_kind or "handler_error", round_index)
    _completed(ctx, call_id, name, args, output, failed, round_index, outcome.duration_ms)
    return output


async def _execute(ctx: RunContext, name: str, args: JSONObject) -> ToolOutcome:
    registry = ctx.registry
    assert registry is not None  # checked by the caller
    registered = registry.get(name)
    timeout = ctx.config.tool_timeout_s
    max_chars = ctx.config.max_tool_output_chars
    if registered is not None:
        if registered.definition.timeout_s is not None:
            timeout = registered.definition.timeout_s
        if registered.definition.max_output_chars is not None:
            max_chars = registered.definition.max_output_chars
    return await execute_tool(registry, name, args, timeout_s=timeout, max_output_chars=max_chars)


def _rejected(ctx: RunContext, call_id: str, name: str, args: JSONObject, output: str, kind: str,
              round_index: int) -> str:
    _failed(ctx, call_id, name, args, output, kind, round_index)
    _completed(ctx, call_id, name, args, output, True, round_index, 0.0)
    return output


def _failed(ctx: RunContext, call_id: str, name: str, args: JSONObject, output: str, kind: str,
            round_index: int) -> None:
    ctx.emit(AgentEventType.TOOL_CALL_FAILED, ToolCallFailedPayload(
        name=name, tool_input=args, tool_call_id=call_id, output=output, error_kind=kind), round_index=round_index)


def _completed(ctx: RunContext, call_id: str, name: str, args: JSONObject, output: str, failed: bool,
               round_index: int, duration_ms: float) -> None:
    ctx.emit(AgentEventType.TOOL_CALL_COMPLETED, ToolCallCompletedPayload(
        name=name, tool_input=args, tool_call_id=call_id, output=output, failed=failed,
        duration_ms=duration_ms), round_index=round_index)
