"""An in-memory reference store: what SessionStore must observably do, in plain Python.

The model keeps only what a user can observe through the public API (no timestamps),
and raises its own exceptions where the real store raises (the state machine maps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class ModelNotFound(Exception):
    pass


class ModelConflict(Exception):
    pass


class ModelInvalid(Exception):
    pass


@dataclass
class ModelSession:
    session_id: str
    parent: str | None
    spawn_depth: int
    next_seq: int = 1
    send_count: int = 0
    messages: list[tuple[int, str, Any]] = field(default_factory=list)
    """(seq, role, content)."""
    stats: dict[str, int] | None = None
    follow_up_seq: int = 0
    follow_ups: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "root" if self.parent is None else "subagent"


STAT_FIELDS = (
    "sends", "rounds", "llm_calls", "tool_calls", "prompt_tokens", "completion_tokens", "total_tokens",
)


@dataclass
class StoreModel:
    max_spawn_depth: int = 3
    sessions: dict[str, ModelSession] = field(default_factory=dict)

    def _get(self, sid: str) -> ModelSession:
        try:
            return self.sessions[sid]
        except KeyError:
            raise ModelNotFound(sid) from None

    def create(self, sid: str, parent: str | None) -> ModelSession:
        depth = 0
        if parent is not None:
            depth = self._get(parent).spawn_depth + 1
            if depth > self.max_spawn_depth:
                raise ModelInvalid(f"depth {depth}")
        if sid in self.sessions:
            raise ModelInvalid(f"{sid} exists")
        session = self.sessions[sid] = ModelSession(session_id=sid, parent=parent, spawn_depth=depth)
        return session

    def append(self, sid: str, messages: Sequence[tuple[str, Any]], *, expected_next_seq: int,
               start_send: bool, stats: dict[str, int] | None, consume: Sequence[int]) -> list[int]:
        session = self._get(sid)
        if expected_next_seq != session.next_seq:
            raise ModelConflict("stale")
        queued = {fid for fid, _ in session.follow_ups}
        if not set(consume) <= queued:
            raise ModelConflict("follow-up not queued")
        seqs = []
        for role, content in messages:
            session.messages.append((session.next_seq, role, content))
            seqs.append(session.next_seq)
            session.next_seq += 1
        session.send_count += int(start_send)
        if stats is not None:
            self._bump(session, stats)
        session.follow_ups = [(fid, c) for fid, c in session.follow_ups if fid not in set(consume)]
        return seqs

    def bump(self, sid: str, stats: dict[str, int]) -> None:
        self._bump(self._get(sid), stats)

    @staticmethod
    def _bump(session: ModelSession, stats: dict[str, int]) -> None:
        current = session.stats or dict.fromkeys(STAT_FIELDS, 0)
        current["sends"] += 1
        for name, value in stats.items():
            current[name] += value
        session.stats = current

    def enqueue(self, sid: str, content: Any) -> int:
        session = self._get(sid)
        session.follow_up_seq += 1
        session.follow_ups.append((session.follow_up_seq, content))
        return len(session.follow_ups)

    def copy(self, sid: str, new_sid: str) -> None:
        """What ``import_session(export_session(sid), new_session_id=new_sid)`` makes: a root twin."""
        source = self._get(sid)
        self.sessions[new_sid] = ModelSession(
            session_id=new_sid, parent=None, spawn_depth=0, next_seq=source.next_seq,
            send_count=source.send_count, messages=list(source.messages),
            stats=None if source.stats is None else dict(source.stats), follow_up_seq=source.follow_up_seq,
            follow_ups=list(source.follow_ups),
        )

    def children(self, sid: str) -> set[str]:
        return {s.session_id for s in self.sessions.values() if s.parent == sid}

    def close(self, sid: str, *, cascade: bool) -> int:
        if sid not in self.sessions:
            return 0
        doomed = [sid]
        if cascade:
            frontier = [sid]
            while frontier:
                nxt = [c for p in frontier for c in self.children(p)]
                doomed += nxt
                frontier = nxt
        for d in doomed:
            del self.sessions[d]
        return len(doomed)
