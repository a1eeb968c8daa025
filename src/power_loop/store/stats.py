"""Per-session usage stats: one row per session, bumped once per finished send.

Invariants: a bump is an upsert that adds the delta (``sends`` is 1 for a send and 0
for what a continued run adds after its first recording) and sets
``last_send_at``/``updated_at``; ``first_send_at`` is written by the first bump only.
A bump rides in the same transaction as the send's last message when there is one,
so stats never count a send whose messages were not committed.
"""

from __future__ import annotations

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.port import Dialect, Row, Stmt
from power_loop.store.rows import SessionStatsRow, StatsDelta
from power_loop.store.schema import SESSION_STATS

COUNTERS = ("rounds", "llm_calls", "tool_calls", "prompt_tokens", "completion_tokens", "total_tokens")
"""The ``StatsDelta`` counters, in column order after ``sends``."""
COLUMNS = ("session_id", "sends", *COUNTERS, "first_send_at", "last_send_at", "updated_at")


class StatsQueries:
    """The rendered SQL of the session_stats table for one dialect and prefix."""

    __slots__ = ("get", "list_all", "upsert")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        t = f"{table_prefix}{SESSION_STATS.name}"
        cols = ", ".join(COLUMNS)
        update = ("+sends", *(f"+{c}" for c in COUNTERS), "last_send_at", "updated_at")
        self.upsert = dialect.render(dialect.upsert(t, COLUMNS, ("session_id",), update))
        self.get = dialect.render(f"SELECT {cols} FROM {t} WHERE session_id = ?")
        self.list_all = dialect.render(f"SELECT {cols} FROM {t} ORDER BY last_send_at DESC, session_id")

    def bump(self, session_id: str, delta: StatsDelta, now: int) -> Stmt:
        """The upsert adding ``delta`` (and one send) to ``session_id``'s stats."""
        return Stmt(self.upsert, (
            session_id, delta.sends, delta.rounds, delta.llm_calls, delta.tool_calls, delta.prompt_tokens,
            delta.completion_tokens, delta.total_tokens, now, now, now,
        ))


def check_delta(delta: StatsDelta) -> None:
    """Raise ``InvalidArgumentError`` (``invalid_argument``) naming every bad counter."""
    if not isinstance(delta, StatsDelta):
        raise InvalidArgumentError(f"stats must be a StatsDelta, got {type(delta).__name__}")
    bad = [
        f"{name}={value!r}" for name in ("sends", *COUNTERS)
        if type(value := getattr(delta, name)) is not int or value < 0
    ]
    if bad:
        raise InvalidArgumentError(f"stats counters must be ints >= 0: {', '.join(bad)}")


def stats_from_row(row: Row) -> SessionStatsRow:
    """Decode a row selected with ``COLUMNS``."""
    return SessionStatsRow(
        session_id=row[0], sends=int(row[1]), rounds=int(row[2]), llm_calls=int(row[3]),
        tool_calls=int(row[4]), prompt_tokens=int(row[5]), completion_tokens=int(row[6]),
        total_tokens=int(row[7]),
        first_send_at=row[8], last_send_at=row[9], updated_at=row[10],
    )
