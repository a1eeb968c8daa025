"""Running one tool call of a model turn and turning what happened into the model's tool result.

This is the hook-free core the engine wraps: parse the call's arguments, look the tool up,
validate, run it under a timeout, render the value as text and bound its size. Every
outcome, good or bad, is a :class:`ToolOutcome` whose ``output`` is what the model sees.

Invariants:
    * Nothing a tool or its arguments do raises out of :func:`execute_tool`: failures are
      outcomes with an ``error_kind``. The exceptions are ``asyncio.CancelledError`` (the
      caller was cancelled; never swallowed) and the control signals in ``propagate``
      (``HumanInputRequired`` by default), which the engine handles.
    * Rejected calls (unknown tool, bad JSON, invalid arguments) never reach the handler.
    * ``output`` is at most ``max_output_chars`` characters (when that leaves room for the
      truncation marker).
    * A timed-out *sync* handler cannot be stopped: its worker thread is abandoned and runs
      to completion in the background, its result ignored. Async handlers are cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from power_loop.contracts.errors import (
    HumanInputRequired,
    InvalidArgumentError,
    ToolNotFound,
    ToolValidationError,
)
from power_loop.contracts.json import JSONObject

if TYPE_CHECKING:
    from power_loop.tools.definition import RegisteredTool
    from power_loop.tools.registry import ToolRegistry

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "ToolErrorKind",
    "ToolOutcome",
    "execute_tool",
    "format_handler_error",
    "format_invalid_args",
    "format_invalid_json",
    "format_timeout",
    "format_unknown_tool",
    "parse_tool_arguments",
    "render_result",
    "truncate_output",
]

DEFAULT_MAX_OUTPUT_CHARS = 50_000
"""Results longer than this are truncated (per-tool ``max_output_chars`` overrides it)."""

ToolErrorKind = Literal["unknown_tool", "invalid_json", "invalid_args", "handler_error", "timeout"]
"""Why a call failed; None in :attr:`ToolOutcome.error_kind` when it succeeded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutcome:
    """What one tool call produced."""

    output: str
    """The tool result the model sees (``Error: …`` when ``failed``)."""
    failed: bool = False
    """True for every ``error_kind``."""
    error_kind: ToolErrorKind | None = None
    """Why it failed, or None."""
    error: BaseException | None = None
    """The exception behind a failure (``ToolNotFound``, ``ToolValidationError``, the handler's…)."""
    executed: bool = False
    """The handler ran to completion or raised; False for rejected and timed-out calls."""
    duration_ms: float = 0.0
    """Wall time spent in :func:`execute_tool`."""
    truncated: bool = False
    """``output`` was cut to ``max_output_chars``."""
    started: bool = False
    """The handler was called (True for executed and for timed-out calls)."""
    result: Any = field(default=None, repr=False)  # Any: the handler's own return value, unchanged
    """The handler's return value when it succeeded, before rendering."""


def format_unknown_tool(name: str) -> str:
    """``Error: unknown tool '<name>'``."""
    return f"Error: unknown tool '{name}'"


def format_invalid_json(name: str, detail: str) -> str:
    """``Error: invalid JSON arguments for tool '<name>': <detail>``."""
    return f"Error: invalid JSON arguments for tool '{name}': {detail}"


def format_invalid_args(name: str, problems: list[str]) -> str:
    """``Error: invalid arguments for tool '<name>': <problems joined by '; '>``."""
    return f"Error: invalid arguments for tool '{name}': " + "; ".join(problems)


def format_handler_error(error: BaseException) -> str:
    """``Error: <ExceptionType>: <message>``."""
    return f"Error: {type(error).__name__}: {error}"


def format_timeout(name: str, timeout_s: float) -> str:
    """``Error: tool '<name>' timed out after <t>s``."""
    return f"Error: tool '{name}' timed out after {timeout_s:g}s"


def parse_tool_arguments(raw: str | bytes | Mapping[str, Any] | None) -> tuple[JSONObject | None, str | None]:
    """Decode a tool call's ``arguments`` into an object.

    Empty (None, ``""``, whitespace) means no arguments. A JSON string that itself holds an
    object (double-encoded arguments, as some models send) is decoded once more.

    Returns:
        ``(args, None)`` on success, ``(None, detail)`` when the arguments are not a JSON object.

    Example:
        >>> parse_tool_arguments('{"city": "Oslo"}')
        ({'city': 'Oslo'}, None)
        >>> parse_tool_arguments("[1]")
        (None, 'expected a JSON object, got array')
    """
    if raw is None:
        return {}, None
    if isinstance(raw, Mapping):
        return dict(raw), None
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"arguments are not UTF-8: {exc}"
    if not isinstance(raw, str):
        return None, f"expected a JSON object string, got {type(raw).__name__}"
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
        if isinstance(value, str) and value.strip().startswith("{"):
            value = json.loads(value)
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "arguments are nested too deeply"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {_json_type(value)}"
    return value, None


def _json_type(value: object) -> str:
    from power_loop.tools.validation import json_type_name

    return json_type_name(value)


