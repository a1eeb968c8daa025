"""What both SDK-backed transports share: the raw response class, Retry-After, SSE lines.

No SDK is imported here; the transports pass their SDK module in. Invariants:
``retry_after_s`` prefers ``retry-after-ms``, then ``retry-after`` as seconds or as an
HTTP date, and never returns a negative delay; ``body_key_order`` asks an SDK resource's
own ``create()`` how it orders a request body, without sending anything.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from power_loop.contracts.errors import LLMProviderError, MissingExtraError
from power_loop.contracts.json import JSONObject
from power_loop.llm._streaming import notify
from power_loop.llm.contract import LLMResponse

__all__ = ["body_key_order", "response_class", "retry_after_s"]

logger = logging.getLogger(__name__)


def response_class(sdk: Any, *, extra: str, feature: str) -> Any:
    """The HTTP response class of the HTTP library an SDK is built on (httpx or httpx2)."""
    for klass in sdk.DefaultAsyncHttpxClient.__mro__:
        if klass.__name__ == "AsyncClient":
            return sys.modules[klass.__module__.partition(".")[0]].Response
    raise MissingExtraError(extra, feature=feature, module=f"a newer {sdk.__name__}")


def retry_after_s(headers: Any) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` / ``retry-after``; None when absent."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # lazy: rare, and slow to import

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Captured(Exception):
    def __init__(self, body: Any) -> None:
        super().__init__("captured")
        self.body = body


async def body_key_order(
    resource: Any, create: Callable[[Any], Awaitable[Any]], *, wanted: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The order in which ``create(resource)`` puts the keys of ``wanted`` in its body.

    ``resource``'s ``_post`` is replaced by a recorder that raises before any I/O, so
    pass a throwaway resource of your own. Returns None when the SDK does not behave
    as expected (the caller keeps its fallback order).
    """

    async def capture(path: str, *, body: Any = None, **kwargs: Any) -> Any:
        raise _Captured(body)

    resource._post = capture
    try:
        await create(resource)
    except _Captured as probe:
        if isinstance(probe.body, dict) and set(wanted) <= set(probe.body):
            return tuple(k for k in probe.body if k in wanted)
    except Exception:  # any SDK surprise: keep the fallback order, requests still work
        logger.debug("could not learn the SDK's body key order; using the fallback", exc_info=True)
    return None


RETRYABLE_STATUS = frozenset({408, 409, 429})
"""HTTP statuses worth retrying besides every 5xx (Anthropic's 529 "overloaded" included)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """How errors of one transport are worded: ``label`` names the endpoint in messages."""

    provider: str
    label: str
    base_url: str
    timeout_s: float
    error_detail: Callable[[Any], str | None]
    """Pulls the human message out of an error response body."""

    def timeout(self) -> LLMProviderError:
        return LLMProviderError(f"{self.label} {self.base_url} did not answer within timeout_s={self.timeout_s}",
                                provider=self.provider, retryable=True)

    def unreachable(self, detail: str) -> LLMProviderError:
        return LLMProviderError(f"cannot reach {self.label} {self.base_url}: {detail}", provider=self.provider,
                                retryable=True)


def translate_sdk_error(exc: BaseException, sdk: Any, endpoint: Endpoint) -> LLMProviderError:
    """An SDK (or lean-exchange) failure as the ``LLMProviderError`` the retry policy reads."""
    if isinstance(exc, LLMProviderError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        detail = endpoint.error_detail(exc.body)
        return LLMProviderError(
            f"{endpoint.label} answered HTTP {status}: {detail or exc.message}",
            provider=endpoint.provider, status_code=status,
            retryable=status in RETRYABLE_STATUS or status >= 500,
            retry_after_s=retry_after_s(exc.response.headers),
        )
    if isinstance(exc, sdk.APITimeoutError):
        return endpoint.timeout()
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc
        return endpoint.unreachable(f"{type(cause).__name__}: {cause}")
    return LLMProviderError(f"{endpoint.provider} SDK error: {type(exc).__name__}: {exc}", provider=endpoint.provider)


@dataclass(frozen=True, slots=True)
class ChunkCallbacks:
    """The ``complete()`` callbacks of one call; any of them set means "stream"."""

    on_text: Callable[[str], Any] | None
    on_think: Callable[[str], Any] | None
    on_end: Callable[[LLMResponse], Any] | None
    on_tool_call: Callable[[JSONObject], Any] | None

    @property
    def streaming(self) -> bool:
        return not (self.on_text is None and self.on_think is None and self.on_end is None
                    and self.on_tool_call is None)

    async def replay(self, response: LLMResponse) -> None:
        """Deliver a non-streamed answer through the callbacks, as one piece each."""
        if response.think:
            await notify(self.on_think, response.think)
        if response.content_text:
            await notify(self.on_text, response.content_text)
        if self.on_tool_call is not None:
            for index, call in enumerate(response.tool_calls):
                await notify(self.on_tool_call, {"index": index, **call})


async def consume_stream(lines: AbstractAsyncContextManager[AsyncIterator[str]], assembler: Any,
                         parse: Callable[[str], JSONObject], callbacks: ChunkCallbacks) -> LLMResponse:
    """Feed a stream's ``data:`` lines to ``assembler``, calling back per chunk; the response.

    An error after the assembler saw the stream's end marker loses nothing and is ignored.
    """
    feed = assembler.feed
    on_text, on_think, on_tool_call = callbacks.on_text, callbacks.on_think, callbacks.on_tool_call
    try:
        async with lines as stream:
            async for line in stream:  # the hot loop: one SSE line per iteration
                if not line.startswith("data:"):
                    continue
                chunk = feed(parse(line))
                if chunk is None:
                    continue
                if chunk.think:
                    await notify(on_think, chunk.think)
                if chunk.delta_text and on_text is not None:
                    # notify() inlined: no coroutine per token for a sync callback
                    result = on_text(chunk.delta_text)
                    if result is not None and inspect.isawaitable(result):
                        await result
                if chunk.delta_tool_calls and on_tool_call is not None:
                    for delta in chunk.delta_tool_calls:
                        await notify(on_tool_call, delta)
    except LLMProviderError:
        if not assembler.done:
            raise
    response: LLMResponse = assembler.response()
    return response
