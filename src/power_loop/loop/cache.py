"""An LRU of per-session windows, each valid only while its ``next_seq`` matches the store.

A miss, a stale entry or an error mid-run all lead to the same place: a reload from the
store. The cache never changes what the model sees, only how often history is read.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from power_loop.engine.window import SessionWindow


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """Counters of the per-session window cache."""

    size: int
    capacity: int
    hits: int
    misses: int
    stale: int
    evictions: int


class WindowCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._entries: OrderedDict[str, SessionWindow] = OrderedDict()
        self.hits = self.misses = self.stale = self.evictions = 0

    def get(self, session_id: str, next_seq: int) -> SessionWindow | None:
        """The cached window if it is still current (``next_seq`` matches), else None."""
        window = self._entries.get(session_id)
        if window is None:
            self.misses += 1
            return None
        if window.next_seq != next_seq:
            self.stale += 1
            del self._entries[session_id]
            return None
        self.hits += 1
        self._entries.move_to_end(session_id)
        return window

    def peek(self, session_id: str) -> SessionWindow | None:
        """The cached window without validation (the caller fences its first write)."""
        window = self._entries.get(session_id)
        if window is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(session_id)
        return window

    def put(self, session_id: str, window: SessionWindow) -> None:
        if self.capacity == 0:
            return
        self._entries[session_id] = window
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evictions += 1

    def drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> CacheStats:
        return CacheStats(size=len(self._entries), capacity=self.capacity, hits=self.hits, misses=self.misses,
                          stale=self.stale, evictions=self.evictions)
