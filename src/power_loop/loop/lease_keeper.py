"""Keeps a running send's session lease alive through long LLM calls and tool runs.

A send's first append takes (or re-takes) the lease and, where the backend serialises
writes, later appends only check it: the keeper is what renews it, every ``ttl/3``. It is
one timer handle per send (no task until it fires), so a short send costs nothing, and
it keeps firing until ``stop()``, also while the lease is released (the run may re-take
it). Invariant: it never renews a lease the run has released, and ``stop()`` waits for a
renewal in flight, so a lease let go stays let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from power_loop.engine.context import RunContext
from power_loop.store.leases import LeaseLostError

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, ctx: RunContext, *, interval_s: float) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        if self._ctx.lease is not None:
            self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._stopped:
            self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        ctx = self._ctx
        lease = ctx.lease
        if self._stopped:
            return
        if lease is None or ctx.lease_released:
            # Let go for now, but the run may go on (a follow-up, a structured-output
            # repair) and re-take it with its next append: keep watching.
            self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._fire)
            return
        try:
            ctx.lease = await ctx.store.renew_lease(lease)
        except LeaseLostError:
            # The next fenced append fails with LeaseLostError and nothing is written.
            logger.warning("session %s: lease lost while the send was running", ctx.session_id)
            return
        except Exception:  # a transient store error: the next fenced append will tell
            logger.warning("session %s: lease renewal failed", ctx.session_id, exc_info=True)
        if not self._stopped:
            self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._fire)

    async def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            with contextlib.suppress(Exception):  # already logged in _renew
                await task
