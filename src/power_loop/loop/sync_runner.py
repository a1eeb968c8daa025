"""A long-lived background event loop for the ``*_sync`` API.

Server connection pools bind to the loop that created them, so every sync call of one
``StatefulAgentLoop`` runs on the same background loop, in its own daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from power_loop.contracts.errors import UsageError

T = TypeVar("T")


class SyncRunner:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, what: str) -> T:
        """Run ``coro`` on the background loop and block for its result."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise UsageError(f"{what}_sync() called while an event loop is running in this thread: "
                             f"use 'await loop.{what}(...)' instead")
        loop = self._ensure()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name="power-loop-sync", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        if not loop.is_running():
            loop.close()
