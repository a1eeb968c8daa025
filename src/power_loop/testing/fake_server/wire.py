"""The port between the fake server's HTTP layer and a provider's wire format.

The HTTP layer (``server.py``) reads requests, records them, applies transport faults
(``http_error``, ``slow``, ``disconnect``) and writes bytes. A ``WireFormat`` owns the
paths of one provider API: it parses a body into messages and tools for the ``Brain``,
renders the reply (JSON or server-sent events), renders errors in the provider's
shape, and applies the reply faults (``malformed_tool_json``, ``empty_choices``,
``truncated_stream``). Adding the Anthropic Messages API is one more ``WireFormat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from power_loop.contracts.json import JSONObject
from power_loop.testing.fake_server.faults import Fault
from power_loop.testing.fake_server.rules import Brain

__all__ = ["WireCall", "WireFormat", "WireReply", "estimate_tokens"]


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the fake server's token count for ``chars`` characters."""
    return -(-chars // 4)


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
