"""The provider-neutral LLM contract: what the loop asks of any model.

``LLMService`` is the port; transports (OpenAI-compatible, Anthropic), the offline echo
service and ``power_loop.testing.ScriptedLLM`` implement it. Messages are OpenAI-shaped
dicts; tool calls use the OpenAI shape ``{"id", "type": "function", "function": {"name",
"arguments": <JSON text>}}`` whatever the provider, so the store and the engine never
see a provider's format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from power_loop.contracts.json import JSONObject, Message


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMTokenUsage:
    """Token counts of one LLM call; ``None`` means the provider did not say."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    prompt_cached_tokens: int | None = None
    completion_reasoning_tokens: int | None = None
    cache_hit_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    is_estimated: bool = False
    """True when the provider reported no usage and the counts are our estimate."""

    def as_dict(self) -> dict[str, int]:
        """The counts that are known, as a plain dict."""
        out: dict[str, int] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if value is not None:
                out[f.name] = value
        return out

    @property
    def cache_read(self) -> int:
        """Prompt tokens served from the provider's cache, whichever field carried them."""
        for value in (self.cache_read_input_tokens, self.cached_tokens, self.cache_hit_tokens,
                      self.prompt_cached_tokens):
            if value is not None:
                return value
        return 0

    @property
    def reasoning(self) -> int:
        """Reasoning tokens, whichever field carried them."""
        for value in (self.completion_reasoning_tokens, self.reasoning_tokens):
            if value is not None:
                return value
        return 0

    @property
    def total(self) -> int:
        """``total_tokens``, else prompt + completion."""
        if self.total_tokens is not None:
            return self.total_tokens
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class EncodedHistory:
    """The wire JSON of a history's first ``count`` messages, already encoded.

    ``text`` is exactly ``json.dumps(messages[:count], ensure_ascii=False,
    separators=(",", ":"))[1:-1]`` in UTF-8: the items joined by ``,``. The store builds
    it while loading a session (``SessionStore.load_window``), so a transport whose wire
    format is that compact JSON can send a long cold history without encoding it again.
    ``first`` and ``last`` are the messages it covers at both ends, checked by identity:
    it applies only to the very list it was loaded with.
    """

    count: int
    first: Message
    last: Message
    text: bytes

    def __repr__(self) -> str:
        return f"EncodedHistory(count={self.count}, bytes={len(self.text)})"

    def covers(self, history: list[Message]) -> bool:
        """Whether this encodes ``history[:count]`` (the same message objects)."""
        n = self.count
        return 0 < n <= len(history) and history[0] is self.first and history[n - 1] is self.last


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRequest:
    """One model call. ``messages`` never contains the system prompt."""

    messages: list[Message]
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    parse_json: bool = False
    reason: bool | None = None
    tools: list[JSONObject] | None = None
    """OpenAI tool dicts ``{"type": "function", "function": {"name", "description", "parameters"}}``."""
    tool_choice: str | JSONObject | None = None
    response_format: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)
    """Provider-specific body fields, merged into the request verbatim."""
    history_wire_safe: bool = False
    """The caller guarantees every tool name inside ``messages`` is already provider-legal
    (``[A-Za-z0-9_-]{1,64}``), so a transport may skip per-message name mapping (an O(1)
    hint the engine maintains incrementally; False is always safe)."""
    history_encoded: EncodedHistory | None = field(default=None, repr=False, compare=False)
    """The already-encoded wire JSON of a prefix of ``messages`` (a cold session's
    history as the store loaded it); a transport may splice it in instead of encoding
    those messages. Only meaningful with ``history_wire_safe``; None is always safe."""

    @classmethod
    def from_prompt(cls, *, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> LLMRequest:
        """A one-message request: ``[{"role": "user", "content": prompt}]``."""
        return cls(messages=[{"role": "user", "content": prompt}], system_prompt=system_prompt, **kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMResponse:
    """What a model answered, in provider-neutral form."""

    raw_text: str
    content_text: str = ""
    think: str = ""
    tool_calls: list[JSONObject] = field(default_factory=list)
    token_usage: LLMTokenUsage = field(default_factory=LLMTokenUsage)
    json_data: JSONObject = field(default_factory=dict)
    raw_json_data: JSONObject = field(default_factory=dict)
    parse_error: str | None = None
    raw_message: Any = None
    raw_completion: Any = None
    debug: JSONObject = field(default_factory=dict)
    stream_chunks: list[LLMStreamChunk] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None

    def get_tool_calls(self) -> list[JSONObject]:
        """The tool calls in OpenAI shape (empty for a plain answer)."""
        return list(self.tool_calls)

    @property
    def ok(self) -> bool:
        """True when the response carries text or tool calls and no parse error."""
        return self.parse_error is None and (bool(self.content_text) or bool(self.tool_calls))

    def to_message(self) -> Message:
        """The assistant message this response appends to a conversation."""
        msg: Message = {"role": "assistant", "content": self.content_text or None}
        if self.tool_calls:
            msg["tool_calls"] = [dict(c) for c in self.tool_calls]
        return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMStreamChunk:
    """One streamed increment; the final chunk carries usage and assembled tool calls."""

    delta_text: str = ""
    think: str = ""
    delta_tool_calls: list[JSONObject] | None = None
    tool_calls: list[JSONObject] = field(default_factory=list)
    token_usage: LLMTokenUsage | None = None
    raw_event: Any = None
    is_final: bool = False


@runtime_checkable
class LLMService(Protocol):
    """The port every model provider implements.

    The loop calls only ``complete`` and never closes a service it was given.
    ``complete`` streams when any ``on_chunk_*`` callback is given (and the provider can),
    calling it with each increment, and returns the assembled response either way.
    """

    async def complete(
        self,
        request: LLMRequest,
        *,
        on_chunk_delta_text: Callable[[str], Any] | None = None,
        on_chunk_think: Callable[[str], Any] | None = None,
        on_stream_end: Callable[[LLMResponse], Any] | None = None,
    ) -> LLMResponse:
        """Run one call and return the assembled response."""
        ...

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """Yield increments of one streamed call, the last with ``is_final=True``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def tool_call(call_id: str, name: str, arguments: JSONObject | str) -> JSONObject:
    """Build an OpenAI-shaped tool call (arguments JSON-encoded when given as a dict)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
