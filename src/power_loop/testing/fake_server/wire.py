"""The port between the fake server's HTTP layer and a provider's wire format.

The HTTP layer (``server.py``) reads requests, records them, applies transport faults
(``http_error``, ``slow``, ``disconnect``) and writes bytes. A ``WireFormat`` owns the
paths of one provider API: it parses a body into messages and tools for the ``Brain``,
renders the reply (JSON or server-sent events), renders errors in the provider's
shape, and applies the reply faults (``malformed_tool_json``, ``empty_choices``,
``truncated_stream``). ``openai_wire`` and ``anthropic_wire`` implement it over one
``Brain``, so a scripted conversation gets the same replies on both wires.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from power_loop.contracts.json import JSONObject
from power_loop.testing.fake_server.faults import Fault
from power_loop.testing.fake_server.rules import Brain

__all__ = ["WireCall", "WireFormat", "WireReply", "estimate_tokens", "prompt_tokens", "stream_pieces"]

# The streaming switches of a request body, so that a streamed and a plain request for the
# same conversation are counted alike.
_STREAM_FIELDS = re.compile(
    rb',\s*"stream"\s*:\s*true|"stream"\s*:\s*true\s*,?'
    rb'|,\s*"stream_options"\s*:\s*\{[^{}]*\}|"stream_options"\s*:\s*\{[^{}]*\}\s*,?'
)


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the fake server's token count for ``chars`` characters."""
    return -(-chars // 4)


def stream_pieces(text: str, *, most: int = 6, least: int = 4, chunk_chars: int | None = None) -> list[str]:
    """``text`` cut into streamed deltas: about ``most`` pieces of at least ``least``
    characters, or pieces of exactly ``chunk_chars`` when given (benchmarks: ~1 token)."""
    if not text:
        return []
    size = chunk_chars if chunk_chars else max(least, -(-len(text) // most))
    return [text[i: i + size] for i in range(0, len(text), size)]


def prompt_tokens(body: bytes) -> int:
    """``estimate_tokens`` of the request body without its ``stream``/``stream_options`` fields."""
    if b'"stream' not in body:
        return estimate_tokens(len(body))
    return estimate_tokens(len(_STREAM_FIELDS.sub(b"", body)))


@dataclass(frozen=True, slots=True, kw_only=True)
class WireCall:
    """One model request as the HTTP layer hands it to a wire format."""

    path: str
    body: bytes
    json: JSONObject
    brain: Brain
    model: str
    """The server's model name, for requests that name none."""
    sequence: int
    """1-based number of this request on the server (for response ids)."""
    fault: Fault | None = None
    """A reply fault to apply, if any."""
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    stream_usage: bool = True
    """Whether streams may carry usage at all (some servers never send it)."""
    cache_creation_tokens: int = 0
    """Anthropic ``cache_creation_input_tokens`` of every answer."""
    repeat_stream_tool_ids: bool = False
    """Streamed tool-call chunks repeat the call's id and name (as some servers do)."""
    response_formats: frozenset[str] | None = None
    """``response_format`` types accepted; others get a 400 (None: all)."""
    stream_chunk_chars: int | None = None
    """Streamed text and reasoning arrive in deltas of this many characters (None: a few)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WireReply:
    """Bytes to answer with."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)


class WireFormat(Protocol):
    """One provider API served by the fake server."""

    name: str
    post_paths: frozenset[str]
    """POST paths answered by ``handle`` (with and without the ``/v1`` prefix)."""

    def handle(self, call: WireCall) -> WireReply:
        """Answer one model request."""
        ...

    def error(self, status: int, message: str, *, retry_after_s: float | None = None) -> WireReply:
        """An error response in this provider's shape."""
        ...

    def get(self, path: str, *, model: str) -> WireReply | None:
        """Answer a GET (such as a model list), or ``None`` when the path is not this format's."""
        ...
