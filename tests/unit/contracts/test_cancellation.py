"""CancellationToken: set-once flag, adapters for user objects, and prompt async waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from power_loop import CancellationRequested, CancellationToken, InvalidArgumentError

WAIT_S = 5.0


# -- the flag ---------------------------------------------------------------------------
def test_a_new_token_is_not_cancelled_and_its_reason_defaults_to_cancelled() -> None:
    token = CancellationToken()
    assert token.is_cancelled() is False and token.is_set() is False
    assert token.reason == "cancelled"
    token.raise_if_cancelled()


def test_cancel_sets_the_token_with_a_reason() -> None:
    token = CancellationToken()
    token.cancel("user pressed stop")
    assert token.is_cancelled() is True and token.is_set() is True
    assert token.reason == "user pressed stop"


def test_cancel_without_a_reason_uses_cancelled() -> None:
    token = CancellationToken()
    token.cancel()
    assert token.reason == "cancelled"


def test_cancel_is_idempotent_and_the_first_reason_wins() -> None:
    token = CancellationToken()
    token.cancel("first")
    token.cancel("second")
    assert token.reason == "first"


def test_raise_if_cancelled_raises_cancellation_requested_with_the_reason() -> None:
    token = CancellationToken()
    token.cancel("deadline")
    with pytest.raises(CancellationRequested) as info:
        token.raise_if_cancelled()
    assert info.value.reason == "deadline"
    assert info.value.code == "cancelled"


def test_concurrent_cancels_settle_on_exactly_one_of_the_reasons() -> None:
    for _ in range(50):
        token = CancellationToken()
        start = threading.Barrier(8)
        reasons = [f"r{i}" for i in range(8)]

        def cancel(reason: str, token: CancellationToken = token, start: threading.Barrier = start) -> None:
            start.wait(WAIT_S)
            token.cancel(reason)

        threads = [threading.Thread(target=cancel, args=(r,)) for r in reasons]
        for thread in threads:
            thread.start()
        observed = [token.reason for _ in range(3)]
        for thread in threads:
            thread.join(WAIT_S)
        assert token.reason in reasons
        assert all(r in (*reasons, "cancelled") for r in observed)
        final = token.reason
        token.cancel("late")
        assert token.reason == final


def test_never_gives_independent_uncancelled_tokens() -> None:
    a, b = CancellationToken.never(), CancellationToken.never()
    assert not a.is_cancelled() and a is not b
    a.cancel()
    assert not b.is_cancelled()


# -- from_any ---------------------------------------------------------------------------
def test_from_any_none_is_a_fresh_token() -> None:
    token = CancellationToken.from_any(None)
    assert isinstance(token, CancellationToken) and not token.is_cancelled()


def test_from_any_returns_a_token_unchanged() -> None:
    token = CancellationToken()
    assert CancellationToken.from_any(token) is token


async def test_from_any_follows_an_asyncio_event() -> None:
    event = asyncio.Event()
    token = CancellationToken.from_any(event)
    assert not token.is_cancelled()
    event.set()
    assert token.is_cancelled()


def test_from_any_follows_a_threading_event_and_stays_cancelled_once_seen() -> None:
    event = threading.Event()
    token = CancellationToken.from_any(event)
    assert not token.is_cancelled()
    event.set()
    assert token.is_cancelled() and token.reason == "cancelled"
    event.clear()
    assert token.is_cancelled()  # set-once: a probe that fired is remembered


def test_from_any_follows_a_callable() -> None:
    flag = {"stop": False}
    token = CancellationToken.from_any(lambda: flag["stop"])
    assert not token.is_cancelled()
    flag["stop"] = True
    assert token.is_cancelled()
    with pytest.raises(CancellationRequested):
        token.raise_if_cancelled()


def test_from_any_follows_any_object_with_is_set() -> None:
    class Flag:
        def __init__(self) -> None:
            self.value = False

        def is_set(self) -> bool:
            return self.value

    flag = Flag()
    token = CancellationToken.from_any(flag)
    assert not token.is_cancelled()
    flag.value = True
    assert token.is_cancelled()


def test_a_raising_callable_counts_as_not_cancelled() -> None:
    def broken() -> bool:
        raise RuntimeError("probe bug")

    token = CancellationToken.from_any(broken)
    assert token.is_cancelled() is False
    token.raise_if_cancelled()
    token.cancel("explicit")
    assert token.is_cancelled() and token.reason == "explicit"


@pytest.mark.parametrize("bad", [42, "stop", 1.5, object()])
def test_from_any_refuses_other_objects_with_invalid_argument(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="stop_event") as info:
        CancellationToken.from_any(bad)  # type: ignore[arg-type]  # the point of the test
    assert info.value.code == "invalid_argument"


# -- wait -------------------------------------------------------------------------------
async def test_wait_returns_true_at_once_when_already_cancelled() -> None:
    token = CancellationToken()
    token.cancel()
    assert await asyncio.wait_for(token.wait(timeout=WAIT_S), 1.0) is True


async def test_wait_returns_false_when_the_timeout_elapses() -> None:
    token = CancellationToken()
    started = time.monotonic()
    assert await token.wait(timeout=0.05) is False
    assert time.monotonic() - started >= 0.04


async def test_wait_with_zero_timeout_reports_the_current_state() -> None:
    token = CancellationToken()
    assert await token.wait(timeout=0) is False
    token.cancel()
    assert await token.wait(timeout=0) is True


async def test_wait_wakes_promptly_when_cancelled_from_another_thread() -> None:
    token = CancellationToken()
    go = threading.Event()

    def cancel_when_told() -> None:
        assert go.wait(WAIT_S)
        token.cancel("remote")

    thread = threading.Thread(target=cancel_when_told)
    thread.start()
    waiter = asyncio.create_task(token.wait())
    asyncio.get_running_loop().call_soon(go.set)  # after the waiter registered itself
    started = time.monotonic()
    assert await asyncio.wait_for(waiter, WAIT_S) is True
    assert time.monotonic() - started < 1.0
    assert token.reason == "remote"
    thread.join(WAIT_S)


async def test_wait_never_misses_a_cancel_racing_with_its_start() -> None:
    for _ in range(200):
        token = CancellationToken()
        thread = threading.Thread(target=token.cancel)
        thread.start()
        # No timeout: a lost wake-up would hang, which wait_for turns into a failure.
        assert await asyncio.wait_for(token.wait(), WAIT_S) is True
        thread.join(WAIT_S)


async def test_wait_wakes_on_a_cancel_landing_right_after_its_first_check() -> None:
    class CancelledJustAfterTheCheck(CancellationToken):
        __slots__ = ("checked",)

        def is_cancelled(self) -> bool:
            result = super().is_cancelled()
            if not getattr(self, "checked", False):
                self.checked = True
                other = threading.Thread(target=self.cancel, args=("raced",))
                other.start()
                other.join(WAIT_S)
            return result

    token = CancelledJustAfterTheCheck()
    assert await asyncio.wait_for(token.wait(), WAIT_S) is True
    assert token.reason == "raced"


async def test_every_concurrent_waiter_wakes_on_one_cancel() -> None:
    token = CancellationToken()
    waiters = [asyncio.create_task(token.wait()) for _ in range(5)]
    go = threading.Event()

    def cancel_when_told() -> None:
        assert go.wait(WAIT_S)
        token.cancel()

    thread = threading.Thread(target=cancel_when_told)
    thread.start()
    asyncio.get_running_loop().call_soon(go.set)
    assert await asyncio.wait_for(asyncio.gather(*waiters), WAIT_S) == [True] * 5
    thread.join(WAIT_S)


async def test_wait_on_an_adapted_threading_event_sees_a_set_from_another_thread() -> None:
    event = threading.Event()
    token = CancellationToken.from_any(event)
    thread = threading.Thread(target=event.set)
    waiter = asyncio.create_task(token.wait(poll_s=0.01))
    asyncio.get_running_loop().call_soon(thread.start)
    assert await asyncio.wait_for(waiter, WAIT_S) is True
    thread.join(WAIT_S)


async def test_wait_on_an_adapted_asyncio_event_sees_it_set() -> None:
    event = asyncio.Event()
    token = CancellationToken.from_any(event)
    waiter = asyncio.create_task(token.wait(poll_s=0.01))
    asyncio.get_running_loop().call_soon(event.set)
    assert await asyncio.wait_for(waiter, WAIT_S) is True


async def test_wait_with_a_raising_probe_times_out_as_not_cancelled() -> None:
    def broken() -> bool:
        raise RuntimeError("probe bug")

    token = CancellationToken.from_any(broken)
    assert await token.wait(timeout=0.03, poll_s=0.01) is False


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    token = CancellationToken()
    waiter = asyncio.create_task(token.wait())
    asyncio.get_running_loop().call_soon(waiter.cancel)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    token.cancel()  # must not touch the abandoned waiter's future
    assert token.is_cancelled()
