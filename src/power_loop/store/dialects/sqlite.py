"""The SQLite dialect: ``?`` placeholders as written, five logical types, no row locks.

SQLite serialises writers with ``BEGIN IMMEDIATE`` (the backend's job), so a locking
read needs no suffix. Types follow SQLite's affinities: every text kind is ``TEXT``,
every integer kind ``INTEGER``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.dialects.base import on_conflict_upsert, wire_message_sql

_TYPES = {"key": "TEXT", "text": "TEXT", "int": "INTEGER", "bigint": "INTEGER", "json": "TEXT"}


class SQLiteDialect:
    """``Dialect`` for SQLite ≥ 3.24 (upsert syntax)."""

    name: str = "sqlite"
    inline_indexes: bool = False
    """SQLite has ``CREATE INDEX IF NOT EXISTS``."""
    serialized_writes: bool = True
    """Each write batch holds the database's one write lock (BEGIN IMMEDIATE)."""

    def render(self, sql: str) -> str:
        """Return ``sql`` unchanged: the sqlite3 module takes ``?`` placeholders."""
        return sql

    def column_type(self, logical: str) -> str:
        """Map a logical type to its SQLite type.

        Raises:
            InvalidArgumentError: ``invalid_argument`` — not a logical type.
        """
        try:
            return _TYPES[logical]
        except KeyError:
            raise InvalidArgumentError(
                f"unknown logical column type {logical!r}: use one of {', '.join(_TYPES)}"
            ) from None

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str]) -> str:
        """``INSERT … ON CONFLICT (key) DO UPDATE SET …``; see ``dialects.base``."""
        return on_conflict_upsert(table, columns, key, update)

    def lock_suffix(self) -> str:
        """``""``: SQLite locks the database, not rows."""
        return ""

    def window_json(self, table: str, where: str) -> str | None:
        """``group_concat`` of ``wire_message_sql`` over the rows, as they come from the
        ``(session_id, state, seq)`` index; None if this SQLite lacks the JSON functions
        (built in since 3.38).

        SQLite does not promise ``group_concat``'s order (an ``ORDER BY`` subquery costs
        more and promises no more), so the seqs come back from the same pass and the
        caller checks that they ascend. A row whose stored JSON is not minified yields
        NULL (one message short: the caller reads rows instead); malformed JSON fails the
        query. The wire JSON is a BLOB, decoded strictly by the caller.
        """
        if not _has_json_quote():
            return None
        wire = wire_message_sql("json_quote({})", "json({0}) = {0}")  # valid and minified
        return (f"SELECT CAST(group_concat({wire}, ',') AS BLOB), group_concat(seq, ','),"
                f" group_concat(coalesce(round_index, 'null'), ',') FROM {table} WHERE {where}")


@functools.cache
def _has_json_quote() -> bool:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as probe:
            return bool(probe.execute("SELECT json_quote('x') = '\"x\"'").fetchone()[0])
    except sqlite3.Error:
        return False
