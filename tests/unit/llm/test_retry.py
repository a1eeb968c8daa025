"""with_retry and LLMRetryPolicy: delays, Retry-After, deadlines, cancellation, exhaustion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from power_loop.contracts.cancellation import CancellationToken
from power_loop.contracts.errors import (
    CancellationRequested,
    InvalidArgumentError,
    LLMProviderError,
    LLMRetryExhausted,
    LLMTimeout,
)
from power_loop.llm.contract import LLMRequest, LLMService
from power_loop.llm.retry import LLMRetryPolicy, RetryingLLMService, with_retry
from power_loop.testing import ScriptedLLM


def failing(
    errors: list[BaseException], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call raising ``errors`` in turn, then returning ``result``; also its call log."""
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return call, calls


def retryable(**kwargs: float) -> LLMProviderError:
    return LLMProviderError("overloaded", provider="openai", status_code=503, retryable=True, **kwargs)


def test_policy_defaults_and_validation() -> None:
    policy = LLMRetryPolicy()
    assert (
        policy.max_attempts,
        policy.backoff_initial,
        policy.backoff_max,
        policy.total_timeout,
        policy.retry_on,
    ) == (3, 0.5, 8.0, 60.0, (Exception,))
    assert [policy.backoff_s(k) for k in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    with pytest.raises(InvalidArgumentError) as info:
        LLMRetryPolicy(max_attempts=0, backoff_max=-1, total_timeout=0, retry_on=(int,))  # type: ignore[arg-type]
    assert all(s in str(info.value) for s in ("max_attempts", "backoff_max", "total_timeout", "retry_on"))


async def test_delays_double_up_to_the_cap() -> None:
    call, calls = failing([retryable(), retryable(), retryable()])
    sleeps: list[tuple[int, float]] = []
    policy = LLMRetryPolicy(max_attempts=4, backoff_initial=0.001, backoff_max=0.003)
    result = await with_retry(call, policy=policy, on_retry=lambda k, exc, s: sleeps.append((k, s)))
    assert result == "ok" and len(calls) == 4
    assert sleeps == [(1, 0.001), (2, 0.002), (3, 0.003)]


async def test_retry_after_is_honoured_and_capped() -> None:
    call, _ = failing([retryable(retry_after_s=0.002), retryable(retry_after_s=60.0)])
    sleeps: list[float] = []
    policy = LLMRetryPolicy(max_attempts=3, backoff_initial=0.5, backoff_max=0.004)
    await with_retry(call, policy=policy, on_retry=lambda k, exc, s: sleeps.append(s))
    assert sleeps == [0.002, 0.004]


async def test_non_retryable_errors_are_raised_unchanged() -> None:
    error = LLMProviderError("bad request", provider="openai", status_code=400, retryable=False)
    call, calls = failing([error])
    with pytest.raises(LLMProviderError) as info:
        await with_retry(call, policy=LLMRetryPolicy(backoff_initial=0))
    assert info.value is error and len(calls) == 1


async def test_only_retry_on_types_are_retried() -> None:
    call, calls = failing([KeyError("k")])
    with pytest.raises(KeyError):
        await with_retry(call, policy=LLMRetryPolicy(backoff_initial=0, retry_on=(ValueError,)))
    assert len(calls) == 1
    call, calls = failing([ValueError("v")])
    assert await with_retry(call, policy=LLMRetryPolicy(backoff_initial=0, retry_on=(ValueError,))) == "ok"


async def test_cancelled_error_and_cancellation_are_never_retried() -> None:
    for error in (asyncio.CancelledError(), CancellationRequested("stop")):
        call, calls = failing([error])
        with pytest.raises(type(error)):
            await with_retry(call, policy=LLMRetryPolicy(backoff_initial=0, retry_on=(BaseException,)))
        assert len(calls) == 1


async def test_exhausted_attempts_chain_the_last_error() -> None:
    errors: list[BaseException] = [retryable(), RuntimeError("last")]
    call, calls = failing(errors)
    with pytest.raises(LLMRetryExhausted) as info:
        await with_retry(call, policy=LLMRetryPolicy(max_attempts=2, backoff_initial=0))
    assert info.value.attempts == 2 and len(calls) == 2
    assert info.value.last_error is errors[1] and info.value.__cause__ is errors[1]
    assert info.value.code == "llm.retry_exhausted"


async def test_total_timeout_bounds_the_in_flight_call() -> None:
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(LLMTimeout) as info:
        await with_retry(hangs, policy=LLMRetryPolicy(total_timeout=0.05))
    assert started.is_set()
    assert info.value.attempts == 1 and info.value.total_timeout == 0.05
    assert 0.04 <= info.value.elapsed < 1.0


async def test_total_timeout_stops_before_a_wait_past_the_deadline() -> None:
    error = retryable()
    call, calls = failing([error, error])
    begun = time.monotonic()
    with pytest.raises(LLMTimeout) as info:
        await with_retry(
            call, policy=LLMRetryPolicy(backoff_initial=30.0, backoff_max=30.0, total_timeout=1.0)
        )
    assert time.monotonic() - begun < 0.5
    assert len(calls) == 1 and info.value.__cause__ is error


async def test_cancellation_during_backoff_is_prompt() -> None:
    token = CancellationToken()
    call, calls = failing([retryable(), retryable()])
    begun = time.monotonic()
    with pytest.raises(CancellationRequested, match="user stop"):
        await with_retry(
            call,
            policy=LLMRetryPolicy(backoff_initial=30.0, backoff_max=30.0, total_timeout=None),
            token=token,
            on_retry=lambda k, exc, s: token.cancel("user stop"),
        )
    assert time.monotonic() - begun < 0.5 and len(calls) == 1


async def test_cancellation_stops_the_in_flight_call() -> None:
    token = CancellationToken()
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.ensure_future(with_retry(hangs, policy=LLMRetryPolicy(total_timeout=None), token=token))
    await started.wait()
    token.cancel("shutdown")
    with pytest.raises(CancellationRequested):
        await task


async def test_already_cancelled_token_makes_no_call() -> None:
    token = CancellationToken()
    token.cancel()
    call, calls = failing([])
    with pytest.raises(CancellationRequested):
        await with_retry(call, policy=LLMRetryPolicy(), token=token)
    assert calls == []


async def test_service_form_retries_complete() -> None:
    inner = ScriptedLLM([retryable(), "recovered"])
    service = with_retry(inner, policy=LLMRetryPolicy(backoff_initial=0))
    assert isinstance(service, RetryingLLMService) and isinstance(service, LLMService)
    assert service.inner is inner and service.retry_policy.backoff_initial == 0
    response = await service.complete(LLMRequest.from_prompt(prompt="hi"))
    assert response.content_text == "recovered" and len(inner.requests) == 2
    await service.close()
    assert inner.closed


def test_callable_form_rejects_non_callables() -> None:
    with pytest.raises(InvalidArgumentError, match="zero-argument async callable"):
        with_retry(42, policy=LLMRetryPolicy())  # type: ignore[call-overload]
