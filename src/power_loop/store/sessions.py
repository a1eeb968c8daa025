"""Session rows: creation, lookup, the append fence, sub-agent trees and deletion.

Invariants: a session id is unique (creating an existing one fails, it never
overwrites); ``next_seq`` only moves through the fence ``UPDATE … WHERE next_seq = ?``,
in the same transaction as the messages it numbers; deleting a session deletes every
row it owns in every table that has a ``session_id`` column, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.codec import decode_object, encode_object
from power_loop.store.port import Database, Dialect, Row
from power_loop.store.rows import SessionKind, SessionRow, SessionStatus, SubagentLifecycle
from power_loop.store.schema import SESSIONS, TABLES

ROW_COLUMNS = (
    "session_id", "created_at", "updated_at", "system_prompt", "model", "config", "status", "kind",
    "parent_session_id", "spawn_tool_call_id", "spawn_depth", "lifecycle", "metadata", "next_seq",
    "send_count",
)
"""Columns read into a ``SessionRow``, in its field order."""

INSERT_COLUMNS = ROW_COLUMNS
MAX_SESSION_ID_LEN = 191
"""Longest id every backend can index (MySQL's ``VARCHAR(191)`` under utf8mb4)."""
_IN_CHUNK = 500
_KINDS = frozenset(k.value for k in SessionKind)
_LIFECYCLES = frozenset(lc.value for lc in SubagentLifecycle)
OWNED_TABLES = tuple(t for t in TABLES if t is not SESSIONS and "session_id" in t.column_names)
"""Tables whose rows belong to a session and go when it is closed."""


class SessionQueries:
    """The rendered SQL of the sessions table for one dialect and prefix."""

    __slots__ = ("_dialect", "_prefix", "children", "create", "fence", "get", "table", "touch", "tree")

    def __init__(self, dialect: Dialect, table_prefix: str) -> None:
        r = dialect.render
        t = self.table = f"{table_prefix}{SESSIONS.name}"
        cols = ", ".join(ROW_COLUMNS)
        self._dialect = dialect
        self._prefix = table_prefix
        self.create = r(dialect.upsert(t, INSERT_COLUMNS, ("session_id",), ()))
        self.get = r(f"SELECT {cols} FROM {t} WHERE session_id = ?")
        self.children = r(
            f"SELECT {cols} FROM {t} WHERE parent_session_id = ? ORDER BY created_at, session_id"
        )
        self.fence = r(
            f"UPDATE {t} SET next_seq = next_seq + ?, send_count = send_count + ?, updated_at = ?"
            " WHERE session_id = ? AND next_seq = ?"
        )
        self.touch = r(f"UPDATE {t} SET updated_at = ? WHERE session_id = ?")
        self.tree = r(
            f"WITH RECURSIVE tree (session_id) AS (SELECT session_id FROM {t} WHERE session_id = ?"
            f" UNION SELECT c.session_id FROM {t} c JOIN tree ON c.parent_session_id = tree.session_id)"
            " SELECT session_id FROM tree"
        )

    def delete_owned(self, n: int) -> list[tuple[str, bool]]:
        """``(DELETE statement, deletes session rows?)`` for ``n`` ids: runtime rows, sessions, data.

        Rows are locked in the order every writer of a session takes them (its lease,
        then its session row, then its data), so closing a session while another process
        sends to it waits instead of deadlocking on the server backends.
        """
        marks = ", ".join("?" * n)
        runtime = [t for t in OWNED_TABLES if not t.exported]
        data = [t for t in OWNED_TABLES if t.exported]
        names = [f"{self._prefix}{t.name}" for t in runtime] + [self.table] + [
            f"{self._prefix}{t.name}" for t in data]
        render = self._dialect.render
        return [(render(f"DELETE FROM {name} WHERE session_id IN ({marks})"), name == self.table)
                for name in names]


def session_from_row(row: Row) -> SessionRow:
    """Decode a row selected with ``ROW_COLUMNS``."""
    return SessionRow(
        session_id=row[0], created_at=int(row[1]), updated_at=int(row[2]), system_prompt=row[3], model=row[4],
        config=decode_object(row[5]), status=row[6], kind=row[7], parent_session_id=row[8],
        spawn_tool_call_id=row[9], spawn_depth=int(row[10]), lifecycle=row[11],
        metadata=decode_object(row[12]),
        next_seq=int(row[13]), send_count=int(row[14]),
    )


def new_session_params(
    *, session_id: str, now: int, metadata: Any, system_prompt: Any, model: Any, config: Any, kind: Any,
    parent_session_id: Any, spawn_tool_call_id: Any, spawn_depth: Any, lifecycle: Any, max_spawn_depth: int,
) -> tuple[Any, ...]:
    """Validate a new session's fields and return its ``INSERT_COLUMNS`` parameters.

    Raises:
        InvalidArgumentError: ``invalid_argument`` — every problem found, at once.
    """
    problems: list[str] = []
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_SESSION_ID_LEN:
        problems.append(f"session_id must be a non-empty string of at most {MAX_SESSION_ID_LEN} characters,"
                        f" got {session_id!r}")
    encoded: dict[str, str] = {}
    for what, value in (("metadata", metadata), ("config", config)):
        try:
            encoded[what] = encode_object(what, {} if value is None else value)
        except InvalidArgumentError as exc:
            problems.append(str(exc))
    for what, value in (("system_prompt", system_prompt), ("model", model),
                        ("parent_session_id", parent_session_id), ("spawn_tool_call_id", spawn_tool_call_id)):
        if value is not None and not isinstance(value, str):
            problems.append(f"{what} must be a string or None, got {type(value).__name__}")
    # Enum members (SessionKind.SUBAGENT) are stored as their value strings.
    kind = getattr(kind, "value", kind)
    lifecycle = getattr(lifecycle, "value", lifecycle)
    if kind not in _KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(sorted(_KINDS))}")
    if lifecycle is not None and lifecycle not in _LIFECYCLES:
        problems.append(f"lifecycle {lifecycle!r} is not one of {', '.join(sorted(_LIFECYCLES))} or None")
    if isinstance(spawn_depth, bool) or not isinstance(spawn_depth, int) or spawn_depth < 0:
        problems.append(f"spawn_depth must be an int >= 0, got {spawn_depth!r}")
    elif spawn_depth > max_spawn_depth:
        problems.append(f"spawn_depth {spawn_depth} exceeds max_spawn_depth {max_spawn_depth}")
    if parent_session_id is not None and parent_session_id == session_id:
        problems.append("a session cannot be its own parent")
    if problems:
        raise InvalidArgumentError("create_session: " + "; ".join(problems))
    return (
        session_id, now, now, system_prompt, model, encoded["config"], SessionStatus.ACTIVE.value, kind,
        parent_session_id, spawn_tool_call_id, spawn_depth, lifecycle,
        encoded["metadata"], 1, 0,
    )


def row_from_params(params: Sequence[Any]) -> SessionRow:
    """The ``SessionRow`` an insert of ``params`` stores (JSON decoded as a load would)."""
    return session_from_row(tuple(params))


async def delete_sessions(db: Database, q: SessionQueries, session_id: str, *, cascade: bool) -> int:
    """Delete ``session_id`` (and with ``cascade`` its descendants) and all they own; one transaction.

    Returns:
        The number of sessions deleted (0 for an unknown id).
    """
    async with db.transaction() as tx:
        ids = [session_id]
        if cascade:
            ids = [str(r[0]) for r in await tx.fetchall(q.tree, (session_id,))]
        deleted = 0
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            for sql, is_sessions in q.delete_owned(len(chunk)):
                count = await tx.execute(sql, chunk)
                if is_sessions:
                    deleted += count
    return deleted
