"""``ScriptedLLM``: an ``LLMService`` that plays queued replies, for unit tests.

Each ``complete`` (or ``stream``) call records its ``LLMRequest`` in ``.requests`` and
consumes the next scripted item: text, an ``LLMResponse``, tool calls
(``ScriptedLLM.tool_calls``), an exception to raise, or a callable ``(request) ->
LLMResponse | str | ScriptedToolCalls`` (sync or async). ``ScriptedLLM.delayed(item,
delay_s)`` waits before answering, for cancellation tests.

Invariants: replies are deterministic (tool-call ids ``call_1``, ``call_2``, … per
instance); every response carries usage estimated at four characters per token unless
the scripted ``LLMResponse`` has its own; an exhausted script raises
``ScriptExhaustedError`` naming the request, never a bare ``IndexError``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Union

from power_loop.contracts.errors import PowerLoopError
from power_loop.contracts.json import JSONObject
from power_loop.llm._streaming import content_text, estimated_usage, notify, split_deltas
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk, LLMTokenUsage, tool_call

__all__ = ["ScriptExhaustedError", "ScriptItem", "ScriptedLLM", "ScriptedReply", "ScriptedToolCalls"]


class ScriptExhaustedError(PowerLoopError, AssertionError):
    """``ScriptedLLM`` was called more often than replies were scripted."""

    code: ClassVar[str] = "testing.script_exhausted"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedToolCalls:
    """A reply that calls tools (with optional text beside them)."""

    calls: Sequence[tuple[str, JSONObject | str]]
    """``(tool name, arguments)``; a ``str`` is sent verbatim (it may be invalid JSON)."""
    text: str = ""
    ids: Sequence[str] | None = None
    """Explicit call ids; default ``call_<n>`` numbered per ``ScriptedLLM``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedReply:
    """A scripted item answered after ``delay_s`` seconds."""

    item: ScriptItem
    delay_s: float = 0.0


ScriptItem = Union[  # noqa: UP007 (a runtime alias on Python 3.10)
    str, LLMResponse, ScriptedToolCalls, ScriptedReply, BaseException, type[BaseException],
    Callable[[LLMRequest], Any],
]
"""What a script may hold (see the module docstring)."""


