"""One cancellation primitive for the whole kernel.

``CancellationToken`` is what every layer checks; ``from_any`` adapts the objects users
already have (``asyncio.Event``, ``threading.Event``, a ``() -> bool`` callable, or any
object with ``is_set()``). Invariant: a raising callable counts as *not* cancelled, so a
buggy probe can never stop a run by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, Protocol, Union, runtime_checkable

from power_loop.contracts.errors import CancellationRequested, InvalidArgumentError


@runtime_checkable
class _HasIsSet(Protocol):
    def is_set(self) -> bool: ...


CancellationLike = Union[
    "CancellationToken", asyncio.Event, threading.Event, Callable[[], bool], _HasIsSet, None
]
"""Everything ``stop_event=`` accepts."""


class CancellationToken:
    """A thread-safe, set-once cancellation flag with a reason.

    Example:
        >>> token = CancellationToken()
        >>> token.cancel("user pressed stop")
        >>> token.is_cancelled(), token.reason
        (True, 'user pressed stop')
    """

    __slots__ = ("_cancelled", "_lock", "_probe", "_reason", "_waiters")

    def __init__(self) -> None:
        self._cancelled = False
        """Set once, under ``_lock``; read without it (a bool read is atomic)."""
        self._lock = threading.Lock()
        self._reason = "cancelled"
        self._probe: Callable[[], bool] | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @classmethod
    def from_any(cls, obj: CancellationLike) -> CancellationToken:
        """Adapt a token, an event, a ``() -> bool`` callable or ``None`` to a token.

        Raises:
            InvalidArgumentError: ``invalid_argument`` for anything else.
        """
        if isinstance(obj, CancellationToken):
            return obj
        token = cls()
        if obj is None:
            return token
        if isinstance(obj, (asyncio.Event, threading.Event, _HasIsSet)):
            token._probe = obj.is_set
        elif callable(obj):
            token._probe = obj
        else:
            raise InvalidArgumentError(
                "stop_event must be a CancellationToken, an asyncio/threading Event, an object with"
                f" is_set() or a () -> bool callable, not {type(obj).__name__}")
        return token

    @classmethod
    def never(cls) -> CancellationToken:
        """A token nobody will cancel."""
        return cls()

    @property
    def reason(self) -> str:
        """Why the token was cancelled (``"cancelled"`` by default)."""
        return self._reason

    def cancel(self, reason: str = "cancelled") -> None:
        """Set the token; idempotent and thread-safe (the first reason wins)."""
        with self._lock:
            if self._cancelled:
                return
            self._reason = reason
            self._cancelled = True
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that waiter's loop is closed: nobody to wake
                loop.call_soon_threadsafe(_resolve, fut)

    def is_cancelled(self) -> bool:
        """True once cancelled, or when the adapted event/callable reports set."""
        if self._cancelled:
            return True
        probe = self._probe
        if probe is None:
            return False
        try:
            fired = bool(probe())
        except Exception:  # a raising probe counts as not cancelled (documented)
            return False
        if fired:
            self.cancel(self._reason)
        return fired

    is_set = is_cancelled

    def raise_if_cancelled(self) -> None:
        """Raise ``CancellationRequested`` when cancelled."""
        if self.is_cancelled():
            raise CancellationRequested(self._reason)

    async def wait(self, timeout: float | None = None, *, poll_s: float = 0.05) -> bool:
        """Wait until cancelled or ``timeout`` elapses; return whether cancelled.

        Adapted probes cannot notify, so they are polled every ``poll_s`` seconds.
        """
        if self.is_cancelled():
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            if self._cancelled:  # cancelled since the check above: cancel() saw no waiter
                return True
            self._waiters.append(entry)
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return self.is_cancelled()
                step = remaining if self._probe is None else min(poll_s, remaining or poll_s)
                try:
                    await asyncio.wait_for(asyncio.shield(fut), step)
                    return True
                except asyncio.TimeoutError:
                    if self.is_cancelled():
                        return True
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
            if not fut.done():
                fut.cancel()


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)
