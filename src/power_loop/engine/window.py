"""SessionWindow: a session's active history as the model sees it, plus its seq token.

The window is a pure accelerator: it is rebuilt from the store's active rows and is
valid only while its ``next_seq`` equals the session row's. Live appends extend it
with ``MessageRow.to_message()`` of what was stored, exactly as a cold load builds it,
so warm and cold loops produce byte-identical requests. Which tool calls are unresolved
is derived from the messages alone (no separate state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from power_loop.contracts.json import JSONObject, Message
from power_loop.llm.contract import EncodedHistory
from power_loop.llm.tool_names import is_wire_legal
from power_loop.store.codec import decode_json, encode_json
from power_loop.store.rows import MessageRow, WindowRows


@dataclass(slots=True)
class PendingRound:
    """Unresolved tool calls of the session's last assistant turn."""

    assistant_seq: int
    round_index: int | None
    tool_calls: list[JSONObject]
    """The unresolved calls, in call order."""


@dataclass(slots=True)
class SessionWindow:
    """A session's active history as the loop caches it, valid while ``next_seq`` matches the store."""

    next_seq: int
    send_count: int
    messages: list[Message] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    round_indexes: list[int | None] = field(default_factory=list)
    system_prompt: str | None = None
    """The session-pinned system prompt (immutable once the session exists)."""
    wire_safe: bool = True
    """No stored tool call name needs mapping to a provider-legal wire name."""
    encoded: EncodedHistory | None = None
    """The history's wire JSON as the store loaded it, until the first request takes it
    (``take_encoded``): a transport sends a cold history without encoding it. Until then
    a cached window holds it beside its messages (a fraction of their size in memory)."""

    @classmethod
    def from_rows(cls, rows: Sequence[MessageRow], *, next_seq: int, send_count: int,
                  system_prompt: str | None = None) -> SessionWindow:
        return cls(
            next_seq=next_seq,
            send_count=send_count,
            system_prompt=system_prompt,
            messages=[r.to_message() for r in rows],
            seqs=[r.seq for r in rows],
            round_indexes=[r.round_index for r in rows],
            wire_safe=all(_names_legal(r) for r in rows),
        )

    @classmethod
    def from_messages(cls, messages: list[Message], seqs: list[int], round_indexes: list[int | None], *,
                      next_seq: int, send_count: int, system_prompt: str | None = None) -> SessionWindow:
        """A window from ``SessionStore.load_active_window``."""
        return cls(next_seq=next_seq, send_count=send_count, system_prompt=system_prompt, messages=messages,
                   seqs=seqs, round_indexes=round_indexes, wire_safe=_history_legal(messages))

    @classmethod
    def from_loaded(cls, loaded: WindowRows, *, next_seq: int, send_count: int,
                    system_prompt: str | None = None) -> SessionWindow:
        """A window from ``SessionStore.load_window`` (the cold-load path), keeping its wire JSON."""
        messages = loaded.messages
        window = cls.from_messages(messages, loaded.seqs, loaded.round_indexes, next_seq=next_seq,
                                   send_count=send_count, system_prompt=system_prompt)
        if loaded.encoded is not None and messages and window.wire_safe:
            window.encoded = EncodedHistory(len(messages), messages[0], messages[-1], loaded.encoded)
        return window

    def take_encoded(self) -> EncodedHistory | None:
        """The loaded wire JSON, once: the transport that receives it keeps its own copy
        while the history grows, so the window need not hold a second one."""
        encoded, self.encoded = self.encoded, None
        return encoded

    def extend(self, rows: Sequence[MessageRow]) -> None:
        """Record rows just appended by this process (they must continue the seq)."""
        for row in rows:
            self.messages.append(row.to_message())
            self.seqs.append(row.seq)
            self.round_indexes.append(row.round_index)
            if self.wire_safe and not _names_legal(row):
                self.wire_safe = False
        if rows:
            self.next_seq = rows[-1].seq + 1

    def pending(self) -> PendingRound | None:
        """The last assistant turn's tool calls that no later tool message answers."""
        answered: set[str] = set()
        for i in range(len(self.messages) - 1, -1, -1):
            msg = self.messages[i]
            role = msg["role"]
            if role == "tool":
                call_id = msg.get("tool_call_id")
                if call_id is not None:
                    answered.add(call_id)
                continue
            if role == "assistant" and msg.get("tool_calls"):
                open_calls = [c for c in msg["tool_calls"] if c.get("id") not in answered]
                if not open_calls:
                    return None
                return PendingRound(assistant_seq=self.seqs[i], round_index=self.round_indexes[i],
                                    tool_calls=open_calls)
            return None
        return None


def _names_legal(row: MessageRow) -> bool:
    return not row.tool_calls or _calls_legal(row.tool_calls)


def own_copy(messages: list[Message]) -> list[Message]:
    """A deep copy of ``messages`` for code that may edit it in place (a hook's ``messages``,
    ``get_messages``): the window's dicts are shared with the transport's encoded bytes
    and with later sends, so an edit must never reach them. Messages are JSON values, so
    one encode and one decode (both in C) copy them exactly, faster than ``deepcopy``."""
    return decode_json(encode_json(messages))  # type: ignore[no-any-return]


def _history_legal(messages: list[Message]) -> bool:
    """Every tool call name in ``messages`` is wire-legal (each distinct name checked once)."""
    try:
        names = {c["function"]["name"] for m in messages if "tool_calls" in m for c in m["tool_calls"]}
    except (KeyError, TypeError):  # an odd stored call: check call by call
        return all(_calls_legal(m["tool_calls"]) for m in messages if "tool_calls" in m)
    return all(type(n) is str and is_wire_legal(n) for n in names)


def _calls_legal(calls: list[JSONObject]) -> bool:
    return all(is_wire_legal(str((c.get("function") or {}).get("name") or "")) for c in calls)
