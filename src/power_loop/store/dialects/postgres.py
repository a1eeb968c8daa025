"""The PostgreSQL dialect: ``$n`` placeholders, five logical types, ``FOR UPDATE`` row locks.

JSON columns are ``TEXT``, not ``JSONB``: the store reads back exactly the bytes it
wrote (``JSONB`` would reorder keys and drop duplicates), so a warm window and a cold
load stay byte-identical on every backend. Upserts use ``ON CONFLICT`` like SQLite.
Schema provisioning is serialised with a transaction-scoped advisory lock, released by
the commit or rollback itself, so it never outlives its transaction on a pooled
connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.dialects.base import numbered_placeholders, on_conflict_upsert, wire_message_sql

_TYPES = {"key": "TEXT", "text": "TEXT", "int": "INTEGER", "bigint": "BIGINT", "json": "TEXT"}


class PostgresDialect:
    """``Dialect`` for PostgreSQL ≥ 11."""

    name: str = "postgres"
    inline_indexes: bool = False
    """PostgreSQL has ``CREATE INDEX IF NOT EXISTS``."""
    serialized_writes: bool = False
    """Concurrent write transactions: what a fence must hold, it locks by writing."""
    table_options: str = ""

    def render(self, sql: str) -> str:
        """Rewrite ``?`` placeholders as ``$1``, ``$2``, … (literals are left alone)."""
        return numbered_placeholders(sql)

    def column_type(self, logical: str) -> str:
        """Map a logical type to its PostgreSQL type.

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
        """``" FOR UPDATE"``: lock the rows a read returns until the transaction ends."""
        return " FOR UPDATE"

    def window_json(self, table: str, where: str) -> str | None:
        """``string_agg`` of ``wire_message_sql`` in seq order (``to_json`` escapes strings
        exactly as the wire encoder does); malformed stored JSON fails the ``::json`` cast."""
        wire = wire_message_sql("to_json({})::text", "{0}::json IS NOT NULL")
        return self.render(
            f"SELECT convert_to(string_agg({wire}, ',' ORDER BY seq), 'UTF8'),"
            f" string_agg(seq::text, ',' ORDER BY seq),"
            f" string_agg(coalesce(round_index::text, 'null'), ',' ORDER BY seq)"
            f" FROM {table} WHERE {where}"
        )

    def schema_lock(self, table_prefix: str) -> tuple[str, str | None]:
        """SQL taking (and, ``None``: the commit releases) the schema lock of ``table_prefix``."""
        return f"SELECT pg_advisory_xact_lock(hashtext('power_loop_schema:{table_prefix}'))", None

    def __repr__(self) -> str:
        return "PostgresDialect()"