class ScriptedLLM:
    """Plays ``replies`` in order, recording every request.

    Args:
        replies: the script.
        model: reported as ``LLMResponse.model`` (unless the request names one).
        delay_s: default wait before every reply.

    Example:
        >>> import asyncio
        >>> llm = ScriptedLLM(["hello", ScriptedLLM.tool_calls([("add", {"a": 1})])])
        >>> asyncio.run(llm.complete(LLMRequest.from_prompt(prompt="hi"))).content_text
        'hello'
        >>> asyncio.run(llm.complete(LLMRequest.from_prompt(prompt="hi"))).tool_calls[0]["function"]["name"]
        'add'
    """

    provider = "scripted"

    def __init__(
        self, replies: Iterable[ScriptItem] = (), *, model: str = "scripted", delay_s: float = 0.0
    ) -> None:
        self._script: deque[ScriptItem] = deque(replies)
        self.model = model
        self.delay_s = delay_s
        self.requests: list[LLMRequest] = []
        """Every request received, in order."""
        self.closed = False
        self._last_id = 0

    # -- building scripts ---------------------------------------------------------------
    @staticmethod
    def tool_calls(
        calls: Sequence[tuple[str, JSONObject | str]], *, text: str = "", ids: Sequence[str] | None = None
    ) -> ScriptedToolCalls:
        """A reply calling ``calls`` = ``[(name, arguments), ...]``."""
        return ScriptedToolCalls(calls=list(calls), text=text, ids=ids)

    @staticmethod
    def delayed(item: ScriptItem, delay_s: float) -> ScriptedReply:
        """``item``, answered after ``delay_s`` seconds."""
        return ScriptedReply(item=item, delay_s=delay_s)

    def add(self, *replies: ScriptItem) -> ScriptedLLM:
        """Append replies to the script; returns ``self``."""
        self._script.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        """Replies not yet played."""
        return len(self._script)

    @property
    def last_request(self) -> LLMRequest:
        """The most recent request (raises ``IndexError`` before the first)."""
        return self.requests[-1]

    # -- LLMService -----------------------------------------------------------------------
    async def complete(
        self,
        request: LLMRequest,
        *,
        on_chunk_delta_text: Callable[[str], Any] | None = None,
        on_chunk_think: Callable[[str], Any] | None = None,
        on_stream_end: Callable[[LLMResponse], Any] | None = None,
    ) -> LLMResponse:
        """Play the next reply; with callbacks, its text arrives in a few deltas.

        Raises:
            ScriptExhaustedError: (``testing.script_exhausted``) no reply is left.
            BaseException: a scripted exception.
        """
        response = await self._next(request)
        if response.think:
            await notify(on_chunk_think, response.think)
        for delta in split_deltas(response.content_text) if on_chunk_delta_text is not None else ():
            await notify(on_chunk_delta_text, delta)
        await notify(on_stream_end, response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """Play the next reply as deltas, then a final chunk with tool calls and usage."""
        response = await self._next(request)
        if response.think:
            yield LLMStreamChunk(think=response.think)
        for delta in split_deltas(response.content_text):
            yield LLMStreamChunk(delta_text=delta)
        yield LLMStreamChunk(is_final=True, tool_calls=list(response.tool_calls),
                             token_usage=response.token_usage)

    async def close(self) -> None:
        """Mark the service closed (``.closed``); it keeps working."""
        self.closed = True

    # -- playing ----------------------------------------------------------------------------
    async def _next(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        if not self._script:
            last_user = next((content_text(m.get("content")) for m in reversed(request.messages)
                              if m.get("role") == "user"), "")
            raise ScriptExhaustedError(
                f"ScriptedLLM has no reply left for request #{len(self.requests)}"
                f" (last user message: {last_user[:80]!r}): script more replies with ScriptedLLM.add(...)"
            )
        item = self._script.popleft()
        delay_s = self.delay_s
        if isinstance(item, ScriptedReply):
            delay_s = item.delay_s
            item = item.item
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return await self._materialise(item, request)

    async def _materialise(self, item: Any, request: LLMRequest) -> LLMResponse:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item()
        if callable(item) and not isinstance(item, (str, LLMResponse, ScriptedToolCalls)):
            produced = item(request)
            if inspect.isawaitable(produced):
                produced = await produced
            return await self._materialise(produced, request)
        if isinstance(item, LLMResponse):
            if item.token_usage == LLMTokenUsage():
                usage = estimated_usage(request, text=item.content_text, tool_calls=item.tool_calls,
                                        is_estimated=False)
                return replace(item, token_usage=usage)
            return item
        if isinstance(item, str):
            return self._response(request, text=item, calls=[])
        if isinstance(item, ScriptedToolCalls):
            calls = []
            for i, (name, arguments) in enumerate(item.calls):
                if item.ids is not None and i < len(item.ids):
                    call_id = item.ids[i]
                else:
                    self._last_id += 1
                    call_id = f"call_{self._last_id}"
                calls.append(tool_call(call_id, name, arguments))
            return self._response(request, text=item.text, calls=calls)
        raise TypeError(f"ScriptedLLM cannot play a {type(item).__name__}: script text, an LLMResponse,"
                        " ScriptedLLM.tool_calls(...), an exception or a callable")

    def _response(self, request: LLMRequest, *, text: str, calls: list[JSONObject]) -> LLMResponse:
        return LLMResponse(
            raw_text=text, content_text=text, tool_calls=calls,
            token_usage=estimated_usage(request, text=text, tool_calls=calls, is_estimated=False),
            finish_reason="tool_calls" if calls else "stop", model=request.model or self.model,
        )

    def __repr__(self) -> str:
        return f"ScriptedLLM(remaining={self.remaining}, requests={len(self.requests)})"
