"""The lease keeper: renews every interval, never a released lease, and keeps watching."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from power_loop.loop.lease_keeper import LeaseKeeper


class _Store:
    def __init__(self) -> None:
        self.renewals = 0

    async def renew_lease(self, lease: Any) -> Any:
        self.renewals += 1
        return lease


async def test_renews_while_held_pauses_while_released_and_resumes_when_retaken() -> None:
    store = _Store()
    ctx: Any = SimpleNamespace(lease=object(), lease_released=False, store=store, session_id="s")
    keeper = LeaseKeeper(ctx, interval_s=0.03)
    keeper.start()
    await asyncio.sleep(0.1)
    assert store.renewals >= 2
    ctx.lease_released = True  # a final append let it go ...
    held = store.renewals
    await asyncio.sleep(0.1)
    assert store.renewals == held  # ... never renewed while released
    ctx.lease_released = False  # ... and the run went on (a follow-up): its next append re-took it
    await asyncio.sleep(0.1)
    assert store.renewals >= held + 2  # the keeper is still watching
    await keeper.stop()
    stopped = store.renewals
    await asyncio.sleep(0.1)
    assert store.renewals == stopped
