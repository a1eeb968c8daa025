"""The OpenAI-compatible transport: ``LLMService`` over ``POST {base_url}/chat/completions``.

It keeps the official ``openai`` SDK client (auth headers, base URL, default headers,
timeouts, error classes) but not its typed request path: ``chat.completions.create``
walks the whole message history with ``typing`` introspection on every call (about
0.7 s of CPU for 4,000 messages). We build the body dict ourselves and send it with the
client's public low-level ``post(..., cast_to=<the SDK's HTTP response class>)``,
which returns the raw response untouched; we ``json.loads`` its bytes (or read the SSE
lines ourselves) and map straight into ``LLMResponse``.

Invariants:
- The body's keys come in the order ``create()`` of the installed SDK uses (learnt once
  per process from the SDK itself), and the SDK serializes it, so the bytes on the wire
  equal those of ``create()`` with the same parameters.
- Registry tool names go out as legal wire names (``ToolNameMap``) and come back as
  registry names; a tool name the model made up comes back unchanged.
- SDK retries are off (``max_retries=0``): ``with_retry`` is the one retry layer.
  Errors become ``LLMProviderError(provider="openai")``, ``retryable`` for connection
  errors, timeouts, 408/409/429/5xx, invalid JSON, cut streams and empty choices (some
  gateways answer so when overloaded), with ``retry_after_s`` from the response headers.
- Malformed tool-call arguments pass through as raw text (the engine turns them into a
  tool result the model sees); streamed tool calls are assembled by ``index``.
- A streamed answer without usage gets an estimate (``is_estimated=True``).
- ``tool_choice`` ``"auto"``/``"none"``/``"required"`` go out as they are; a bare tool
  name becomes ``{"type": "function", "function": {"name": <wire name>}}``.
- A server that refuses a json_schema ``response_format`` (a 400/422 naming it) gets
  ``json_object`` plus the schema in the system prompt, then the prompt instruction
  alone; the step down is remembered per service instance (``response_format_mode``).

Works with ``openai`` 1.x (httpx) and 3.x (httpx2): it uses ``AsyncOpenAI(base_url,
api_key, max_retries, timeout, default_headers)``, ``client.post(path, body=, cast_to=,
options=, stream=)``, ``client.close()``, ``DefaultAsyncHttpxClient`` (to find the HTTP
response class) and the ``APIStatusError``/``APITimeoutError``/``APIConnectionError``/
``OpenAIError`` classes, all present in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from power_loop.contracts.errors import LLMProviderError, MissingExtraError
from power_loop.contracts.json import JSONObject, Message
from power_loop.llm._streaming import estimated_usage, notify
from power_loop.llm.config import LLMProviderConfig
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk
from power_loop.llm.retry import LLMRetryPolicy
from power_loop.llm.tool_names import ToolNameMap, ToolNameMapCache
from power_loop.llm.transports._lean_http import LeanHTTPClient, proxy_configured
from power_loop.llm.transports._openai_response import (
    StreamAssembler,
    build_response,
    parse_message,
    usage_from,
)
from power_loop.llm.transports._sdk_common import (
    ChunkCallbacks,
    Endpoint,
    body_key_order,
    consume_stream,
    response_class,
    translate_sdk_error,
)
from power_loop.llm.transports._sdk_wire import (
    FragmentEncoder,
    fragments_apply,
    lazy_http_client,
    learn_wire_format,
    post_lean,
)

__all__ = ["OpenAICompatLLMService"]

logger = logging.getLogger(__name__)

# The key order of `chat.completions.create()` in openai 3.x, used if learning it fails.
_FALLBACK_KEY_ORDER = (
    "model", "stream", "messages", "max_tokens", "response_format", "stream_options",
    "temperature", "tool_choice", "tools",
)
_key_order: tuple[str, ...] | None = None
_TOOL_CHOICE_KEYWORDS = frozenset({"auto", "none", "required"})
# How a json_schema response_format is sent: as is, as json_object + the schema in the
# system prompt, or as the prompt instruction alone (each server's refusal moves one down).
_RESPONSE_FORMAT_MODES = ("json_schema", "json_object", "prompt")


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise MissingExtraError("openai", feature="the OpenAI-compatible transport", module="openai") from exc
    return openai


async def _learn_key_order(client: Any) -> tuple[str, ...]:
    """How the installed SDK's ``create()`` orders the body keys (once per process)."""
    global _key_order
    if _key_order is not None:
        return _key_order
    if str(getattr(_import_openai(), "__version__", "")).startswith("3."):
        _key_order = _FALLBACK_KEY_ORDER  # the 3.x order, pinned by the byte-identical wire test
        return _key_order
    learnt = await body_key_order(
        type(client.chat.completions)(client),  # a throwaway resource: its _post gets replaced
        lambda resource: resource.create(
            model="m", messages=[], max_tokens=1, temperature=0.0, tools=[], tool_choice="auto",
            response_format={"type": "text"}, stream=True, stream_options={"include_usage": True}),
        wanted=_FALLBACK_KEY_ORDER,
    )
    _key_order = learnt or _FALLBACK_KEY_ORDER
    return _key_order


