"""AgentHooks: ordering, directives, sync/async handlers, errors, and the hook-point catalogue."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from power_loop import AgentHooks, HookDirective, HookPoint, InvalidArgumentError
from power_loop.contracts import hooks as hooks_module
from power_loop.contracts.hooks import BaseHookCtx, TimerFireCtx, ToolBeforeCtx

P = HookPoint
D = HookDirective

CONTRACT_POINTS = {
    "SESSION_START": ("session.start", "SessionStartCtx", {"scope", "messages", "stop_event"}),
    "SESSION_END": ("session.end", "SessionEndCtx", {"scope", "reason", "messages", "final_text"}),
    "ROUND_START": ("round.start", "RoundStartCtx", {"messages", "stop_event", "reason"}),
    "LLM_BEFORE": ("llm.before", "LLMBeforeCtx",
                   {"messages", "system_prompt", "tools", "max_tokens", "temperature", "output"}),
    "LLM_AFTER": ("llm.after", "LLMAfterCtx", {"messages", "output"}),
    "ROUND_DECIDE": ("round.decide", "RoundDecideCtx",
                     {"messages", "tool_calls", "assistant_text", "output"}),
    "TOOLS_BATCH_BEFORE": ("tools.batch.before", "ToolsBatchBeforeCtx", {"messages", "tool_calls", "output"}),
    "TOOL_BEFORE": ("tool.before", "ToolBeforeCtx", {"tool_call", "tool_name", "tool_args", "output"}),
    "TOOL_AFTER": ("tool.after", "ToolAfterCtx", {"tool_call", "tool_name", "tool_args", "output", "failed"}),
    "TOOL_ERROR": ("tool.error", "ToolErrorCtx",
                   {"tool_call", "tool_name", "tool_args", "error", "error_message", "output"}),
    "TOOLS_BATCH_AFTER": ("tools.batch.after", "ToolsBatchAfterCtx", {"messages", "used_todo"}),
    "ROUND_END": ("round.end", "RoundEndCtx", {"messages", "has_tools", "response_text", "used_todo"}),
    "COMPACT_BEFORE": ("compact.before", "CompactBeforeCtx", {"messages"}),
    "COMPACT_AFTER": ("compact.after", "CompactAfterCtx",
                      {"messages", "messages_before_count", "messages_after_count"}),
    "MESSAGE_APPEND": ("message.append", "MessageAppendCtx", {"message"}),
    "MEMORY_RECALLED": ("memory.recalled", "MemoryRecalledCtx", {"recalled", "budget_tokens"}),
    "TIMER_FIRE": ("timer.fire", "TimerFireCtx", {"timer_id", "note", "due_at", "message", "postpone_s"}),
}


def ctx() -> ToolBeforeCtx:
    return ToolBeforeCtx(tool_name="bash")


def recorder(calls: list[str], name: str, result: Any = None) -> Callable[[Any], Any]:
    def handler(_ctx: Any) -> Any:
        calls.append(name)
        return result

    return handler


# -- the catalogue ----------------------------------------------------------------------
def test_hook_points_and_directives_have_the_contract_values() -> None:
    assert {p.name: p.value for p in P} == {name: spec[0] for name, spec in CONTRACT_POINTS.items()}
    assert {d.name: d.value for d in D} == {
        "CONTINUE": "continue", "SKIP": "skip", "BREAK": "break", "SHORT_CIRCUIT": "short_circuit"}


@pytest.mark.parametrize("name", sorted(CONTRACT_POINTS))
def test_every_hook_point_has_a_ctx_with_the_contract_fields(name: str) -> None:
    _value, ctx_name, fields = CONTRACT_POINTS[name]
    cls = getattr(hooks_module, ctx_name)
    assert issubclass(cls, BaseHookCtx)
    assert fields <= {f.name for f in dataclasses.fields(cls)}
    instance = cls()
    assert (instance.round_index, instance.directive, instance.session_id) == (0, D.CONTINUE, None)


def test_timer_fire_ctx_defaults_to_no_postponement() -> None:
    assert TimerFireCtx().postpone_s == 0.0


# -- ordering ---------------------------------------------------------------------------
async def test_handlers_run_by_ascending_order_then_registration() -> None:
    hooks = AgentHooks()
    calls: list[str] = []
    hooks.register(P.TOOL_BEFORE, recorder(calls, "0a"))
    hooks.register(P.TOOL_BEFORE, recorder(calls, "10"), order=10)
    hooks.register(P.TOOL_BEFORE, recorder(calls, "-5"), order=-5)
    hooks.register(P.TOOL_BEFORE, recorder(calls, "0b"))
    await hooks.run(P.TOOL_BEFORE, ctx())
    assert calls == ["-5", "0a", "0b", "10"]
    assert [h.__name__ for h in hooks.handlers(P.TOOL_BEFORE)] == ["handler"] * 4


@given(orders=st.lists(st.integers(-3, 3), max_size=12))
async def test_run_order_is_a_stable_sort_by_order_for_any_registration(orders: list[int]) -> None:
    hooks = AgentHooks()
    calls: list[str] = []
    for i, order in enumerate(orders):
        hooks.register(P.ROUND_END, recorder(calls, str(i)), order=order)
    await hooks.run(P.ROUND_END, ctx())
    expected = sorted(range(len(orders)), key=lambda i: orders[i])
    assert calls == [str(i) for i in expected]


async def test_a_handler_registered_during_a_run_waits_for_the_next_run() -> None:
    hooks = AgentHooks()
    calls: list[str] = []

    def adds_another(_ctx: Any) -> None:
        calls.append("first")
        hooks.register(P.TOOL_BEFORE, recorder(calls, "late"))

    hooks.register(P.TOOL_BEFORE, adds_another)
    await hooks.run(P.TOOL_BEFORE, ctx())
    assert calls == ["first"]


# -- directives -------------------------------------------------------------------------
async def test_without_handlers_run_returns_the_ctx_directive() -> None:
    assert await AgentHooks().run(P.TOOL_BEFORE, ctx()) is D.CONTINUE


async def test_the_last_returned_directive_wins_and_lands_on_the_ctx() -> None:
    hooks = AgentHooks()
    calls: list[str] = []
    hooks.register(P.TOOL_BEFORE, recorder(calls, "skip", D.SKIP))
    hooks.register(P.TOOL_BEFORE, recorder(calls, "break", D.BREAK))
    c = ctx()
    assert await hooks.run(P.TOOL_BEFORE, c) is D.BREAK
    assert c.directive is D.BREAK
    assert calls == ["skip", "break"]  # a directive does not stop later handlers


async def test_a_later_none_keeps_the_earlier_directive_and_a_later_continue_overrides_it() -> None:
    hooks = AgentHooks()
    hooks.register(P.TOOL_BEFORE, lambda _c: D.SKIP)
    hooks.register(P.TOOL_BEFORE, lambda _c: None)
    assert await hooks.run(P.TOOL_BEFORE, ctx()) is D.SKIP
    hooks.register(P.TOOL_BEFORE, lambda _c: D.CONTINUE)
    assert await hooks.run(P.TOOL_BEFORE, ctx()) is D.CONTINUE


async def test_a_directive_assigned_to_the_ctx_counts_like_a_returned_one() -> None:
    hooks = AgentHooks()

    def skip_bash(c: ToolBeforeCtx) -> None:
        c.output = "shell disabled"
        c.directive = D.SKIP

    hooks.register(P.TOOL_BEFORE, lambda _c: D.BREAK)
    hooks.register(P.TOOL_BEFORE, skip_bash, order=1)
    c = ctx()
    assert await hooks.run(P.TOOL_BEFORE, c) is D.SKIP
    assert c.output == "shell disabled"


async def test_a_directive_value_string_is_accepted() -> None:
    hooks = AgentHooks()
    hooks.register(P.TOOL_BEFORE, lambda _c: "short_circuit")
    assert await hooks.run(P.TOOL_BEFORE, ctx()) is D.SHORT_CIRCUIT


@pytest.mark.parametrize("bad", [True, "stop", 3, {"directive": "skip"}])
async def test_returning_something_other_than_a_directive_raises_invalid_argument(bad: Any) -> None:
    hooks = AgentHooks()
    hooks.register(P.TOOL_BEFORE, lambda _c: bad)
    with pytest.raises(InvalidArgumentError, match=r"tool\.before"):
        await hooks.run(P.TOOL_BEFORE, ctx())


# -- sync and async handlers ------------------------------------------------------------
async def test_sync_and_async_handlers_run_in_one_order_and_mutate_the_same_ctx() -> None:
    hooks = AgentHooks()
    seen: list[str] = []

    async def async_handler(c: ToolBeforeCtx) -> HookDirective:
        seen.append("async:" + c.tool_name)
        c.tool_name = "renamed"
        return D.SKIP

    hooks.register(P.TOOL_BEFORE, async_handler)
    hooks.register(P.TOOL_BEFORE, lambda c: seen.append("sync:" + c.tool_name), order=1)
    c = ctx()
    assert await hooks.run(P.TOOL_BEFORE, c) is D.SKIP
    assert seen == ["async:bash", "sync:renamed"]


async def test_async_callable_objects_and_awaitable_returning_handlers_are_awaited() -> None:
    class AsyncHandler:
        async def __call__(self, c: ToolBeforeCtx) -> HookDirective:
            return D.BREAK

    async def later() -> HookDirective:
        return D.SKIP

    hooks = AgentHooks()
    hooks.register(P.TOOL_BEFORE, AsyncHandler())
    assert await hooks.run(P.TOOL_BEFORE, ctx()) is D.BREAK
    hooks.register(P.TOOL_BEFORE, lambda _c: later(), order=1)
    assert await hooks.run(P.TOOL_BEFORE, ctx()) is D.SKIP


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_raising_handler_propagates_unchanged_and_stops_later_handlers(is_async: bool) -> None:
    hooks = AgentHooks()
    error = RuntimeError("hook failed")
    calls: list[str] = []

    def sync_boom(_c: Any) -> None:
        raise error

    async def async_boom(_c: Any) -> None:
        raise error

    hooks.register(P.ROUND_START, async_boom if is_async else sync_boom)
    hooks.register(P.ROUND_START, recorder(calls, "after"), order=1)
    with pytest.raises(RuntimeError) as info:
        await hooks.run(P.ROUND_START, ctx())
    assert info.value is error
    assert calls == []


# -- registration management ------------------------------------------------------------
async def test_a_hook_point_may_be_named_by_its_value_string() -> None:
    hooks = AgentHooks()
    calls: list[str] = []
    hooks.register("tool.before", recorder(calls, "x"))
    assert hooks.has(P.TOOL_BEFORE) and hooks.has("tool.before")
    await hooks.run("tool.before", ctx())
    await hooks.run(P.TOOL_BEFORE, ctx())
    assert calls == ["x", "x"]


@pytest.mark.parametrize("method", ["register", "unregister", "clear", "handlers", "has", "run"])
async def test_an_unknown_hook_point_string_raises_invalid_argument(method: str) -> None:
    hooks = AgentHooks()
    calls: dict[str, Callable[[], Any]] = {
        "register": lambda: hooks.register("tool.befor", print),
        "unregister": lambda: hooks.unregister("tool.befor", print),
        "clear": lambda: hooks.clear("tool.befor"),
        "handlers": lambda: hooks.handlers("tool.befor"),
        "has": lambda: hooks.has("tool.befor"),
    }
    with pytest.raises(InvalidArgumentError, match=r"tool\.befor") as info:
        if method == "run":
            await hooks.run("tool.befor", ctx())
        else:
            calls[method]()
    assert info.value.code == "invalid_argument"
    assert "tool.before" in str(info.value)  # the message lists the known points


def test_registering_a_non_callable_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        AgentHooks().register(P.TOOL_BEFORE, "not callable")  # type: ignore[arg-type]  # the point


def test_has_tracks_registration_and_removal() -> None:
    hooks = AgentHooks()
    assert not any(hooks.has(p) for p in P)
    hooks.register(P.LLM_AFTER, print)
    assert hooks.has(P.LLM_AFTER) and not hooks.has(P.LLM_BEFORE)
    assert hooks.unregister(P.LLM_AFTER, print) is True
    assert not hooks.has(P.LLM_AFTER)
    assert hooks.unregister(P.LLM_AFTER, print) is False


async def test_unregister_removes_only_that_handler_at_that_point() -> None:
    hooks = AgentHooks()
    calls: list[str] = []
    keep = recorder(calls, "keep")
    drop = recorder(calls, "drop")
    hooks.register(P.TOOL_BEFORE, drop)
    hooks.register(P.TOOL_BEFORE, keep)
    hooks.register(P.TOOL_AFTER, drop)
    assert hooks.unregister(P.TOOL_BEFORE, drop)
    await hooks.run(P.TOOL_BEFORE, ctx())
    assert calls == ["keep"]
    assert hooks.handlers(P.TOOL_AFTER) == [drop]


def test_unregister_accepts_a_fresh_bound_method_of_the_same_object() -> None:
    class Policy:
        def check(self, c: Any) -> None:
            return None

    hooks = AgentHooks()
    policy = Policy()
    hooks.register(P.TOOL_BEFORE, policy.check)
    assert hooks.unregister(P.TOOL_BEFORE, policy.check) is True
    assert not hooks.has(P.TOOL_BEFORE)


def test_clear_one_point_or_every_point() -> None:
    hooks = AgentHooks()
    hooks.register(P.TOOL_BEFORE, print)
    hooks.register(P.TOOL_AFTER, print)
    hooks.clear(P.TOOL_BEFORE)
    assert not hooks.has(P.TOOL_BEFORE) and hooks.has(P.TOOL_AFTER)
    hooks.clear("tool.after")
    assert not hooks.has(P.TOOL_AFTER)
    hooks.register(P.ROUND_END, print)
    hooks.register(P.ROUND_START, print)
    hooks.clear()
    assert not any(hooks.has(p) for p in P)
    assert hooks.handlers(P.ROUND_END) == []
