"""Hook points, directives and the typed context object each point receives.

A handler mutates its ctx in place (fields marked mutable in API.md §6) and may return
or set a ``HookDirective``. Contexts are plain mutable dataclasses; the engine reads
them back after the handlers ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from power_loop.contracts.json import JSONObject, Message


class HookPoint(str, Enum):
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
    CONTINUE = "continue"
    SKIP = "skip"
    BREAK = "break"
    SHORT_CIRCUIT = "short_circuit"


@dataclass(kw_only=True)
class BaseHookCtx:
    round_index: int = 0
    directive: HookDirective = HookDirective.CONTINUE
    session_id: str | None = None


@dataclass(kw_only=True)
class SessionStartCtx(BaseHookCtx):
    scope: str = "send"
    messages: list[Message] = field(default_factory=list)
    """Mutable: edits apply to this run's requests only (never persisted)."""
    stop_event: Any = None


@dataclass(kw_only=True)
class SessionEndCtx(BaseHookCtx):
    scope: str = "send"
    reason: str = ""
    messages: list[Message] = field(default_factory=list)
    final_text: str = ""


@dataclass(kw_only=True)
class RoundStartCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    stop_event: Any = None
    reason: str | None = None


@dataclass(kw_only=True)
class LLMBeforeCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    system_prompt: str | None = None
    tools: list[JSONObject] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output: Any = None
    """An ``LLMResponse`` to use instead of calling the LLM (with SHORT_CIRCUIT)."""


@dataclass(kw_only=True)
class LLMAfterCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    output: Any = None


@dataclass(kw_only=True)
class RoundDecideCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)
    assistant_text: str = ""
    output: str | None = None


@dataclass(kw_only=True)
class ToolsBatchBeforeCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)
    output: str | None = None


@dataclass(kw_only=True)
class ToolBeforeCtx(BaseHookCtx):
    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    output: str | None = None


@dataclass(kw_only=True)
class ToolAfterCtx(BaseHookCtx):
    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    output: str = ""
    failed: bool = False


@dataclass(kw_only=True)
class ToolErrorCtx(BaseHookCtx):
    tool_call: JSONObject = field(default_factory=dict)
    tool_name: str = ""
    tool_args: JSONObject = field(default_factory=dict)
    error: BaseException | None = None
    error_message: str = ""
    output: str | None = None


@dataclass(kw_only=True)
class ToolsBatchAfterCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    used_todo: bool = False


@dataclass(kw_only=True)
class RoundEndCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    has_tools: bool = False
    response_text: str = ""
    used_todo: bool = False


@dataclass(kw_only=True)
class CompactBeforeCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)


@dataclass(kw_only=True)
class CompactAfterCtx(BaseHookCtx):
    messages: list[Message] = field(default_factory=list)
    messages_before_count: int = 0
    messages_after_count: int = 0


@dataclass(kw_only=True)
class MessageAppendCtx(BaseHookCtx):
    message: Message = field(default_factory=dict)
    """Mutable: edits change what is persisted."""


@dataclass(kw_only=True)
class MemoryRecalledCtx(BaseHookCtx):
    recalled: list[Message] = field(default_factory=list)
    budget_tokens: int = 0


@dataclass(kw_only=True)
class TimerFireCtx(BaseHookCtx):
    timer_id: int = 0
    note: str = ""
    due_at: int = 0
    message: str = ""
    postpone_s: float = 0.0
