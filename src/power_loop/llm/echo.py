"""The offline echo provider: an ``LLMService`` that needs no network and no key.

It answers ``Echo: <last user text>``, or a fixed reply, optionally after a delay; it
never calls tools. Usage is estimated at four characters per token. Selected with
``POWER_LOOP_PROVIDER=echo`` (alias ``stub``); ``ECHO_REPLY`` and ``ECHO_SLEEP`` set the
reply and the delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from power_loop.llm._streaming import content_text, estimated_usage, notify, split_deltas
from power_loop.llm.config import LLMProviderConfig
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMStreamChunk
from power_loop.llm.retry import LLMRetryPolicy

__all__ = ["EchoLLMService"]


class EchoLLMService:
    """Answers ``Echo: <last user text>`` (or ``reply``) after ``sleep_s`` seconds.

    Example:
        >>> import asyncio
        >>> llm = EchoLLMService()
        >>> asyncio.run(llm.complete(LLMRequest.from_prompt(prompt="hi"))).content_text
        'Echo: hi'
    """

    provider = "echo"

    def __init__(
        self, *, reply: str | None = None, sleep_s: float = 0.0, model: str = "echo", max_retries: int = 3
    ) -> None:
        self.reply = reply
        self.sleep_s = sleep_s
        self.model = model
        self.retry_policy = LLMRetryPolicy(max_attempts=max_retries + 1, total_timeout=None)

    @classmethod
    def from_config(cls, cfg: LLMProviderConfig) -> EchoLLMService:
        """The service for ``cfg`` (``extra["echo_reply"]``, ``extra["echo_sleep_s"]``)."""
        reply = cfg.extra.get("echo_reply")
        return cls(
            reply=None if reply is None else str(reply),
            sleep_s=float(cfg.extra.get("echo_sleep_s") or 0.0),
            model=cfg.model or "echo",
            max_retries=cfg.max_retries,
        )

    def _answer(self, request: LLMRequest) -> str:
        if self.reply is not None:
            return self.reply
        for message in reversed(request.messages):
            if message.get("role") == "user":
                return f"Echo: {content_text(message.get('content'))}"
        return "Echo: "

    async def complete(
        self,
        request: LLMRequest,
        *,
        on_chunk_delta_text: Callable[[str], Any] | None = None,
        on_chunk_think: Callable[[str], Any] | None = None,
        on_stream_end: Callable[[LLMResponse], Any] | None = None,
    ) -> LLMResponse:
        """Answer after ``sleep_s``; with callbacks the answer arrives in a few deltas."""
        if self.sleep_s > 0:
            await asyncio.sleep(self.sleep_s)
        text = self._answer(request)
        for delta in split_deltas(text) if on_chunk_delta_text is not None else ():
            await notify(on_chunk_delta_text, delta)
        response = LLMResponse(
            raw_text=text, content_text=text, finish_reason="stop", model=request.model or self.model,
            token_usage=estimated_usage(request, text=text, is_estimated=False),
        )
        await notify(on_stream_end, response)
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """Yield the answer in a few deltas, then the final chunk with usage."""
        response = await self.complete(request)
        for delta in split_deltas(response.content_text):
            yield LLMStreamChunk(delta_text=delta)
        yield LLMStreamChunk(is_final=True, token_usage=response.token_usage)

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"EchoLLMService(model={self.model!r}, reply={self.reply!r}, sleep_s={self.sleep_s!r})"
