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
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from power_loop.contracts.errors import LLMProviderError
from power_loop.llm.transports._lean_http import HTTPExchangeError, LeanHTTPClient, LeanResponse
from power_loop.llm.transports._sdk_common import Endpoint

if TYPE_CHECKING:
    from power_loop.llm.contract import EncodedHistory

Dumps = Callable[[Any], bytes]

_PROBE: dict[str, Any] = {
    "model": "probe-model",
    "messages": [{"role": "user", "content": "h\u00e9llo \u2028 \"quoted\" \\ \U0001f600"}],
    "max_tokens": 7, "temperature": 0.5, "stream": False, "metadata": {"k": None, "b": True},
}


# One encoder for the process (``json.dumps`` with options builds one per call), and
# json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) exactly.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _compact(obj: Any) -> bytes:
    return _COMPACT(obj).encode()


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


async def post_lean(lean: LeanHTTPClient, client: Any, response_cls: Any, path: str, body: bytes,
                    headers: Mapping[str, str], *, stream: bool, endpoint: Endpoint,
                    translate: Callable[[BaseException], LLMProviderError]) -> LeanResponse:
    """POST ``body`` over the lean exchange; the response, its body read unless ``stream``.

    Raises:
        LLMProviderError: an error status (through the SDK's own exception and
            ``translate``), a timeout or an unreachable endpoint.
    """
    try:
        response = await lean.post(path, body, headers)
        if response.status_code >= 400:
            await response.read()
            error = status_error(client, response_cls, response, str(client.base_url).rstrip("/") + path)
            raise translate(error) from error
        if not stream:
            await response.read()
        return response
    except HTTPExchangeError as exc:
        raise (endpoint.timeout() if exc.timed_out else endpoint.unreachable(str(exc))) from exc


class FragmentEncoder:
    """Encodes request bodies whose ``messages`` list is an append-only history.

    Per history (recognised by the identity of its first message) it keeps the encoded
    bytes of the messages seen so far, joined; the next call encodes only the messages
    appended since and splices the prefix in. A cold history is encoded in one bulk
    call. The caller promises that history messages are never mutated or reordered
    (``LLMRequest.history_wire_safe``); the first and last cached messages are checked
    by identity. Compact JSON encodes a list as its items joined by ``,``, so the bytes
    are exactly those of encoding the whole body — only the per-call cost no longer grows
    with the history beyond a copy. A history the store loaded already encoded
    (``LLMRequest.history_encoded``) seeds its entry without any encoding. Entries are
    bounded in number and bytes.
    """

    __slots__ = ("_entries", "_limit_bytes", "_max_entries", "_total")

    def __init__(self, *, max_entries: int = 512, limit_bytes: int = 256 << 20) -> None:
        # id(first message) -> (first message, last message, count, joined encoded bytes)
        self._entries: OrderedDict[int, tuple[Any, Any, int, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._limit_bytes = limit_bytes
        self._total = 0

    def encode(self, body: dict[str, Any], head: list[Any], history: list[Any],
               seed: EncodedHistory | None = None) -> bytes:
        """``_compact(body)`` where ``body["messages"] == head + history``; ``seed``, if it
        covers a prefix of ``history``, stands for that prefix's encoding."""
        joined = self._history_bytes(history, seed)
        skeleton = _compact({**body, "messages": []})
        marker = b'"messages":[]'
        at = skeleton.find(marker)
        if at < 0:  # cannot happen for a dict with a "messages" key; stay correct anyway
            return _compact({**body, "messages": [*head, *history]})
        pieces = [skeleton[:at], b'"messages":[']
        for m in head:
            pieces += (_compact(m), b",")
        if history:
            pieces.append(joined)
        elif head:
            pieces.pop()  # the last ","
        pieces += (b"]", skeleton[at + len(marker):])
        return b"".join(pieces)  # one copy of the (long) history

    def _history_bytes(self, history: list[Any], seed: EncodedHistory | None) -> bytes:
        if not history:
            return b""
        key = id(history[0])
        entry = self._entries.get(key)
        n = len(history)
        if not (entry is not None and entry[0] is history[0] and entry[2] <= n
                and history[entry[2] - 1] is entry[1]):
            entry = (seed.first, seed.last, seed.count, seed.text) if seed is not None and seed.covers(history) \
                else None
        if entry is not None:
            known = entry[2]
            joined = entry[3] if known == n else b",".join((entry[3], *map(_compact, history[known:])))
        else:
            joined = _compact(history)[1:-1]  # one bulk call: the list's items, joined by ","
        old = self._entries.pop(key, None)
        if old is not None:
            self._total -= len(old[3])
        self._entries[key] = (history[0], history[-1], n, joined)
        self._total += len(joined)
        self._trim()
        return joined

    def _trim(self) -> None:
        entries = self._entries
        while len(entries) > self._max_entries or (self._total > self._limit_bytes and len(entries) > 1):
            _, dropped = entries.popitem(last=False)
            self._total -= len(dropped[3])


def fragments_apply(dumps: Dumps | None) -> bool:
    """Whether the learnt serializer is the compact one fragments reproduce."""
    return dumps is _compact


def lazy_http_client(sdk: Any) -> Any:
    """An ``AsyncClient`` of the SDK's own HTTP library whose transport is built on first use.

    Passed to the SDK client when the lean exchange carries the requests, so the SSL
    context of a default transport is never loaded unless the SDK path is used after all.
    """
    klass = next(k for k in sdk.DefaultAsyncHttpxClient.__mro__ if k.__name__ == "AsyncClient")
    httpx = importlib.import_module(klass.__module__.partition(".")[0])

    class _LazyTransport(httpx.AsyncBaseTransport):  # type: ignore[misc,name-defined]  # the SDK's httpx flavour
        def __init__(self) -> None:
            self._real: Any = None

        async def handle_async_request(self, request: Any) -> Any:
            if self._real is None:
                self._real = httpx.AsyncHTTPTransport()
            return await self._real.handle_async_request(request)

        async def aclose(self) -> None:
            if self._real is not None:
                await self._real.aclose()

    return httpx.AsyncClient(transport=_LazyTransport())