def _json_fallback(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    dump = getattr(value, "model_dump", None)  # pydantic-style models
    if callable(dump):
        return dump()
    return str(value)


def render_result(value: object) -> str:
    """The text the model sees for a handler's value: str as-is, anything else as JSON.

    JSON uses ``ensure_ascii=False``; dataclasses, enums, sets and bytes are converted,
    other non-JSON values become ``str(value)``.
    """
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_fallback)
    except (TypeError, ValueError, RecursionError):  # non-str keys, cycles
        return str(value)


def _marker(shown: int, total: int) -> str:
    return f"\n…[truncated: {shown} of {total} chars shown]"


def truncate_output(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_chars`` characters, ending with a truncation marker.

    Returns:
        ``(text, truncated)``.
    """
    total = len(text)
    if total <= max_chars:
        return text, False
    shown = max(0, max_chars - len(_marker(total, total)))
    while shown < total and shown + 1 + len(_marker(shown + 1, total)) <= max_chars:
        shown += 1  # the marker got shorter than reserved (fewer digits): use the room
    return text[:shown] + _marker(shown, total), True


async def execute_tool(
    registry: ToolRegistry,
    name: str,
    args: Mapping[str, Any] | str | bytes | None,
    *,
    timeout_s: float | None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    propagate: tuple[type[BaseException], ...] = (HumanInputRequired,),
) -> ToolOutcome:
    """Run one tool call and describe the outcome; tool failures never raise.

    Args:
        registry: The tools offered for this call; any other name is an unknown tool.
        name: The tool name the model called.
        args: The decoded arguments, or the raw JSON string (parsed here).
        timeout_s: Default timeout; the tool's own ``timeout_s`` wins; None waits forever.
        max_output_chars: Default output cap; the tool's own ``max_output_chars`` wins.
        propagate: Exception types a handler may raise through (control signals).

    Returns:
        The outcome; ``output`` is the tool result for the model.

    Raises:
        asyncio.CancelledError: the calling task was cancelled (the handler is cancelled
            too; a sync handler's thread is abandoned).
        InvalidArgumentError: (``invalid_argument``) ``max_output_chars`` or ``timeout_s``
            is not positive.
    """
    started_at = time.perf_counter()
    if max_output_chars <= 0 or (timeout_s is not None and timeout_s <= 0):
        raise InvalidArgumentError(
            f"max_output_chars and timeout_s must be positive, got {max_output_chars!r} and {timeout_s!r}"
        )

    def finish(output: str, limit: int = max_output_chars, **fields: Any) -> ToolOutcome:
        text, truncated = truncate_output(output, limit)
        elapsed = (time.perf_counter() - started_at) * 1000.0
        return ToolOutcome(output=text, truncated=truncated, duration_ms=elapsed, **fields)

    entry = registry.get(name)
    if entry is None:
        return finish(
            format_unknown_tool(name), failed=True, error_kind="unknown_tool", error=ToolNotFound(name)
        )
    limit = entry.definition.max_output_chars or max_output_chars
    if not isinstance(args, Mapping):
        parsed, detail = parse_tool_arguments(args)
        if parsed is None:
            message = format_invalid_json(name, detail or "not a JSON object")
            return finish(
                message,
                limit,
                failed=True,
                error_kind="invalid_json",
                error=InvalidArgumentError(message.removeprefix("Error: ")),
            )
        args = parsed
    problems = entry.definition.validate(dict(args))
    if problems:
        return finish(
            format_invalid_args(name, problems),
            limit,
            failed=True,
            error_kind="invalid_args",
            error=ToolValidationError(name, problems),
        )

    timeout = entry.definition.timeout_s if entry.definition.timeout_s is not None else timeout_s
    try:
        succeeded, value = await _run_bounded(entry, args, timeout, propagate)
    except asyncio.TimeoutError:
        message = format_timeout(name, timeout or 0.0)
        return finish(
            message,
            limit,
            failed=True,
            error_kind="timeout",
            started=True,
            error=TimeoutError(message.removeprefix("Error: ")),
        )
    if not succeeded:
        return finish(
            format_handler_error(value),
            limit,
            failed=True,
            error_kind="handler_error",
            error=value,
            executed=True,
            started=True,
        )
    try:
        output = render_result(value)
    except Exception as exc:  # a value whose str() raises: the tool's failure, not ours
        return finish(
            format_handler_error(exc),
            limit,
            failed=True,
            error_kind="handler_error",
            error=exc,
            executed=True,
            started=True,
        )
    return finish(output, limit, executed=True, started=True, result=value)


async def _run_bounded(
    entry: RegisteredTool,
    args: Mapping[str, Any],
    timeout_s: float | None,
    propagate: tuple[type[BaseException], ...],
) -> tuple[bool, Any]:  # Any: the handler's value, or the exception it raised
    """Run the handler; a handler's exception is returned, so only our own timeout raises."""

    async def run() -> tuple[bool, Any]:
        try:
            return True, await entry.call_async(args)
        except asyncio.CancelledError:
            raise
        except propagate:
            raise
        except Exception as exc:  # the tool's failure becomes its result
            return False, exc

    if timeout_s is None:
        return await run()
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout_s):
            return await run()
    return await asyncio.wait_for(run(), timeout_s)
