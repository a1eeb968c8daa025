"""What the lean HTTP path borrows from an official SDK client (openai or anthropic).

``learn_wire_format`` asks the SDK to build one probe request and keeps its exact
headers and a serializer proven to produce the SDK's exact body bytes; ``status_error``
turns a lean error response into the SDK's own exception class. Both rely on SDK
internals that both SDKs share (``_build_request``, ``FinalRequestOptions``,
``_make_status_error_from_response``); when anything is missing or differs they return
None / a plain error and the transport keeps using the SDK's own HTTP client.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from power_loop.contracts.errors import LLMProviderError
from power_loop.llm.transports._lean_http import LeanResponse

Dumps = Callable[[Any], bytes]

_PROBE: dict[str, Any] = {
    "model": "probe-model",
    "messages": [{"role": "user", "content": "h\u00e9llo \u2028 \"quoted\" \\ \U0001f600"}],
    "max_tokens": 7, "temperature": 0.5, "stream": False, "metadata": {"k": None, "b": True},
}


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _classic(obj: Any) -> bytes:
    return json.dumps(obj).encode()


_CANDIDATES: tuple[Dumps, ...] = (_compact, _classic)


def learn_wire_format(
    client: Any, sdk: Any, path: str, options: Mapping[str, Any]
) -> tuple[Dumps, dict[str, str]] | None:
    """``(dumps, headers)`` reproducing the SDK's request for ``path``, or None."""
    try:
        models = importlib.import_module(f"{sdk.__name__}._models")
        final_options = models.FinalRequestOptions.construct(method="post", url=path, json_data=dict(_PROBE),
                                                             **dict(options))
        request = client._build_request(final_options)
        content = request.read() if hasattr(request, "read") else request.content
        dumps = next((c for c in _CANDIDATES if c(_PROBE) == content), None)
        if dumps is None:
            return None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        return dumps, headers
    except Exception:  # any SDK difference: stay on the SDK's own client
        return None


def status_error(client: Any, response_cls: Any, response: LeanResponse, url: str) -> BaseException:
    """The SDK's exception for an HTTP error response (a plain LLMProviderError if that fails)."""
    try:
        request_cls = importlib.import_module(response_cls.__module__).Request
        sdk_response = response_cls(response.status_code, headers=list(response.headers.items()),
                                    content=response.content, request=request_cls("POST", url))
        return client._make_status_error_from_response(sdk_response)  # type: ignore[no-any-return]
    except Exception:
        return LLMProviderError(f"HTTP {response.status_code}: {response.content[:500]!r}",
                                provider="unknown", status_code=response.status_code,
                                retryable=response.status_code in (408, 409, 429) or response.status_code >= 500)


class FragmentEncoder:
    """Encodes request bodies whose ``messages`` list is an append-only history.

    Each history message is serialised once and its bytes kept (keyed by the message
    object, which the caller promises not to mutate: ``LLMRequest.history_wire_safe``);
    a body is then its other fields encoded as usual with the message fragments spliced
    in. Compact JSON encodes a list as its items joined by ``,``, so the bytes are exactly
    those of encoding the whole body — only the per-call cost no longer grows with the
    history. The cache is bounded; evicted messages are simply encoded again.
    """

    __slots__ = ("_bytes", "_cache", "_limit")

    def __init__(self, *, limit_bytes: int = 64 << 20) -> None:
        self._cache: dict[int, tuple[Any, bytes]] = {}
        self._bytes = 0
        self._limit = limit_bytes

    def encode(self, body: dict[str, Any], head: list[Any], history: list[Any]) -> bytes:
        """``_compact(body)`` where ``body["messages"] == head + history``."""
        cache = self._cache
        parts = [_compact(m) for m in head]
        for message in history:
            hit = cache.get(id(message))
            if hit is not None and hit[0] is message:
                parts.append(hit[1])
                continue
            encoded = _compact(message)
            if self._bytes > self._limit:
                cache.clear()
                self._bytes = 0
            cache[id(message)] = (message, encoded)
            self._bytes += len(encoded)
            parts.append(encoded)
        skeleton = _compact({**body, "messages": []})
        marker = b'"messages":[]'
        at = skeleton.find(marker)
        if at < 0:  # cannot happen for a dict with a "messages" key; stay correct anyway
            return _compact({**body, "messages": [*head, *history]})
        return b"".join((skeleton[:at], b'"messages":[', b",".join(parts), b"]", skeleton[at + len(marker):]))


def fragments_apply(dumps: Dumps | None) -> bool:
    """Whether the learnt serializer is the compact one fragments reproduce."""
    return dumps is _compact
