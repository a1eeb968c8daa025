"""Typed events: ``AgentEventType``, one payload dataclass per type, and ``AgentEvent``.

Payloads are plain slotted dataclasses (not frozen: defining ~30 frozen classes costs
noticeable import time, and building one per streamed token is the hot path); treat
them as read-only — every subscriber sees the same object. Invariants: every event gets
a process-wide, strictly increasing ``seq``, a wall-clock ``ts`` and a monotonic
``mono`` at creation; ``payload == data.to_dict()``; equality
ignores the three stamps. Payload dicts are built lazily so events nobody reads cost
little (stream deltas are created per token).
"""

from __future__ import annotations

import itertools
import reprlib
import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import JSONObject

_SEQ = itertools.count(1)


class AgentEventType(str, Enum):
    """Every event the kernel publishes; the value is the wire name (API.md §7)."""

    SESSION_STARTED = "session_started"
    SESSION_ENDED = "session_ended"
    ROUND_STARTED = "round_started"
    ROUND_COMPLETED = "round_completed"
    ROUND_TOOLS_PRESENT = "round_tools_present"
    LLM_CALL_STARTED = "llm_call_started"
    LLM_CALL_COMPLETED = "llm_call_completed"
    LLM_RETRY_ATTEMPTED = "llm_retry_attempted"
    LLM_DEGRADED = "llm_degraded"
    LOOP_CANCELLED = "loop_cancelled"
    MEMORY_RECALLED = "memory_recalled"
    MEMORY_FAILED = "memory_failed"
    STREAM_STARTED = "stream_started"
    STREAM_DELTA = "stream_delta"
    STREAM_THINK_DELTA = "stream_think_delta"
    STREAM_COMPLETED = "stream_completed"
    STREAM_TOOL_CALL_DELTA = "stream_tool_call_delta"
    TOOL_CALL_STARTED = "tool_call_started"
    TOOL_CALL_COMPLETED = "tool_call_completed"
    TOOL_CALL_FAILED = "tool_call_failed"
    STATUS_CHANGED = "status_changed"
    USAGE_UPDATED = "usage_updated"
    TIMER_FIRED = "timer_fired"
    TODO_UPDATED = "todo_updated"
    USER_NOTIFICATION = "user_notification"
    AGENT_ERROR = "agent_error"
    SYSTEM_LOG = "system_log"
    SUBAGENT_TASK_START = "subagent_task_start"
    SUBAGENT_TEXT = "subagent_text"
    SUBAGENT_LIMIT = "subagent_limit"
    SUBAGENT_COMPLETED = "subagent_completed"


@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class BaseEventPayload:
    """Base of every payload; ``to_dict`` is a shallow field copy.

    ``__eq__`` and ``__repr__`` are written once here and inherited (every payload is
    declared ``repr=False, eq=False``): they behave as the generated ones would (same
    class and equal fields; ``Name(field=value, ...)``), while generating a pair per
    payload class would cost milliseconds of ``import power_loop``.
    """

    event_type: ClassVar[AgentEventType]

    def to_dict(self) -> JSONObject:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = [f.name for f in fields(self)]
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    __hash__ = None  # type: ignore[assignment]  # mutable values: payloads are not hashable

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{self.__class__.__qualname__}({args})"


def _payload(event_type: AgentEventType) -> Any:
    def wrap(cls: type[BaseEventPayload]) -> type[BaseEventPayload]:
        cls.event_type = event_type
        PAYLOAD_TYPES[event_type] = cls
        return cls

    return wrap


PAYLOAD_TYPES: dict[AgentEventType, type[BaseEventPayload]] = {}


