"""The one retry layer: ``LLMRetryPolicy`` applied by ``with_retry``, built on tenacity.

Invariants:
- Before retry k the wait is ``min(backoff_initial * 2**(k-1), backoff_max)``, or the
  provider's ``Retry-After`` (``LLMProviderError.retry_after_s``) capped at
  ``backoff_max``. There is no jitter: the documented delays are exact, so tests and
  operators can reason about them (a rate limiter upstream usually sends Retry-After).
- Only exceptions of ``retry_on`` are retried. Never retried, and raised unchanged: a
  non-retryable ``LLMProviderError``, ``CancellationRequested``, ``LLMTimeout``,
  ``LLMRetryExhausted``, ``asyncio.CancelledError``, ``KeyboardInterrupt``,
  ``SystemExit`` and ``GeneratorExit``.
- ``total_timeout`` bounds attempts and waits together, the in-flight call included:
  when it elapses during a call, or a wait would end past it, ``LLMTimeout`` is raised
  (chained to the last error, if any).
- A cancelled token stops the in-flight call and any wait at once with
  ``CancellationRequested``.
- All attempts failed: ``LLMRetryExhausted(attempts, last_error)`` raised ``from`` the
  last error.

tenacity is imported inside the functions, so ``import power_loop`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from power_loop.contracts.cancellation import CancellationToken
from power_loop.contracts.errors import (
    CancellationRequested,
    InvalidArgumentError,
    LLMProviderError,
    LLMRetryExhausted,
    LLMTimeout,
)
from power_loop.llm.contract import LLMRequest, LLMResponse, LLMService, LLMStreamChunk

T = TypeVar("T")

__all__ = ["LLMRetryPolicy", "RetryingLLMService", "with_retry"]

_NEVER_RETRIED: tuple[type[BaseException], ...] = (
    CancellationRequested, LLMTimeout, LLMRetryExhausted, asyncio.CancelledError,
    KeyboardInterrupt, SystemExit, GeneratorExit,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRetryPolicy:
    """How often and how long to retry a failed LLM call.

    Raises:
        InvalidArgumentError: (``invalid_argument``) a negative or zero bound, or a
            ``retry_on`` entry that is not an exception class; every problem is named.
    """

    max_attempts: int = 3
    """Attempts in all, the first included (1 disables retries)."""
    backoff_initial: float = 0.5
    """Seconds before the first retry; doubled before each later one."""
    backoff_max: float = 8.0
    """Upper bound of any wait, Retry-After included."""
    total_timeout: float | None = 60.0
    """Seconds for all attempts and waits together; ``None`` for no bound."""
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception types that may be retried (subject to the rules of the module)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if self.backoff_initial < 0:
            problems.append(f"backoff_initial must be >= 0, not {self.backoff_initial!r}")
        if self.backoff_max < 0:
            problems.append(f"backoff_max must be >= 0, not {self.backoff_max!r}")
        if self.total_timeout is not None and self.total_timeout <= 0:
            problems.append(f"total_timeout must be > 0 or None, not {self.total_timeout!r}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on
        ):
            problems.append(f"retry_on must be a tuple of exception classes, not {self.retry_on!r}")
        if problems:
            raise InvalidArgumentError("invalid LLMRetryPolicy: " + "; ".join(problems))

    def backoff_s(self, retry: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based) after ``error``."""
        if isinstance(error, LLMProviderError) and error.retry_after_s is not None:
            return max(0.0, min(error.retry_after_s, self.backoff_max))
        return min(self.backoff_initial * 2.0 ** (retry - 1), self.backoff_max)

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried under this policy (attempts left aside)."""
        if isinstance(error, _NEVER_RETRIED):
            return False
        if isinstance(error, LLMProviderError) and not error.retryable:
            return False
        return isinstance(error, self.retry_on)


async def _attempt(
    call: Callable[[], Awaitable[T]], *, token: CancellationToken | None, deadline: float | None,
    on_deadline: Callable[[], BaseException],
) -> T:
    loop = asyncio.get_running_loop()
    if token is not None:
        token.raise_if_cancelled()
    if token is None and deadline is None:
        return await call()
    remaining = None if deadline is None else deadline - loop.time()
    if remaining is not None and remaining <= 0:
        raise on_deadline()
    task: asyncio.Future[T] = asyncio.ensure_future(call())
    watcher = asyncio.ensure_future(token.wait()) if token is not None else None
    waiting: set[asyncio.Future[Any]] = {task} if watcher is None else {task, watcher}
    try:
        done, _ = await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        if watcher is not None and not watcher.done():
            watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    if token is not None and token.is_cancelled():
        raise CancellationRequested(token.reason)
    raise on_deadline()


async def _retry_call(
    call: Callable[[], Awaitable[T]],
    *,
    policy: LLMRetryPolicy,
    token: CancellationToken | None,
    on_retry: Callable[[int, BaseException, float], None] | None,
) -> T:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if policy.total_timeout is None else started + policy.total_timeout
    attempts = 0
    last_error: BaseException | None = None
    def timeout_error(detail: str) -> LLMTimeout:
        elapsed = loop.time() - started
        error = LLMTimeout(
            f"LLM call did not succeed within total_timeout={policy.total_timeout}s"
            f" ({attempts} attempt(s), {elapsed:.2f}s elapsed): {detail}",
            elapsed=elapsed, attempts=attempts, total_timeout=policy.total_timeout,
        )
        error.__cause__ = last_error
        return error

    # Fast path: the first attempt runs without building the tenacity machinery (almost
    # every call succeeds at once). A failure is replayed as tenacity's first attempt, so
    # the policy's semantics are exactly those of the loop below.
    first_error: BaseException | None = None
    attempts = 1
    try:
        return await _attempt(call, token=token, deadline=deadline,
                              on_deadline=lambda: timeout_error("the deadline passed during the call"))
    except (CancellationRequested, LLMTimeout, asyncio.CancelledError):
        raise
    except Exception as exc:
        first_error = exc

    import tenacity  # only after a failure: imports cost nothing on the happy path

    async def one_attempt() -> T:
        nonlocal attempts, first_error
        if first_error is not None:
            error, first_error = first_error, None
            raise error
        attempts += 1
        return await _attempt(
            call, token=token, deadline=deadline,
            on_deadline=lambda: timeout_error("the deadline passed during the call"),
        )

    def wait(state: Any) -> float:
        return policy.backoff_s(state.attempt_number, state.outcome.exception())

    def before_sleep(state: Any) -> None:
        nonlocal last_error
        error: BaseException = state.outcome.exception()
        last_error = error
        sleep_s = float(state.next_action.sleep)
        if deadline is not None and loop.time() + sleep_s >= deadline:
            raise timeout_error(
                f"the next retry (in {sleep_s:.2f}s) would start past it; last error: {error}"
            )
        if on_retry is not None:
            on_retry(state.attempt_number, error, sleep_s)

    async def sleep(seconds: float) -> None:
        if token is None:
            await asyncio.sleep(seconds)
        elif await token.wait(seconds):
            raise CancellationRequested(token.reason)

    def exhausted(state: Any) -> None:
        error: BaseException = state.outcome.exception()
        raise LLMRetryExhausted(
            f"LLM call failed after {attempts} attempt(s) (max_attempts={policy.max_attempts}): {error}",
            attempts=attempts, last_error=error,
        ) from error

    retrying = tenacity.AsyncRetrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(policy.is_retryable),
        before_sleep=before_sleep,
        retry_error_callback=exhausted,
        reraise=True,
    )
    result: T = await retrying(one_attempt)
    return result


class RetryingLLMService:
    """An ``LLMService`` whose ``complete`` runs ``inner.complete`` under ``retry_policy``.

    ``stream`` is passed through without retries (a half-consumed stream cannot be
    replayed). A retried streamed ``complete`` calls the chunk callbacks again for the
    new attempt. The loop unwraps this service (it runs ``inner`` under its own policy),
    so retries never stack.
    """

    def __init__(self, inner: LLMService, *, policy: LLMRetryPolicy) -> None:
        self.inner = inner
        self.retry_policy = policy

    async def complete(
        self,
        request: LLMRequest,
        *,
        on_chunk_delta_text: Callable[[str], Any] | None = None,
        on_chunk_think: Callable[[str], Any] | None = None,
        on_stream_end: Callable[[LLMResponse], Any] | None = None,
    ) -> LLMResponse:
        """``inner.complete(...)`` retried under ``retry_policy`` (see the module docstring)."""

        def call() -> Awaitable[LLMResponse]:
            return self.inner.complete(
                request, on_chunk_delta_text=on_chunk_delta_text, on_chunk_think=on_chunk_think,
                on_stream_end=on_stream_end,
            )

        return await _retry_call(call, policy=self.retry_policy, token=None, on_retry=None)

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        """``inner.stream(request)``, unchanged."""
        return self.inner.stream(request)

    async def close(self) -> None:
        """Close the wrapped service."""
        await self.inner.close()

    def __repr__(self) -> str:
        return f"RetryingLLMService(inner={self.inner!r}, retry_policy={self.retry_policy!r})"


@overload
def with_retry(call: LLMService, *, policy: LLMRetryPolicy) -> RetryingLLMService: ...


@overload
def with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: LLMRetryPolicy,
    token: CancellationToken | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> Coroutine[Any, Any, T]: ...


def with_retry(
    call: LLMService | Callable[[], Awaitable[T]],
    *,
    policy: LLMRetryPolicy,
    token: CancellationToken | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> RetryingLLMService | Coroutine[Any, Any, T]:
    """Retry an async call, or wrap a service so that its ``complete`` retries.

    Args:
        call: a zero-argument callable returning an awaitable (called once per
            attempt), or an ``LLMService``.
        policy: the retry policy.
        token: cancels the in-flight attempt and any wait (call form only).
        on_retry: called as ``on_retry(attempt, error, sleep_s)`` before each wait, where
            ``attempt`` is the number of the attempt that failed (call form only).

    Returns:
        For a callable, a coroutine to await that returns the call's result; for a
        service, a ``RetryingLLMService`` (not awaited).

    Raises:
        LLMRetryExhausted: (``llm.retry_exhausted``) every attempt failed; ``__cause__``
            and ``.last_error`` are the last error.
        LLMTimeout: (``llm.timeout``) ``total_timeout`` elapsed.
        CancellationRequested: (``cancelled``) the token was cancelled.

    Example:
        >>> import asyncio
        >>> async def flaky() -> str:
        ...     return "ok"
        >>> asyncio.run(with_retry(flaky, policy=LLMRetryPolicy(max_attempts=2)))
        'ok'
    """
    if not callable(call) and isinstance(call, LLMService):  # cheap test first: Protocol checks are slow
        if token is not None or on_retry is not None:
            raise InvalidArgumentError("with_retry(service, ...) takes only policy=; token and on_retry"
                                       " apply to the callable form")
        return RetryingLLMService(call, policy=policy)
    if not callable(call):
        raise InvalidArgumentError(
            f"with_retry expects a zero-argument async callable or an LLMService, not {type(call).__name__}"
        )
    return _retry_call(call, policy=policy, token=token, on_retry=on_retry)