class OpenAICompatLLMService:
    """``LLMService`` for any OpenAI-compatible Chat Completions endpoint.

    Example:
        >>> from power_loop.llm.config import LLMProviderConfig
        >>> cfg = LLMProviderConfig(base_url="http://127.0.0.1:9/v1", api_key="k", model="m")
        >>> llm = OpenAICompatLLMService(cfg)
        >>> llm.provider, llm.retry_policy.max_attempts
        ('openai', 4)

    Raises:
        MissingExtraError: (``extra.missing``) the ``openai`` package is not installed.
    """

    provider = "openai"

    def __init__(self, config: LLMProviderConfig) -> None:
        if importlib.util.find_spec("openai") is None:
            raise MissingExtraError("openai", feature="the OpenAI-compatible transport", module="openai")
        self.config = config
        self.retry_policy = LLMRetryPolicy(max_attempts=config.max_retries + 1, total_timeout=None)
        self.supports_stream = bool(config.extra.get("supports_stream", True))
        self._debug = bool(config.extra.get("llm_debug", False))
        # Typed Any: the code serves openai 1.x and 3.x, whose type stubs differ.
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._openai: Any = None
        self._response_cls: Any = None
        self._options: dict[str, Any] = {}
        self._name_maps = ToolNameMapCache()
        self._endpoint = Endpoint(
            provider="openai", label="openai-compatible endpoint", base_url=config.base_url,
            timeout_s=config.timeout_s,
            error_detail=lambda body: body.get("message") if isinstance(body, dict) else None)
        self.response_format_mode = _RESPONSE_FORMAT_MODES[0]
        """How a json_schema ``response_format`` is sent to this endpoint (see ``_post_adapted``)."""
        self._lean: LeanHTTPClient | None = None
        self._lean_headers: dict[str, str] = {}
        self._dumps: Callable[[Any], bytes] | None = None
        self._fragments: FragmentEncoder | None = None

    # -- the SDK client -------------------------------------------------------------
    async def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Connection pools are bound to the event loop that opened them.
            openai = self._openai = _import_openai()
            # When the lean exchange will carry the requests, the SDK client's own HTTP
            # transport (and the SSL context it loads, ~25 ms) is built only if ever used.
            lean = self.config.extra.get("http_engine", "auto") != "sdk" and not proxy_configured(
                self.config.base_url or "https://api.openai.com/v1")
            self._client = openai.AsyncOpenAI(
                base_url=self.config.base_url or None, api_key=self.config.api_key, max_retries=0,
                timeout=self.config.timeout_s, default_headers=self.config.extra.get("default_headers"),
                http_client=lazy_http_client(openai) if lean else None,
            )
            self._client_loop = loop
            self._response_cls = response_class(openai, extra="openai", feature="the OpenAI-compatible transport")
            request_options = getattr(openai, "RequestOptions", None)
            if "security" in getattr(request_options, "__annotations__", {}):
                self._options = {"security": {"bearer_auth": True}}  # as create() sends it
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
        learnt = learn_wire_format(client, self._openai, "/chat/completions", self._options)
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

    def build_body(self, request: LLMRequest, *, stream: bool) -> JSONObject:
        """The JSON body for ``request``, keys in the SDK's ``create()`` order.

        The order is learnt when the first call opens the client; before that the
        openai 3.x order is used.
        """
        cfg = self.config
        name_map = self._name_map(request.tools)
        values: JSONObject = {
            "model": request.model or cfg.model,
            "messages": _wire_messages(request, name_map),
            "max_tokens": request.max_tokens or cfg.max_tokens,
        }
        temperature = request.temperature if request.temperature is not None else cfg.temperature
        if temperature is not None:
            values["temperature"] = temperature
        if request.tools:
            values["tools"] = _wire_tools(request.tools, name_map)
            if request.tool_choice is not None:
                values["tool_choice"] = _wire_tool_choice(request.tool_choice, name_map)
        if request.response_format is not None:
            values["response_format"] = request.response_format
        if stream:
            values["stream"] = True
            values["stream_options"] = {"include_usage": True}
        order = _key_order or _FALLBACK_KEY_ORDER
        body = {key: values[key] for key in order if key in values}
        if request.extra:
            body.update(request.extra)
        return body

    async def _post(self, request: LLMRequest, *, stream: bool) -> Any:
        client = await self._get_client()  # first: it learns the key order build_body uses
        body = self.build_body(request, stream=stream)
        if self._debug:
            logger.debug("openai request: model=%s messages=%d tools=%d stream=%s", body.get("model"),
                         len(body.get("messages") or ()), len(body.get("tools") or ()), stream)
        if self._lean is not None and self._dumps is not None:
            return await self._post_lean(client, self._encode(request, body), stream=stream)
        try:
            return await client.post("/chat/completions", body=body, cast_to=self._response_cls,
                                     options=self._options, stream=stream)
        except self._openai.OpenAIError as exc:
            raise self._translate(exc) from exc

    def _encode(self, request: LLMRequest, body: JSONObject) -> bytes:
        """The body's bytes; a long append-only history is encoded once per message, not per call."""
        assert self._dumps is not None
        messages = body.get("messages")
        if (self._fragments is not None and request.history_wire_safe and not request.extra
                and isinstance(messages, list) and len(messages) >= len(request.messages) > 8
                and messages[-1] is request.messages[-1]):
            split = len(messages) - len(request.messages)
            return self._fragments.encode(body, messages[:split], request.messages, request.history_encoded)
        return self._dumps(body)

    async def _post_lean(self, client: Any, body: bytes, *, stream: bool) -> Any:
        assert self._lean is not None
        return await post_lean(self._lean, client, self._response_cls, "/chat/completions", body, self._lean_headers,
                               stream=stream, endpoint=self._endpoint, translate=self._translate)

    async def _post_adapted(self, request: LLMRequest, *, stream: bool) -> Any:
        """``_post`` with a json_schema ``response_format`` this endpoint accepts.

        A server that refuses json_schema with a 400/422 naming ``response_format`` gets
        ``json_object`` plus the schema in the system prompt; refusing that too, the
        prompt instruction alone. The step down is remembered for this service instance.
        """
        while True:
            adapted = self._adapt_response_format(request)
            try:
                return await self._post(adapted, stream=stream)
            except LLMProviderError as exc:
                if not self._refuses_response_format(exc, adapted):
                    raise
                mode = _RESPONSE_FORMAT_MODES[_RESPONSE_FORMAT_MODES.index(self.response_format_mode) + 1]
                refused = (adapted.response_format or {}).get("type")
                logger.info("%s refused response_format %s (%s); sending %s from now on",
                            self.config.base_url, refused, exc, mode)
                self.response_format_mode = mode

    def _adapt_response_format(self, request: LLMRequest) -> LLMRequest:
        response_format = request.response_format
        if self.response_format_mode == "json_schema" or not response_format \
                or response_format.get("type") != "json_schema":
            return request
        from power_loop.llm.structured import StructuredOutputSpec  # lazy: rare path

        spec = StructuredOutputSpec.from_response_format(response_format)
        instruction = spec.prompt_instruction() if spec is not None else "Reply with a single JSON object."
        system = f"{request.system_prompt}\n\n{instruction}" if request.system_prompt else instruction
        fallback = {"type": "json_object"} if self.response_format_mode == "json_object" else None
        return dataclasses.replace(request, system_prompt=system, response_format=fallback)

    def _refuses_response_format(self, exc: LLMProviderError, request: LLMRequest) -> bool:
        if exc.status_code not in (400, 422) or not request.response_format:
            return False
        if self.response_format_mode == _RESPONSE_FORMAT_MODES[-1]:
            return False
        text = str(exc).lower()
        if "invalid schema" in text:  # the feature works; this schema is wrong (e.g. for strict mode)
            return False
        return "response_format" in text or "json_schema" in text or "json_object" in text

    def _translate(self, exc: BaseException) -> LLMProviderError:
        return translate_sdk_error(exc, self._openai, self._endpoint)

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
            assembler = self._assembler(request, keep_raw=False)
            response = await consume_stream(self._stream_lines(request), assembler, _event, callbacks)
        else:
            response = await self._complete_once(request)
            if callbacks.streaming:
                await callbacks.replay(response)
        await notify(on_stream_end, response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """Yield the increments of one streamed call, then a final chunk with tool calls and usage."""
        assembler = self._assembler(request, keep_raw=True)
        try:
            async with self._stream_lines(request) as lines:
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

    def _assembler(self, request: LLMRequest, *, keep_raw: bool = True) -> StreamAssembler:
        name_map = self._name_map(request.tools)
        return StreamAssembler(request=request, from_wire=name_map.from_wire if name_map else None,
                               default_model=request.model or self.config.model, keep_raw=keep_raw)

    async def _complete_once(self, request: LLMRequest) -> LLMResponse:
        response = await self._post_adapted(request, stream=False)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise LLMProviderError(
                f"openai-compatible endpoint sent invalid JSON (HTTP {response.status_code}): {exc}",
                provider="openai", status_code=response.status_code, retryable=True,
            ) from exc
        if not isinstance(data, dict):
            raise LLMProviderError("openai-compatible endpoint sent a non-object JSON body",
                                   provider="openai", status_code=response.status_code, retryable=True)
        choices = data.get("choices")
        if not choices:
            raise LLMProviderError(
                "openai-compatible endpoint answered without choices (content filter or overload)",
                provider="openai", status_code=response.status_code, retryable=True,
            )
        name_map = self._name_map(request.tools)
        message = choices[0].get("message") or {}
        text, think, raw_text, tool_calls = parse_message(message, name_map.from_wire if name_map else None)
        usage = data.get("usage")
        token_usage = (usage_from(usage) if isinstance(usage, dict)
                       else estimated_usage(request, text=raw_text, tool_calls=tool_calls))
        return build_response(request, text=text, think=think, raw_text=raw_text, tool_calls=tool_calls,
                         usage=token_usage, finish_reason=choices[0].get("finish_reason"),
                         model=data.get("model"), raw_message=message, raw_completion=data)

    @contextlib.asynccontextmanager
    async def _stream_lines(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        """The SSE lines of one streamed call, read to the end (past ``[DONE]``, so the
        connection is reused); read errors become retryable ``LLMProviderError``s."""
        response = await self._post_adapted(request, stream=True)
        try:
            yield response.aiter_lines()
        except (LLMProviderError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # the HTTP library's read errors: a cut or timed-out stream
            raise LLMProviderError(f"openai-compatible stream broke off: {type(exc).__name__}: {exc}",
                                   provider="openai", retryable=True) from exc
        finally:
            await response.aclose()

    def __repr__(self) -> str:
        return f"OpenAICompatLLMService(base_url={self.config.base_url!r}, model={self.config.model!r})"


def _event(line: str) -> JSONObject:
    """The object of an SSE ``data:`` line; ``{"[DONE]": True}`` for the end marker.

    Raises:
        LLMProviderError: (retryable) invalid JSON, or an ``error`` object in the stream.
    """
    payload = line[5:].strip()
    if payload == "[DONE]":
        return {"[DONE]": True}
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise LLMProviderError(f"openai-compatible stream sent invalid JSON: {payload[:200]!r}",
                               provider="openai", retryable=True) from exc
    if not isinstance(data, dict):
        return {}
    if data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise LLMProviderError(f"openai-compatible stream reported an error: {message}",
                               provider="openai", retryable=True)
    return data


def _wire_messages(request: LLMRequest, name_map: ToolNameMap | None) -> list[Message]:
    messages: list[Message] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    if name_map is None or (name_map.is_identity and request.history_wire_safe):
        messages.extend(request.messages)  # O(1) per message in C: no per-message walk
        return messages
    to_wire, unchanged, append = name_map.to_wire, name_map.unchanged, messages.append
    for message in request.messages:
        calls = message.get("tool_calls")
        if calls:
            # Fast path (long histories): every name is known to be its own wire name.
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or function.get("name") not in unchanged:
                    break
            else:
                append(message)
                continue
            mapped = [_renamed_call(call, to_wire) for call in calls]
            if any(new is not old for new, old in zip(mapped, calls, strict=True)):
                message = {**message, "tool_calls": mapped}
        elif "name" in message and message.get("role") == "tool" and isinstance(message["name"], str):
            wire = to_wire(message["name"])
            if wire != message["name"]:
                message = {**message, "name": wire}
        append(message)
    return messages


def _renamed_call(call: JSONObject, to_wire: Callable[[str], str]) -> JSONObject:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return call
    wire = to_wire(function["name"])
    if wire == function["name"]:
        return call
    return {**call, "function": {**function, "name": wire}}


def _wire_tools(tools: list[JSONObject], name_map: ToolNameMap | None) -> list[JSONObject]:
    if name_map is None or name_map.is_identity:
        return tools
    return [_renamed_call(tool, name_map.to_wire) for tool in tools]


def _wire_tool_choice(choice: str | JSONObject, name_map: ToolNameMap | None) -> str | JSONObject:
    if isinstance(choice, str):
        if choice in _TOOL_CHOICE_KEYWORDS:
            return choice
        # A bare tool name forces that tool.
        return {"type": "function", "function": {"name": name_map.to_wire(choice) if name_map else choice}}
    if isinstance(choice, dict) and name_map is not None and not name_map.is_identity:
        return _renamed_call(choice, name_map.to_wire)
    return choice

