"""execute_tool: one tool call becomes a ToolOutcome; failures are outcomes, never raised."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import threading
from typing import Any

import pytest

from power_loop.contracts.errors import (
    HumanInputRequired,
    InvalidArgumentError,
    ToolNotFound,
    ToolValidationError,
)
from power_loop.tools import (
    ToolDefinition,
    ToolOutcome,
    ToolRegistry,
    execute_tool,
    format_invalid_json,
    format_unknown_tool,
    parse_tool_arguments,
)
from power_loop.tools.execution import render_result, truncate_output

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def registry_with(name: str, handler: Any, schema: dict[str, Any] | None = None, **kw: Any) -> ToolRegistry:
    r = ToolRegistry()
    r.register(ToolDefinition(name=name, description="", input_schema=schema or CITY, **kw), handler)
    return r


# -- parse_tool_arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ("", {}),
        ("  \n", {}),
        ('{"city": "Oslo"}', {"city": "Oslo"}),
        ({"a": 1}, {"a": 1}),
        (b'{"a": "\xc3\xa9"}', {"a": "é"}),
        ('"{\\"a\\": 1}"', {"a": 1}),
    ],
)
def test_parse_tool_arguments_accepts_objects(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_tool_arguments(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("[1, 2]", "expected a JSON object, got array"),
        ("42", "expected a JSON object, got integer"),
        ('"text"', "expected a JSON object, got string"),
        ("null", "expected a JSON object, got null"),
        ('{"a": 1', "Expecting ',' delimiter at line 1 column 8"),
        ("{'a': 1}", "Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"\xff", "arguments are not UTF-8"),
        (12, "expected a JSON object string, got int"),
    ],
)
def test_parse_tool_arguments_reports_non_objects(raw: Any, detail: str) -> None:
    args, error = parse_tool_arguments(raw)
    assert args is None and error is not None and error.startswith(detail)


def test_message_helpers_match_the_contract() -> None:
    assert format_unknown_tool("x") == "Error: unknown tool 'x'"
    assert format_invalid_json("x", "bad") == "Error: invalid JSON arguments for tool 'x': bad"


# -- outcomes -----------------------------------------------------------------------------------


async def test_success_with_string_result() -> None:
    r = registry_with("w", lambda city: f"sunny in {city}")
    out = await execute_tool(r, "w", {"city": "Oslo"}, timeout_s=5)
    assert isinstance(out, ToolOutcome)
    assert (out.output, out.failed, out.error_kind, out.error, out.executed) == (
        "sunny in Oslo",
        False,
        None,
        None,
        True,
    )
    assert out.started and not out.truncated and out.duration_ms >= 0 and out.result == "sunny in Oslo"


async def test_non_string_results_are_json_encoded() -> None:
    value = {"temp": 21.5, "city": "Zürich", "ok": True, "none": None}
    out = await execute_tool(registry_with("w", lambda city: value), "w", {"city": "x"}, timeout_s=None)
    assert out.output == '{"temp": 21.5, "city": "Zürich", "ok": true, "none": null}'
    assert out.result is value


class Mood(enum.Enum):
    HAPPY = "happy"


@dataclasses.dataclass
class Report:
    mood: Mood
    tags: set[str]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (3, "3"),
        ([1, "é"], '[1, "é"]'),
        (Report(mood=Mood.HAPPY, tags={"b", "a"}), '{"mood": "happy", "tags": ["a", "b"]}'),
        (b"raw", '"raw"'),
        ({1: object}, '{"1": "<class \'object\'>"}'),
    ],
)
def test_render_result(value: Any, expected: str) -> None:
    assert render_result(value) == expected


def test_render_result_survives_cycles() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert render_result(cyclic) == "[[...]]"


async def test_unknown_tool_is_rejected_without_running() -> None:
    out = await execute_tool(registry_with("w", lambda city: city), "nope", {"city": "x"}, timeout_s=1)
    assert out.output == "Error: unknown tool 'nope'"
    assert (out.failed, out.error_kind, out.executed, out.started) == (True, "unknown_tool", False, False)
    assert isinstance(out.error, ToolNotFound)


async def test_invalid_json_string_is_rejected() -> None:
    calls: list[object] = []
    r = registry_with("w", lambda city: calls.append(city))
    out = await execute_tool(r, "w", '{"city": ', timeout_s=1)
    assert out.output.startswith("Error: invalid JSON arguments for tool 'w': Expecting value")
    assert (out.error_kind, out.executed) == ("invalid_json", False)
    assert isinstance(out.error, InvalidArgumentError)
    assert calls == []


async def test_raw_json_string_arguments_are_parsed() -> None:
    out = await execute_tool(registry_with("w", lambda city: city), "w", '{"city": "Oslo"}', timeout_s=1)
    assert out.output == "Oslo" and not out.failed


async def test_invalid_arguments_list_every_problem() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    calls: list[object] = []
    r = registry_with("w", lambda **kw: calls.append(kw), schema)
    out = await execute_tool(r, "w", {"days": "x"}, timeout_s=1)
    assert out.output == (
        "Error: invalid arguments for tool 'w': missing required parameter 'city'; "
        "parameter 'days' must be of type integer, got string"
    )
    assert (out.error_kind, out.executed) == ("invalid_args", False)
    assert isinstance(out.error, ToolValidationError) and len(out.error.problems) == 2
    assert calls == []


async def test_handler_exception_becomes_an_error_result() -> None:
    def boom(city: str) -> str:
        raise ValueError(f"no weather for {city}")

    out = await execute_tool(registry_with("w", boom), "w", {"city": "Oslo"}, timeout_s=1)
    assert out.output == "Error: ValueError: no weather for Oslo"
    assert (out.failed, out.error_kind, out.executed) == (True, "handler_error", True)
    assert isinstance(out.error, ValueError)


async def test_handler_raising_timeout_error_is_a_handler_error_not_a_timeout() -> None:
    async def own_timeout(city: str) -> str:
        raise TimeoutError("upstream")

    out = await execute_tool(registry_with("w", own_timeout), "w", {"city": "x"}, timeout_s=5)
    assert out.error_kind == "handler_error" and out.output == "Error: TimeoutError: upstream"


async def test_async_handler_times_out_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def slow(city: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return city

    out = await execute_tool(registry_with("slow", slow), "slow", {"city": "x"}, timeout_s=0.05)
    assert out.output == "Error: tool 'slow' timed out after 0.05s"
    assert (out.failed, out.error_kind, out.executed, out.started) == (True, "timeout", False, True)
    assert isinstance(out.error, TimeoutError)
    assert cancelled.is_set()


async def test_sync_handler_times_out_and_its_thread_is_abandoned() -> None:
    release = threading.Event()
    finished = threading.Event()

    def blocking(city: str) -> str:
        release.wait(5)
        finished.set()
        return city

    out = await execute_tool(registry_with("b", blocking), "b", {"city": "x"}, timeout_s=0.05)
    assert out.error_kind == "timeout" and not finished.is_set()
    release.set()
    await asyncio.to_thread(finished.wait, 5)
    assert finished.is_set()


async def test_definition_timeout_wins_over_the_default() -> None:
    async def slow(city: str) -> str:
        await asyncio.sleep(30)
        return city

    r = registry_with("slow", slow, timeout_s=0.02)
    out = await execute_tool(r, "slow", {"city": "x"}, timeout_s=60)
    assert out.output == "Error: tool 'slow' timed out after 0.02s"


async def test_long_output_is_truncated_with_a_marker() -> None:
    r = registry_with("big", lambda city: "x" * 1000)
    out = await execute_tool(r, "big", {"city": "x"}, timeout_s=None, max_output_chars=100)
    assert out.truncated and len(out.output) <= 100
    assert out.output.endswith("\n…[truncated: 63 of 1000 chars shown]")
    assert out.output.startswith("x" * 63) and len(out.output) == 100


async def test_definition_output_cap_wins() -> None:
    r = registry_with("big", lambda city: "y" * 500, max_output_chars=80)
    out = await execute_tool(r, "big", {"city": "x"}, timeout_s=None)
    assert out.truncated and len(out.output) <= 80


def test_truncate_output_boundaries() -> None:
    assert truncate_output("abc", 3) == ("abc", False)
    text, cut = truncate_output("a" * 50_001, 50_000)
    assert cut and len(text) <= 50_000 and text.endswith("of 50001 chars shown]")
    tiny, cut = truncate_output("a" * 100, 5)
    assert cut and tiny.startswith("\n…[truncated: 0 of 100")


async def test_bad_limits_are_invalid_arguments() -> None:
    r = registry_with("w", lambda city: city)
    with pytest.raises(InvalidArgumentError):
        await execute_tool(r, "w", {"city": "x"}, timeout_s=1, max_output_chars=0)
    with pytest.raises(InvalidArgumentError):
        await execute_tool(r, "w", {"city": "x"}, timeout_s=-1)


async def test_cancellation_propagates_and_is_never_swallowed() -> None:
    started = asyncio.Event()

    async def slow(city: str) -> str:
        started.set()
        await asyncio.sleep(30)
        return city

    r = registry_with("slow", slow)
    task = asyncio.create_task(execute_tool(r, "slow", {"city": "x"}, timeout_s=10))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancellation_propagates_without_timeout_and_from_sync_handlers() -> None:
    entered = threading.Event()
    release = threading.Event()

    def blocking(city: str) -> str:
        entered.set()
        release.wait(5)
        return city

    r = registry_with("b", blocking)
    task = asyncio.create_task(execute_tool(r, "b", {"city": "x"}, timeout_s=None))
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()


async def test_control_signals_propagate() -> None:
    def ask(city: str) -> str:
        raise HumanInputRequired("need input")

    r = registry_with("ask", ask)
    with pytest.raises(HumanInputRequired):
        await execute_tool(r, "ask", {"city": "x"}, timeout_s=1)
    out = await execute_tool(r, "ask", {"city": "x"}, timeout_s=1, propagate=())
    assert out.error_kind == "handler_error"


async def test_sync_handlers_see_the_callers_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    r = registry_with("ctx", lambda city: var.get())
    var.set("req-42")
    out = await execute_tool(r, "ctx", {"city": "x"}, timeout_s=1)
    assert out.output == "req-42"


async def test_concurrent_calls_do_not_interfere() -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("n")

    async def echo(n: int) -> int:
        await asyncio.sleep(0.001 * (n % 3))
        return n * 10

    def sync_echo(n: int) -> str:
        return f"{n}:{var.get()}"

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    r = ToolRegistry()
    r.register(ToolDefinition(name="a", description="", input_schema=schema), echo)
    r.register(ToolDefinition(name="s", description="", input_schema=schema), sync_echo)

    async def call(n: int) -> list[str]:
        var.set(n)
        first = await execute_tool(r, "a", {"n": n}, timeout_s=5)
        second = await execute_tool(r, "s", {"n": n}, timeout_s=5)
        return [first.output, second.output]

    results = await asyncio.gather(*(call(n) for n in range(40)))
    assert results == [[str(n * 10), f"{n}:{n}"] for n in range(40)]