@_payload(AgentEventType.SESSION_STARTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SessionStartedPayload(BaseEventPayload):
    """A send began on the session; ``scope`` is ``"send"``."""

    scope: str = "send"


@_payload(AgentEventType.SESSION_ENDED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SessionEndedPayload(BaseEventPayload):
    """A send finished; ``status`` is its ``RunStatus`` value (None when it raised)."""

    reason: str = ""
    status: str | None = None


@_payload(AgentEventType.ROUND_STARTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class RoundStartedPayload(BaseEventPayload):
    """A round (one LLM call and its tool calls) began; ``has_tools``: tools were offered."""

    round_index: int = 0
    has_tools: bool = False


@_payload(AgentEventType.ROUND_COMPLETED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class RoundCompletedPayload(BaseEventPayload):
    """A round finished; ``has_tools`` says whether it called tools."""

    round_index: int = 0
    has_tools: bool = False


@_payload(AgentEventType.ROUND_TOOLS_PRESENT)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class RoundToolsPresentPayload(BaseEventPayload):
    """The round's assistant turn asked for tool calls."""

    has_tools: bool = True


@_payload(AgentEventType.LLM_CALL_STARTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class LLMCallStartedPayload(BaseEventPayload):
    """One LLM call attempt began; ``call_id`` is ``r<round>.a<attempt>``."""

    call_id: str = ""
    attempt: int = 1
    model: str | None = None


@_payload(AgentEventType.LLM_CALL_COMPLETED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class LLMCallCompletedPayload(BaseEventPayload):
    """One LLM call attempt ended: its duration, outcome and token counts."""

    call_id: str = ""
    attempt: int = 1
    model: str | None = None
    duration_ms: float = 0.0
    success: bool = True
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@_payload(AgentEventType.LLM_RETRY_ATTEMPTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class LLMRetryAttemptedPayload(BaseEventPayload):
    """A failed LLM call will be retried after ``next_sleep_seconds``."""

    attempt: int = 1
    max_attempts: int = 1
    error_type: str = ""
    error_message: str = ""
    next_sleep_seconds: float = 0.0


@_payload(AgentEventType.LLM_DEGRADED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class LLMDegradedPayload(BaseEventPayload):
    """The LLM could not answer (``retry_exhausted``, ``timeout`` or ``provider_error``): the send degrades."""

    reason: str = "provider_error"
    attempts: int = 1
    error_type: str = ""
    error_message: str = ""


@_payload(AgentEventType.LOOP_CANCELLED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class LoopCancelledPayload(BaseEventPayload):
    """The send stopped because its cancellation token was set."""

    reason: str = "cancelled"


@_payload(AgentEventType.MEMORY_RECALLED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class MemoryRecalledPayload(BaseEventPayload):
    """The memory provider returned ``returned`` items, ``injected`` of which went into the prompt."""

    returned: int = 0
    injected: int = 0


@_payload(AgentEventType.MEMORY_FAILED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class MemoryFailedPayload(BaseEventPayload):
    """A memory provider call failed in ``phase``; the send went on without it."""

    phase: str = ""
    error_type: str = ""


@_payload(AgentEventType.STREAM_STARTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StreamStartedPayload(BaseEventPayload):
    """A streamed LLM reply began."""

    stream_id: str = ""


@_payload(AgentEventType.STREAM_DELTA)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StreamDeltaPayload(BaseEventPayload):
    """A piece of streamed reply text."""

    stream_id: str = ""
    text: str = ""
    is_think: bool = False


@_payload(AgentEventType.STREAM_THINK_DELTA)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StreamThinkDeltaPayload(BaseEventPayload):
    """A piece of streamed reasoning (thinking) text."""

    stream_id: str = ""
    text: str = ""
    is_think: bool = True


@_payload(AgentEventType.STREAM_COMPLETED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StreamCompletedPayload(BaseEventPayload):
    """A streamed reply ended; ``text`` is the whole reply text."""

    stream_id: str = ""
    text: str = ""


@_payload(AgentEventType.STREAM_TOOL_CALL_DELTA)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StreamToolCallDeltaPayload(BaseEventPayload):
    """A piece of a tool call the model is still streaming (its arguments arrive in parts)."""

    stream_id: str = ""
    index: int = 0
    """Which call of the assistant turn (0, 1, …)."""
    tool_call_id: str | None = None
    name: str | None = None
    """The registry name, on the first delta of a call."""
    arguments_delta: str = ""


@_payload(AgentEventType.TOOL_CALL_STARTED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class ToolCallStartedPayload(BaseEventPayload):
    """A tool call is about to run with ``tool_input`` (after ``tool.before`` hooks)."""

    name: str = ""
    tool_input: JSONObject = field(default_factory=dict)
    tool_call_id: str = ""


@_payload(AgentEventType.TOOL_CALL_COMPLETED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class ToolCallCompletedPayload(BaseEventPayload):
    """A tool call ended; ``output`` is the result the model sees."""

    name: str = ""
    tool_input: JSONObject = field(default_factory=dict)
    tool_call_id: str = ""
    output: str = ""
    failed: bool = False
    duration_ms: float = 0.0


@_payload(AgentEventType.TOOL_CALL_FAILED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class ToolCallFailedPayload(BaseEventPayload):
    """A tool call failed (``error_kind``); its ``tool_call_completed`` event follows."""

    name: str = ""
    tool_input: JSONObject = field(default_factory=dict)
    tool_call_id: str = ""
    output: str = ""
    failed: bool = True
    error_kind: str = ""


@_payload(AgentEventType.STATUS_CHANGED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class StatusChangedPayload(BaseEventPayload):
    """``kind``: ``round_usage`` | ``auto_compact`` | ``hit_round_limit`` | ``budget_exceeded``.

    Only the fields of the kind are meaningful; the rest stay ``None``.
    """

    kind: str = ""
    usage: dict[str, int] | None = None
    phase: str | None = None
    before_tokens: int | None = None
    after_tokens: int | None = None
    max_rounds: int | None = None
    budget_tokens: int | None = None
    spent_tokens: int | None = None


@_payload(AgentEventType.USAGE_UPDATED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class UsageUpdatedPayload(BaseEventPayload):
    """Token usage after one completed LLM call."""

    usage: dict[str, int] = field(default_factory=dict)
    """This call's counts plus ``cumulative_*`` totals of the send so far."""
    call_id: str = ""


@_payload(AgentEventType.TIMER_FIRED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class TimerFiredPayload(BaseEventPayload):
    """A session timer fired; ``outcome`` says what became of it (``delivered``, ``postponed``, ``error``…)."""

    timer_id: int = 0
    note: str = ""
    due_at: int = 0
    outcome: str = ""


@_payload(AgentEventType.TODO_UPDATED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class TodoUpdatedPayload(BaseEventPayload):
    """The session's todo list changed; ``items`` is the whole new list."""

    items: list[JSONObject] = field(default_factory=list)


@_payload(AgentEventType.USER_NOTIFICATION)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class UserNotificationPayload(BaseEventPayload):
    """A message meant for the user, outside the conversation."""

    message: str = ""


@_payload(AgentEventType.AGENT_ERROR)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class AgentErrorPayload(BaseEventPayload):
    """A send ended with an exception, given as its text and type name."""

    error: str = ""
    error_type: str = ""


@_payload(AgentEventType.SYSTEM_LOG)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SystemLogPayload(BaseEventPayload):
    """A log line from the kernel, at ``level``."""

    message: str = ""
    level: str = "info"


@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class _SubagentPayload(BaseEventPayload):
    """Base of the sub-agent payloads: which child session, its status and final text."""

    sub_session_id: str = ""
    status: str = ""
    final_text: str = ""


@_payload(AgentEventType.SUBAGENT_TASK_START)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SubagentTaskStartPayload(_SubagentPayload):
    """A sub-agent task started in child session ``sub_session_id``."""


@_payload(AgentEventType.SUBAGENT_TEXT)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SubagentTextPayload(_SubagentPayload):
    """Text a sub-agent produced."""


@_payload(AgentEventType.SUBAGENT_LIMIT)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SubagentLimitPayload(_SubagentPayload):
    """A sub-agent stopped at one of its limits."""


@_payload(AgentEventType.SUBAGENT_COMPLETED)
@dataclass(slots=True, kw_only=True, repr=False, eq=False)
class SubagentCompletedPayload(_SubagentPayload):
    """A sub-agent task finished with ``status`` and ``final_text``."""


def _data_from_payload(etype: AgentEventType, payload: JSONObject) -> BaseEventPayload | None:
    """The typed payload a dict describes: unknown keys ignored (newer writers), missing
    ones defaulted; None when the values do not fit the dataclass."""
    ptype = PAYLOAD_TYPES.get(etype)
    if ptype is None:
        return None
    known = {f.name for f in fields(ptype)}
    try:
        return ptype(**{k: v for k, v in payload.items() if k in known})
    except TypeError:
        return None


class AgentEvent:
    """One event. ``payload`` is the dict form of ``data`` (built on first access); an
    event built from a ``payload`` dict alone gets its typed ``data`` from it.

    Example:
        >>> e = AgentEvent(AgentEventType.USER_NOTIFICATION, data=UserNotificationPayload(message="hi"))
        >>> e.payload
        {'message': 'hi'}
    """

    __slots__ = ("_data", "_payload", "mono", "round_index", "seq", "session_id", "source", "stream_id",
                 "ts", "type")

    def __init__(
        self,
        type: AgentEventType,
        payload: JSONObject | None = None,
        data: BaseEventPayload | None = None,
        *,
        session_id: str | None = None,
        round_index: int | None = None,
        stream_id: str | None = None,
        source: str | None = None,
        ts: float | None = None,
        seq: int | None = None,
        mono: float | None = None,
    ) -> None:
        # Hot path (one event per streamed token): no coercion of an AgentEventType, and the
        # typed ``data`` of a payload-only event is built on first access, not here.
        if type.__class__ is not AgentEventType:
            try:
                type = AgentEventType(type)
            except ValueError:
                raise InvalidArgumentError(f"unknown event type {type!r}") from None
        self.type = type
        if data is not None:
            expected = PAYLOAD_TYPES.get(type)
            if expected is not None and data.__class__ is not expected and not isinstance(data, expected):
                raise InvalidArgumentError(
                    f"a {type.value} event carries {expected.__name__}, not {data.__class__.__name__}")
        self._data = data
        self._payload = payload
        self.session_id = session_id
        self.round_index = round_index
        self.stream_id = stream_id
        self.source = source
        self.ts = time.time() if ts is None else ts
        self.seq = next(_SEQ) if seq is None else seq
        self.mono = time.monotonic() if mono is None else mono

    @property
    def data(self) -> BaseEventPayload | None:
        """The typed payload (built from the ``payload`` dict on first access when needed)."""
        if self._data is None and self._payload is not None:
            self._data = _data_from_payload(self.type, self._payload)
        return self._data

    @property
    def payload(self) -> JSONObject:
        if self._payload is None:
            if self._data is None:
                return {}  # an event with neither payload nor data (not cached: data stays None)
            self._payload = self._data.to_dict()
        return self._payload

    def to_dict(self) -> JSONObject:
        """A JSON-ready dict that ``from_dict`` turns back into an equal event (stamps kept)."""
        return {
            "type": self.type.value, "payload": dict(self.payload), "session_id": self.session_id,
            "round_index": self.round_index, "stream_id": self.stream_id, "source": self.source,
            "ts": self.ts, "seq": self.seq, "mono": self.mono,
        }

    @classmethod
    def from_dict(cls, d: JSONObject) -> AgentEvent:
        """Rebuild an event (and its typed ``data``) from ``to_dict()`` output."""
        try:
            etype = AgentEventType(d["type"])
        except (KeyError, ValueError):
            raise InvalidArgumentError(f"not an AgentEvent dict (unknown type {d.get('type')!r})") from None
        payload = dict(d.get("payload") or {})
        return cls(etype, payload, session_id=d.get("session_id"), round_index=d.get("round_index"),
                   stream_id=d.get("stream_id"), source=d.get("source"), ts=d.get("ts"), seq=d.get("seq"),
                   mono=d.get("mono"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentEvent):
            return NotImplemented
        return (self.type, self.payload, self.session_id, self.round_index, self.stream_id, self.source) == (
            other.type, other.payload, other.session_id, other.round_index, other.stream_id, other.source)

    __hash__ = None  # type: ignore[assignment]  # mutable payload dict: events are not hashable

    def __repr__(self) -> str:
        return (f"AgentEvent({self.type.value}, seq={self.seq}, session_id={self.session_id!r},"
                f" payload={self.payload!r})")
