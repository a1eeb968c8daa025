"""Hook points, directives and the typed context object each point receives.

A handler mutates its ctx in place (fields marked mutable in API.md §6) and may return
or set a ``HookDirective``. Contexts are plain mutable dataclasses; the engine reads
them back after the handlers ran. They are working objects, not values, so they compare
by identity (``eq=False``) and share one ``__repr__``, which also keeps defining them
cheap at import.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from power_loop.contracts.json import JSONObject, Message


class HookPoint(str, Enum):
    """Where in a send a hook runs; the value is the dotted name (API.md §6)."""

    SESSION_START = "session.start"
    SESSION_END = "session.end"
    ROUND_START = "round.start"
    LLM_BEFORE = "llm.before"
    LLM_AFTER = "llm.after"
    ROUND_DECIDE = "round.decide"
    TOOLS_BATCH_BEFORE = "tools.batch.before"
    TOOL_BEFORE = "tool.before"
    TOOL_AFTER = "tool.after"
    TOOL_ERROR = "tool.error"
    TOOLS_BATCH_AFTER = "tools.batch.after"
    ROUND_END = "round.end"
    COMPACT_BEFORE = "compact.before"
    COMPACT_AFTER = "compact.after"
    MESSAGE_APPEND = "message.append"
    MEMORY_RECALLED = "memory.recalled"
    TIMER_FIRE = "timer.fire"


class HookDirective(str, Enum):
    """What a handler asks the engine to do next; each point says which it honours."""

    CONTINUE = "continue"
    SKIP = "skip"
    BREAK = "break"
    SHORT_CIRCUIT = "short_circuit"


@dataclass(eq=False, repr=False, kw_only=True)
class BaseHookCtx:
    """Fields every hook context has; ``directive`` is the last one a handler set."""

    round_index: int = 0
    directive: HookDirective = HookDirective.CONTINUE
    session_id: str | None = None

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        # Written once and inherited (contexts are declared repr=False): the generated
        # ``Name(field=value, ...)``, without generating one per context class at import.
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{self.__class__.__qualname__}({args})"


@dataclass(eq=False, repr=False, kw_only=True)
class SessionStartCtx(BaseHookCtx):
    """``session.start``: before the first round of a send."""

    scope: str = "send"
    messages: list[Message] = field(default_factory=list)
    """Mutable: edits apply to this run's requests only (never persisted)."""
    stop_event: Any = None


@dataclass(eq=False, repr=False, kw_only=True)
class SessionEndCtx(BaseHookCtx):
    """``session.end``: after the last round of a send, with its final text."""

    scope: str = "send"
    reason: str = ""
    messages: list[Message] = field(default_factory=list)
    final_text: str = ""


@dataclass(eq=False, repr=False, kw_only=True)
class RoundStartCtx(BaseHookCtx):
    """``round.start``: before a round; BREAK ends the run, SKIP skips the round."""

    messages: list[Message] = field(default_factory=list)
    stop_event: Any = None
    reason: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class LLMBeforeCtx(BaseHookCtx):
    """``llm.before``: the request about to be sent; SHORT_CIRCUIT answers with ``output``."""

    messages: list[Message] = field(default_factory=list)
    system_prompt: str | None = None
    tools: list[JSONObject] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output: Any = None
    """An ``LLMResponse`` to use instead of calling the LLM (with SHORT_CIRCUIT)."""


@dataclass(eq=False, repr=False, kw_only=True)
class LLMAfterCtx(BaseHookCtx):
    """``llm.after``: the model's response in ``output``, replaceable."""

    messages: list[Message] = field(default_factory=list)
    output: Any = None


@dataclass(eq=False, repr=False, kw_only=True)
class RoundDecideCtx(BaseHookCtx):
    """``round.decide``: the assistant turn's tool calls, before any runs."""

    messages: list[Message] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)
    assistant_text: str = ""
    output: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class ToolsBatchBeforeCtx(BaseHookCtx):
    """``tools.batch.before``: the tool calls of one assistant turn, before any runs."""

    messages: list[Message] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)
    output: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class ToolBeforeCtx(BaseHookCtx):
    """``tool.before``: one tool call before it runs; SKIP uses ``output`` as its result."""

    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    output: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class ToolAfterCtx(BaseHookCtx):
    """``tool.after``: one tool call's result, replaceable."""

    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    output: str = ""
    failed: bool = False


@dataclass(eq=False, repr=False, kw_only=True)
class ToolErrorCtx(BaseHookCtx):
    """``tool.error``: a tool handler raised; SKIP uses ``output``, SHORT_CIRCUIT retries once."""

    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    error: BaseException | None = None
    error_message: str = ""
    output: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class ToolsBatchAfterCtx(BaseHookCtx):
    """``tools.batch.after``: every call of the turn has its result."""

    messages: list[Message] = field(default_factory=list)
    used_todo: bool = False


@dataclass(eq=False, repr=False, kw_only=True)
class RoundEndCtx(BaseHookCtx):
    """``round.end``: a round finished."""

    messages: list[Message] = field(default_factory=list)
    has_tools: bool = False
    response_text: str = ""
    used_todo: bool = False


@dataclass(eq=False, repr=False, kw_only=True)
class CompactBeforeCtx(BaseHookCtx):
    """``compact.before``: a fold is about to run; SKIP skips it."""

    messages: list[Message] = field(default_factory=list)


@dataclass(eq=False, repr=False, kw_only=True)
class CompactAfterCtx(BaseHookCtx):
    """``compact.after``: a fold ran."""

    messages: list[Message] = field(default_factory=list)
    messages_before_count: int = 0
    messages_after_count: int = 0


@dataclass(eq=False, repr=False, kw_only=True)
class MessageAppendCtx(BaseHookCtx):
    """``message.append``: a message about to be persisted, editable."""

    message: Message = field(default_factory=dict)
    """Mutable: edits change what is persisted."""


@dataclass(eq=False, repr=False, kw_only=True)
class MemoryRecalledCtx(BaseHookCtx):
    """``memory.recalled``: what the memory provider recalled, before injection."""

    recalled: list[Message] = field(default_factory=list)
    budget_tokens: int = 0


@dataclass(eq=False, repr=False, kw_only=True)
class TimerFireCtx(BaseHookCtx):
    """``timer.fire``: a timer is due; CONTINUE delivers ``message``, SKIP drops, BREAK cancels."""

    timer_id: int = 0
    note: str = ""
    due_at: int = 0
    message: str = ""
    postpone_s: float = 0.0
