"""Store row types and enums: what the store returns, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from power_loop.contracts.json import JSONObject, Message


class SessionStatus(str, Enum):
    """Whether a session is in use or archived."""

    ACTIVE = "active"
    ARCHIVED = "archived"


class SessionKind(str, Enum):
    """A root session, or a sub-agent's child session."""

    ROOT = "root"
    SUBAGENT = "subagent"


class SubagentLifecycle(str, Enum):
    """What happens to a child session: deleted once completed, dies with its parent, or independent."""

    EPHEMERAL = "ephemeral"
    LINKED = "linked"
    DETACHED = "detached"


class MessageState(str, Enum):
    """Whether a message is in the active window, folded out by a compact, or dropped."""

    ACTIVE = "active"
    COMPACTED_OUT = "compacted_out"
    DROPPED = "dropped"


class SchemaPolicy(str, Enum):
    """How a store provisions its tables."""

    AUTO_CREATE = "auto_create"
    """Create missing tables, migrate older schemas, stamp the version (default)."""
    VERIFY = "verify"
    """Create nothing; a missing, incomplete or older schema raises ``StoreSchemaError``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    """A session as stored: identity, tree position, prompt, config and counters."""

    session_id: str
    created_at: int
    updated_at: int
    system_prompt: str | None = None
    model: str | None = None
    config: JSONObject = field(default_factory=dict)
    status: str = SessionStatus.ACTIVE.value
    kind: str = SessionKind.ROOT.value
    parent_session_id: str | None = None
    spawn_tool_call_id: str | None = None
    spawn_depth: int = 0
    lifecycle: str | None = None
    metadata: JSONObject = field(default_factory=dict)
    next_seq: int = 1
    """Seq the next appended message gets; also the validation token of caches."""
    send_count: int = 0
    """Sends started on this session; the next send's ``send_index`` is ``send_count + 1``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRow:
    """One message of a session's audit log, as stored (``seq`` orders it)."""

    session_id: str
    seq: int
    role: str
    name: str | None = None
    content: Any = None
    tool_calls: list[JSONObject] | None = None
    tool_call_id: str | None = None
    round_index: int | None = None
    state: str = MessageState.ACTIVE.value
    meta: JSONObject = field(default_factory=dict)
    created_at: int = 0
    send_index: int | None = None

    def to_message(self) -> Message:
        """The OpenAI-shaped message this row stores (keys only when present)."""
        msg: Message = {"role": self.role, "content": self.content}
        if self.name is not None:
            msg["name"] = self.name
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            msg["tool_call_id"] = self.tool_call_id
        return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowRows:
    """A session's active history as a loop's window is built from it (``load_window``)."""

    messages: list[Message]
    """Each active row as ``MessageRow.to_message()`` returns it, by seq."""
    seqs: list[int]
    round_indexes: list[int | None]
    encoded: bytes | None = None
    """``messages`` as the wire encoder writes them (compact JSON, ``ensure_ascii=False``),
    items joined by ``,``, where the database built that text while loading; else None."""


# eq=False: an internal record nobody compares (no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class NewMessage:
    """A message to append; the store assigns ``seq`` and ``created_at``."""

    role: str
    content: Any = None
    name: str | None = None
    tool_calls: list[JSONObject] | None = None
    tool_call_id: str | None = None
    round_index: int | None = None
    send_index: int | None = None
    meta: JSONObject = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: Message, *, round_index: int | None = None,
                     send_index: int | None = None, meta: JSONObject | None = None) -> NewMessage:
        return cls(
            role=str(message["role"]),
            content=message.get("content"),
            name=message.get("name"),
            tool_calls=message.get("tool_calls") or None,
            tool_call_id=message.get("tool_call_id"),
            round_index=round_index,
            send_index=send_index,
            meta=meta or {},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStatsRow:
    """A session's cumulative counters, bumped once per finished send."""

    session_id: str
    sends: int = 0
    rounds: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    first_send_at: int | None = None
    last_send_at: int | None = None
    updated_at: int | None = None


# eq=False: an internal record nobody compares (no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class StatsDelta:
    """What one finished send adds to its session's stats."""

    sends: int = 1
    """1 for a send's first recording; 0 when a continued run adds what it did after it."""
    rounds: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUpRow:
    """An input waiting in a session's durable follow-up queue."""

    session_id: str
    follow_up_id: int
    content: Any
    created_at: int
