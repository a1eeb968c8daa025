"""The Anthropic transport: ``LLMService`` over the Messages API (``POST {base_url}/v1/messages``).

Like the OpenAI-compatible transport, it keeps the official ``anthropic`` SDK client
(auth and version headers, base URL, timeouts, error classes) but not its request path,
which walks and copies the whole body on every call: the body is built here
(``_anthropic_request``), serialized exactly as the SDK would (learnt from the SDK once,
``_sdk_wire``) and sent with the SDK's own headers over the lean HTTP exchange
(``_lean_http``); the reply JSON or SSE lines are read here and mapped by
``_anthropic_response``. With a proxy configured, ``extra["http_engine"] = "sdk"`` or an
SDK whose request cannot be reproduced, the client's public low-level ``post(...,
cast_to=<the SDK's HTTP response class>)`` sends it instead.

Invariants:
- The body's keys come in the order of the installed SDK's ``messages.create()``
  (learnt once per process), then the raw-body fields: ``temperature`` (never an SDK
  keyword argument: recent SDK majors dropped it) and ``LLMRequest.extra``. So the bytes
  on the wire equal ``messages.create(**same, extra_body={"temperature": …})``.
- ``max_tokens`` is always sent (Anthropic requires it): the request's, else the config's.
- ``base_url`` is the API root; a trailing ``/v1`` is dropped, since the path has it.
- SDK retries are off (``max_retries=0``): ``with_retry`` is the one retry layer.
  Errors become ``LLMProviderError(provider="anthropic")``, ``retryable`` for connection
  errors, timeouts, 408/409/429/5xx and 529 (overloaded), invalid JSON, cut streams and
  replies without content, with ``retry_after_s`` from ``Retry-After``.

Works with ``anthropic`` 1.x and 2.x: it uses ``AsyncAnthropic(base_url, api_key,
max_retries, timeout, default_headers)``, ``client.post(path, body=, cast_to=, stream=)``,
``client.close()``, ``DefaultAsyncHttpxClient`` and the ``APIStatusError``/
``APITimeoutError``/``APIConnectionError``/``AnthropicError`` classes, present in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from power_loop.contracts.errors import LLMProviderError, MissingExtraError
from power_loop.contracts.json import JSONObject
from power_loop.llm._streaming import notify
from power_loop.llm.config import LLMProviderConfig
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk
from power_loop.llm.retry import LLMRetryPolicy
from power_loop.llm.tool_names import ToolNameMap, ToolNameMapCache
from power_loop.llm.transports._anthropic_request import RequestParts, TurnMemo, build_request_parts
from power_loop.llm.transports._anthropic_response import StreamAssembler, parse_message
from power_loop.llm.transports._lean_http import LeanHTTPClient, proxy_configured
from power_loop.llm.transports._sdk_common import (
    ChunkCallbacks,
    Endpoint,
    body_key_order,
    consume_stream,
    response_class,
    translate_sdk_error,
)
from power_loop.llm.transports._sdk_wire import FragmentEncoder, fragments_apply, learn_wire_format, post_lean

__all__ = ["AnthropicLLMService"]

logger = logging.getLogger(__name__)

PATH = "/v1/messages"
_FEATURE = "the Anthropic transport"
# The key order of `messages.create()` in anthropic 1.x and 2.x, used if learning it fails.
_FALLBACK_KEY_ORDER = ("max_tokens", "messages", "model", "stream", "system", "tool_choice", "tools")
_key_order: tuple[str, ...] | None = None


def _anthropic_error_detail(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    return detail if isinstance(detail, str) else None


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise MissingExtraError("anthropic", feature=_FEATURE, module="anthropic") from exc
    return anthropic


async def _learn_key_order(client: Any) -> tuple[str, ...]:
    global _key_order
    if _key_order is None:
        async def create(resource: Any) -> Any:
            return await resource.create(
                max_tokens=1, messages=[], model="m", stream=True, system="s", tool_choice={"type": "auto"},
                tools=[], extra_body={"temperature": 0.0},
            )

        learnt = await body_key_order(type(client.messages)(client), create, wanted=_FALLBACK_KEY_ORDER)
        _key_order = learnt or _FALLBACK_KEY_ORDER
    return _key_order


def _event(line: str) -> JSONObject:
    """The JSON object of an SSE ``data:`` line."""
    try:
        data = json.loads(line[5:])
    except ValueError as exc:
        raise LLMProviderError(f"anthropic stream sent invalid JSON: {line[:200]!r}", provider="anthropic",
                               retryable=True) from exc
    return data if isinstance(data, dict) else {}


def _api_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class AnthropicLLMService:
    """``LLMService`` for the Anthropic Messages API (and compatible endpoints).

    Example:
        >>> from power_loop.llm.config import LLMProviderConfig
        >>> cfg = LLMProviderConfig(base_url="http://127.0.0.1:9", api_key="k", model="m",
        ...                         provider="anthropic")
        >>> llm = AnthropicLLMService(cfg)
        >>> llm.provider, llm.retry_policy.max_attempts
        ('anthropic', 4)

    Raises:
        MissingExtraError: (``extra.missing``) the ``anthropic`` package is not installed.
    """

    provider = "anthropic"

    def __init__(self, config: LLMProviderConfig) -> None:
        if importlib.util.find_spec("anthropic") is None:
            raise MissingExtraError("anthropic", feature=_FEATURE, module="anthropic")
        self.config = config
        self.retry_policy = LLMRetryPolicy(max_attempts=config.max_retries + 1, total_timeout=None)
        self.supports_stream = bool(config.extra.get("supports_stream", True))
        self._debug = bool(config.extra.get("llm_debug", False))
        # Typed Any: the code serves anthropic 1.x and 2.x, whose type stubs differ.
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._sdk: Any = None
        self._response_cls: Any = None
        self._name_maps = ToolNameMapCache()
        self._endpoint = Endpoint(provider="anthropic", label="anthropic endpoint", base_url=config.base_url,
                                  timeout_s=config.timeout_s, error_detail=_anthropic_error_detail)
        self._memo = TurnMemo()
        self._lean: LeanHTTPClient | None = None
        self._lean_headers: dict[str, str] = {}
        self._dumps: Callable[[Any], bytes] | None = None
        self._fragments: FragmentEncoder | None = None

    # -- the SDK client -------------------------------------------------------------
    async def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Connection pools are bound to the event loop that opened them.
            sdk = self._sdk = _import_anthropic()
            self._client = sdk.AsyncAnthropic(
                base_url=_api_root(self.config.base_url), api_key=self.config.api_key, max_retries=0,
                timeout=self.config.timeout_s, default_headers=self.config.extra.get("default_headers"),
            )
            self._client_loop = loop
            self._response_cls = response_class(sdk, extra="anthropic", feature=_FEATURE)
            await _learn_key_order(self._client)
            self._setup_lean(self._client)
        return self._client

    def _setup_lean(self, client: Any) -> None:
        """Use the lean HTTP exchange when the SDK's request can be reproduced exactly."""
        self._lean = None
        if self.config.extra.get("http_engine", "auto") == "sdk":
            return
        base_url = str(client.base_url)
        if proxy_configured(base_url):
            return  # proxies are the SDK client's job
        learnt = learn_wire_format(client, self._sdk, PATH, {})
        if learnt is None:
            return
        self._dumps, self._lean_headers = learnt
        self._fragments = FragmentEncoder() if fragments_apply(self._dumps) else None
        self._lean = LeanHTTPClient(base_url, timeout_s=self.config.timeout_s)

    async def close(self) -> None:
        """Close the SDK client (a later call opens a new one)."""
        client, self._client = self._client, None
        lean, self._lean = self._lean, None
        if lean is not None:
            await lean.aclose()
        if client is not None:
            await client.close()

    # -- requests ---------------------------------------------------------------------
    def _name_map(self, tools: list[JSONObject] | None) -> ToolNameMap | None:
        return self._name_maps.get(tools)

    def _parts(self, request: LLMRequest) -> tuple[RequestParts, ToolNameMap | None]:
        name_map = self._name_map(request.tools)
        return build_request_parts(request, name_map, self._memo), name_map

    def build_body(
        self, request: LLMRequest, *, stream: bool, parts: RequestParts | None = None
    ) -> JSONObject:
        """The JSON body for ``request``, keys in the SDK's ``messages.create()`` order."""
        cfg = self.config
        if parts is None:
            parts = self._parts(request)[0]
        values: JSONObject = {
            "max_tokens": request.max_tokens or cfg.max_tokens,
            "messages": parts.messages,
            "model": request.model or cfg.model,
        }
        if stream:
            values["stream"] = True
        if parts.system is not None:
            values["system"] = parts.system
        if parts.tools:
            values["tools"] = parts.tools
            if parts.tool_choice is not None:
                values["tool_choice"] = parts.tool_choice
        order = _key_order or _FALLBACK_KEY_ORDER
        body = {key: values[key] for key in order if key in values}
        temperature = request.temperature if request.temperature is not None else cfg.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if request.extra:
            body.update(request.extra)
        return body

    async def _post(self, request: LLMRequest, parts: RequestParts, *, stream: bool) -> Any:
        client = await self._get_client()  # first: it learns the key order build_body uses
        body = self.build_body(request, stream=stream, parts=parts)
        if self._debug:
            logger.debug("anthropic request: model=%s messages=%d tools=%d stream=%s", body.get("model"),
                         len(body.get("messages") or ()), len(body.get("tools") or ()), stream)
        if self._lean is not None and self._dumps is not None:
            return await self._post_lean(client, self._encode(request, body), stream=stream)
        try:
            return await client.post(PATH, body=body, cast_to=self._response_cls, stream=stream)
        except self._sdk.AnthropicError as exc:
            raise self._translate(exc) from exc

    def _encode(self, request: LLMRequest, body: JSONObject) -> bytes:
        """The body's bytes; the turns of a long append-only history are encoded once, not per call."""
        assert self._dumps is not None
        turns = body.get("messages")
        if (self._fragments is not None and request.history_wire_safe and not request.extra
                and isinstance(turns, list) and len(turns) > 8):
            return self._fragments.encode(body, [], turns)
        return self._dumps(body)

    async def _post_lean(self, client: Any, body: bytes, *, stream: bool) -> Any:
        assert self._lean is not None
        return await post_lean(self._lean, client, self._response_cls, PATH, body, self._lean_headers,
                               stream=stream, endpoint=self._endpoint, translate=self._translate)

    def _translate(self, exc: BaseException) -> LLMProviderError:
        return translate_sdk_error(exc, self._sdk, self._endpoint)

    # -- LLMService -------------------------------------------------------------------
    async def complete(
        self,
        request: LLMRequest,
        *,
        on_chunk_delta_text: Callable[[str], Any] | None = None,
        on_chunk_think: Callable[[str], Any] | None = None,
        on_stream_end: Callable[[LLMResponse], Any] | None = None,
        on_chunk_tool_call: Callable[[JSONObject], Any] | None = None,
    ) -> LLMResponse:
        """One call; streamed when any callback is given (and ``supports_stream``).

        Raises:
            LLMProviderError: (``llm.provider_error``) see the module docstring.
        """
        callbacks = ChunkCallbacks(on_chunk_delta_text, on_chunk_think, on_stream_end, on_chunk_tool_call)
        if callbacks.streaming and self.supports_stream:
            assembler, parts = self._assembler(request, keep_raw=False)
            response = await consume_stream(self._stream_lines(request, parts), assembler, _event, callbacks)
        else:
            response = await self._complete_once(request)
            if callbacks.streaming:
                await callbacks.replay(response)
        await notify(on_stream_end, response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """Yield the increments of one streamed call, then a final chunk with tool calls and usage."""
        assembler, parts = self._assembler(request, keep_raw=True)
        try:
            async with self._stream_lines(request, parts) as lines:
                async for line in lines:
                    if line.startswith("data:"):
                        chunk = assembler.feed(_event(line))
                        if chunk is not None:
                            yield chunk
        except LLMProviderError:
            if not assembler.done:
                raise
        response = assembler.response()
        yield LLMStreamChunk(is_final=True, tool_calls=response.tool_calls, token_usage=response.token_usage)

    def _assembler(self, request: LLMRequest, *, keep_raw: bool) -> tuple[StreamAssembler, RequestParts]:
        parts, name_map = self._parts(request)
        assembler = StreamAssembler(request=request, from_wire=name_map.from_wire if name_map else None,
                                    synthetic_tool=parts.synthetic_tool,
                                    default_model=request.model or self.config.model, keep_raw=keep_raw)
        return assembler, parts

    async def _complete_once(self, request: LLMRequest) -> LLMResponse:
        parts, name_map = self._parts(request)
        response = await self._post(request, parts, stream=False)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise LLMProviderError(
                f"anthropic endpoint sent invalid JSON (HTTP {response.status_code}): {exc}",
                provider="anthropic", status_code=response.status_code, retryable=True,
            ) from exc
        if not isinstance(data, dict):
            raise LLMProviderError("anthropic endpoint sent a non-object JSON body", provider="anthropic",
                                   status_code=response.status_code, retryable=True)
        return parse_message(request, data, from_wire=name_map.from_wire if name_map else None,
                             synthetic_tool=parts.synthetic_tool)

    @contextlib.asynccontextmanager
    async def _stream_lines(
        self, request: LLMRequest, parts: RequestParts
    ) -> AsyncIterator[AsyncIterator[str]]:
        """The SSE lines of one streamed call, read to the end (so the connection is reused);
        read errors become retryable ``LLMProviderError``s."""
        response = await self._post(request, parts, stream=True)
        try:
            yield response.aiter_lines()
        except (LLMProviderError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # the HTTP library's read errors: a cut or timed-out stream
            raise LLMProviderError(f"anthropic stream broke off: {type(exc).__name__}: {exc}",
                                   provider="anthropic", retryable=True) from exc
        finally:
            await response.aclose()

    def __repr__(self) -> str:
        return f"AnthropicLLMService(base_url={self.config.base_url!r}, model={self.config.model!r})"
