"""Store maintenance: pruning folded-out originals, and the backends' optional disk chores.

Invariants: pruning only ever deletes messages in state ``compacted_out`` (never an
active or dropped message, never a compaction's result), in one transaction that
locks the session row first, so it never races an append into a gap of seqs; the
remaining seqs keep their numbers (the log has holes, ``next_seq`` is unchanged).
``vacuum``, ``checkpoint`` and ``backup`` are capabilities a backend may have (SQLite
does); on others they are no-ops, because the server owns its disk (autovacuum, InnoDB
purge, ``pg_dump``/``mariadb-dump``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from power_loop.contracts.errors import InvalidArgumentError, SessionNotFoundError
from power_loop.store.port import Database, Dialect
from power_loop.store.rows import MessageState
from power_loop.store.schema import MESSAGES, SESSIONS

if TYPE_CHECKING:
    from pathlib import Path

CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")
_COMPACTED = MessageState.COMPACTED_OUT.value


@runtime_checkable
class MaintenanceCapable(Protocol):
    """Optional backend capability: reclaiming disk, flushing the WAL, online backup."""

    async def vacuum(self, *, incremental: bool = True) -> None: ...

    async def checkpoint(self, *, mode: str = "TRUNCATE") -> None: ...

    async def backup(self, dest_path: str | Path) -> None: ...


def checkpoint_mode(mode: object) -> str:
    """``mode`` upper-cased.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — not one of ``CHECKPOINT_MODES``.
    """
    if not isinstance(mode, str) or mode.upper() not in CHECKPOINT_MODES:
        raise InvalidArgumentError(f"checkpoint mode {mode!r} is not one of {', '.join(CHECKPOINT_MODES)}")
    return mode.upper()


class PruneQueries:
    """The rendered SQL of ``prune_compacted`` for one dialect and prefix."""

    __slots__ = ("_messages", "_render", "lock")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        self._render = dialect.render
        self._messages = f"{table_prefix}{MESSAGES.name}"
        self.lock = dialect.render(
            f"SELECT next_seq FROM {table_prefix}{SESSIONS.name} WHERE session_id = ?{dialect.lock_suffix()}"
        )

    def nth_newest(self, n: int) -> str:
        """The seq of the ``n``-th newest compacted-out message (1 = the newest)."""
        return self._render(
            f"SELECT seq FROM {self._messages} WHERE session_id = ? AND state = '{_COMPACTED}'"
            f" ORDER BY seq DESC LIMIT 1 OFFSET {int(n) - 1}"
        )

    def delete(self, *, by_age: bool, below_seq: bool) -> str:
        sql = f"DELETE FROM {self._messages} WHERE session_id = ? AND state = '{_COMPACTED}'"
        if by_age:
            sql += " AND created_at <= ?"
        if below_seq:
            sql += " AND seq < ?"
        return self._render(sql)


def _check_prune_args(older_than_ms: object, keep_recent: object) -> None:
    problems = []
    if older_than_ms is not None and (isinstance(older_than_ms, bool) or not isinstance(older_than_ms, int)
                                      or older_than_ms < 0):
        problems.append(f"older_than_ms must be None or an int >= 0, got {older_than_ms!r}")
    if isinstance(keep_recent, bool) or not isinstance(keep_recent, int) or keep_recent < 0:
        problems.append(f"keep_recent must be an int >= 0, got {keep_recent!r}")
    if problems:
        raise InvalidArgumentError("prune_compacted_messages: " + "; ".join(problems))


async def prune_compacted(db: Database, q: PruneQueries, session_id: str, *, older_than_ms: int | None,
                          keep_recent: int, now: int) -> int:
    """Delete the session's compacted-out messages; see ``SessionStore.prune_compacted_messages``."""
    _check_prune_args(older_than_ms, keep_recent)
    async with db.transaction() as tx:
        if await tx.fetchone(q.lock, (session_id,)) is None:
            raise SessionNotFoundError(session_id)
        params: list[object] = [session_id]
        if older_than_ms is not None:
            params.append(now - older_than_ms)
        if keep_recent:
            row = await tx.fetchone(q.nth_newest(keep_recent), (session_id,))
            if row is None:
                return 0  # no more than keep_recent of them: all are kept
            params.append(int(row[0]))
        return await tx.execute(q.delete(by_age=older_than_ms is not None, below_seq=keep_recent > 0), params)
