"""One LLM call of a round: retry policy, per-attempt events, streaming, cancellation.

Failures never raise out of here: they come back as an ``LLMCallOutcome`` with a
degraded reason (``retry_exhausted`` | ``timeout`` | ``provider_error``) or
``cancelled=True``; the round decides what to persist. ``asyncio.CancelledError`` from
the caller's task is never swallowed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from power_loop.contracts.errors import CancellationRequested, LLMProviderError, LLMRetryExhausted, LLMTimeout
from power_loop.contracts.events import (
    AgentEvent,
    AgentEventType,
    LLMCallCompletedPayload,
    LLMCallStartedPayload,
    LLMRetryAttemptedPayload,
    StreamCompletedPayload,
    StreamStartedPayload,
    StreamThinkDeltaPayload,
    StreamToolCallDeltaPayload,
    UsageUpdatedPayload,
)
from power_loop.contracts.json import JSONObject
from power_loop.engine.context import RunContext
from power_loop.llm.contract import LLMRequest, LLMResponse
from power_loop.llm.retry import with_retry


@dataclass(frozen=True, slots=True)
class LLMCallOutcome:
    """How one LLM call of a round ended: a response, or why there is none."""

    response: LLMResponse | None
    attempts: int
    cancelled: bool = False
    degraded_reason: str | None = None
    error: BaseException | None = None


_STREAM_DELTA = AgentEventType.STREAM_DELTA
_ACCEPTS_TOOL_DELTAS: dict[type, bool] = {}


def accepts_tool_deltas(llm: object) -> bool:
    """Whether ``llm.complete`` takes ``on_chunk_tool_call`` (an extension of the LLMService
    protocol: services written to the protocol alone never receive it)."""
    kind = type(llm)
    known = _ACCEPTS_TOOL_DELTAS.get(kind)
    if known is None:
        try:
            params = inspect.signature(llm.complete).parameters  # type: ignore[attr-defined]
        except (TypeError, ValueError, AttributeError):
            params = {}  # type: ignore[assignment]
        known = _ACCEPTS_TOOL_DELTAS[kind] = "on_chunk_tool_call" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return known


class _StreamRelay:
    """Turns transport callbacks into stream events for one call.

    ``on_text`` runs once per streamed token: it builds the delta event only when the
    bus has a subscriber for it (checked once per call). ``stream_completed`` carries the
    text of the last attempt only (``reset`` runs before each attempt).
    """

    __slots__ = ("ctx", "publish_deltas", "round_index", "started", "stream_id", "texts")

    def __init__(self, ctx: RunContext, round_index: int) -> None:
        self.ctx = ctx
        self.round_index = round_index
        self.stream_id = f"{ctx.session_id}:{ctx.send_index or 0}:{round_index}"
        self.started = False
        self.texts: list[str] = []
        self.publish_deltas = ctx.bus.wants(AgentEventType.STREAM_DELTA)

    def reset(self) -> None:
        self.texts = []

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self.ctx.emit(AgentEventType.STREAM_STARTED, StreamStartedPayload(stream_id=self.stream_id),
                          round_index=self.round_index, stream_id=self.stream_id)

    def on_text(self, text: str) -> None:
        if not self.started:
            self._start()
        self.texts.append(text)
        if self.publish_deltas:
            stream_id = self.stream_id
            # a payload dict (every StreamDeltaPayload field): the typed data is built lazily
            self.ctx.bus.publish(AgentEvent(
                _STREAM_DELTA, {"stream_id": stream_id, "text": text, "is_think": False},
                session_id=self.ctx.session_id, round_index=self.round_index, stream_id=stream_id))

    def on_tool_call(self, delta: JSONObject) -> None:
        """A streamed piece of a tool call (OpenAI-shaped delta, registry name)."""
        self._start()
        fn = delta.get("function") or {}
        self.ctx.emit(AgentEventType.STREAM_TOOL_CALL_DELTA, StreamToolCallDeltaPayload(
            stream_id=self.stream_id, index=int(delta.get("index") or 0), tool_call_id=delta.get("id"),
            name=fn.get("name") or None, arguments_delta=str(fn.get("arguments") or "")),
            round_index=self.round_index, stream_id=self.stream_id)

    def on_think(self, text: str) -> None:
        self._start()
        self.ctx.emit(AgentEventType.STREAM_THINK_DELTA,
                      StreamThinkDeltaPayload(stream_id=self.stream_id, text=text),
                      round_index=self.round_index, stream_id=self.stream_id)

    def finish(self) -> None:
        if self.started:
            self.ctx.emit(AgentEventType.STREAM_COMPLETED,
                          StreamCompletedPayload(stream_id=self.stream_id, text="".join(self.texts)),
                          round_index=self.round_index, stream_id=self.stream_id)


async def call_llm(ctx: RunContext, request: LLMRequest, *, round_index: int) -> LLMCallOutcome:
    """Call the LLM under the run's retry policy; never raises for provider failures."""
    attempts = 0
    model = request.model
    relay = _StreamRelay(ctx, round_index) if ctx.stream else None
    on_text: Callable[[str], Any] | None = relay.on_text if relay is not None else None
    on_think: Callable[[str], Any] | None = relay.on_think if relay is not None else None
    extra: dict[str, Any] = {}
    if relay is not None and ctx.bus.wants(AgentEventType.STREAM_TOOL_CALL_DELTA) and accepts_tool_deltas(ctx.llm):
        extra["on_chunk_tool_call"] = relay.on_tool_call
    wants_calls = ctx.bus.wants(AgentEventType.LLM_CALL_STARTED) or ctx.bus.wants(
        AgentEventType.LLM_CALL_COMPLETED)

    async def attempt() -> LLMResponse:
        nonlocal attempts
        attempts += 1
        if relay is not None:
            relay.reset()
        call_id = f"r{round_index}.a{attempts}"
        if wants_calls:
            ctx.emit(AgentEventType.LLM_CALL_STARTED,
                     LLMCallStartedPayload(call_id=call_id, attempt=attempts, model=model),
                     round_index=round_index)
        started = time.perf_counter()
        try:
            response = await ctx.llm.complete(request, on_chunk_delta_text=on_text, on_chunk_think=on_think,
                                              **extra)
        except Exception as exc:
            if wants_calls:
                ctx.emit(AgentEventType.LLM_CALL_COMPLETED, LLMCallCompletedPayload(
                    call_id=call_id, attempt=attempts, model=model,
                    duration_ms=(time.perf_counter() - started) * 1000, success=False,
                    error_type=type(exc).__name__), round_index=round_index)
            raise
        usage = response.token_usage
        if wants_calls:
            ctx.emit(AgentEventType.LLM_CALL_COMPLETED, LLMCallCompletedPayload(
                call_id=call_id, attempt=attempts, model=response.model or model,
                duration_ms=(time.perf_counter() - started) * 1000, success=True,
                prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0,
                total_tokens=usage.total), round_index=round_index)
        return response

    def on_retry(attempt_no: int, exc: BaseException, sleep_s: float) -> None:
        ctx.emit(AgentEventType.LLM_RETRY_ATTEMPTED, LLMRetryAttemptedPayload(
            attempt=attempt_no, max_attempts=ctx.retry_policy.max_attempts, error_type=type(exc).__name__,
            error_message=str(exc)[:500], next_sleep_seconds=sleep_s), round_index=round_index)

    # with a stop_event, with_retry races each attempt and each backoff wait against it
    token = ctx.token if ctx.has_stop_event else None
    try:
        response = await with_retry(attempt, policy=ctx.retry_policy, token=token, on_retry=on_retry)
    except CancellationRequested:
        return LLMCallOutcome(None, attempts, cancelled=True)
    except LLMRetryExhausted as exc:
        return LLMCallOutcome(None, exc.attempts, degraded_reason="retry_exhausted", error=exc.last_error)
    except LLMTimeout as exc:
        return LLMCallOutcome(None, max(exc.attempts, attempts), degraded_reason="timeout", error=exc)
    except LLMProviderError as exc:
        return LLMCallOutcome(None, attempts, degraded_reason="provider_error", error=exc)
    except Exception as exc:  # a custom LLMService raising outside retry_on: still not a crash
        return LLMCallOutcome(None, attempts, degraded_reason="provider_error", error=exc)
    finally:
        if relay is not None:
            relay.finish()
    call_usage = ctx.add_usage(response.token_usage)
    if ctx.bus.wants(AgentEventType.USAGE_UPDATED):
        cumulative = {f"cumulative_{k}": v for k, v in ctx.usage.items()}
        ctx.emit(AgentEventType.USAGE_UPDATED,
                 UsageUpdatedPayload(usage={**call_usage, **cumulative}, call_id=f"r{round_index}.a{attempts}"),
                 round_index=round_index)
    return LLMCallOutcome(response, attempts)
