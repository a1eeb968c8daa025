"""Follow-ups: a durable per-session queue of inputs for a send that is still running.

Invariants: ids are allocated from the session row's ``follow_up_seq`` counter in the
enqueuing transaction, so they are 1, 2, … per session, never reused after consumption
and safe across processes; a follow-up is consumed by deleting it in the same
transaction as the messages that carry it, fenced on the exact number of rows, so an
input is never both lost and never delivered twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.codec import decode_json
from power_loop.store.port import Dialect, Row, Stmt
from power_loop.store.rows import FollowUpRow
from power_loop.store.schema import FOLLOW_UPS, SESSIONS

_CACHED_CONSUMES = 8


class FollowUpQueries:
    """The rendered SQL of the follow_ups table for one dialect and prefix."""

    __slots__ = ("_consumes", "_render", "_table", "allocate", "count", "insert", "list_all", "probe")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        t = self._table = f"{table_prefix}{FOLLOW_UPS.name}"
        s = f"{table_prefix}{SESSIONS.name}"
        r = self._render = dialect.render
        self._consumes: dict[int, str] = {}
        self.allocate = r(f"UPDATE {s} SET follow_up_seq = follow_up_seq + 1 WHERE session_id = ?")
        # The id comes from a scalar subquery, not a SELECT list: PostgreSQL would type
        # a parameter in a SELECT list as text and refuse it for a bigint column.
        self.insert = r(
            f"INSERT INTO {t} (session_id, follow_up_id, content, created_at) VALUES"
            f" (?, (SELECT follow_up_seq FROM {s} WHERE session_id = ?), ?, ?)"
        )
        self.count = r(f"SELECT COUNT(*) FROM {t} WHERE session_id = ?")
        # A no-op UPDATE whose row count says whether inputs are queued: it rides in a
        # write batch, so a running send learns of follow-ups from any process without a read.
        self.probe = r(f"UPDATE {s} SET follow_up_seq = follow_up_seq WHERE session_id = ?"
                       f" AND EXISTS (SELECT 1 FROM {t} WHERE session_id = ?)")
        self.list_all = r(f"SELECT session_id, follow_up_id, content, created_at FROM {t}"
                          " WHERE session_id = ? ORDER BY follow_up_id")

    def consume(self, session_id: str, follow_up_ids: Sequence[int]) -> Stmt:
        """A ``DELETE`` of exactly these follow-ups (fenced: all of them or nothing)."""
        n = len(follow_up_ids)
        sql = self._consumes.get(n)
        if sql is None:
            sql = self._render(
                f"DELETE FROM {self._table} WHERE session_id = ? AND follow_up_id IN ({', '.join('?' * n)})"
            )
            if n <= _CACHED_CONSUMES:
                self._consumes[n] = sql
        return Stmt(sql, (session_id, *follow_up_ids), expect_rows=n)


def check_follow_up_ids(follow_up_ids: Sequence[int]) -> None:
    """Raise ``InvalidArgumentError`` (``invalid_argument``) for non-int, non-positive or repeated ids."""
    bad = [i for i in follow_up_ids if type(i) is not int or i < 1]
    if bad:
        raise InvalidArgumentError(f"consume_follow_ups: ids must be ints >= 1, got {bad!r}")
    if len(set(follow_up_ids)) != len(follow_up_ids):
        raise InvalidArgumentError(f"consume_follow_ups: ids repeat in {list(follow_up_ids)!r}")


def follow_up_from_row(row: Row) -> FollowUpRow:
    """Decode a row selected by ``list_all``."""
    return FollowUpRow(session_id=row[0], follow_up_id=int(row[1]), content=decode_json(row[2]),
                       created_at=int(row[3]))
