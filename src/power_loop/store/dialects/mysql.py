"""The MySQL/MariaDB dialect: ``%s`` placeholders, ``VARCHAR(191)`` keys, InnoDB, utf8mb4.

Only SQL that both MySQL 8 and MariaDB 10.6+ accept: upserts are ``ON DUPLICATE KEY
UPDATE col = VALUES(col)`` (never the MySQL-8-only row alias). Invariants:

* Keys are ``VARCHAR(191)`` (the longest that indexes under utf8mb4 on every InnoDB row
  format); text and JSON are ``LONGTEXT``; tables are InnoDB, utf8mb4 with the binary
  collation, so ids compare exactly (case-sensitive) as on the other engines.
* The backend connects with ``CLIENT_FOUND_ROWS``: an ``UPDATE`` reports the rows it
  *matched*, so a fence that rewrites a value unchanged still counts 1. Under that flag an
  ``ON DUPLICATE KEY UPDATE k = k`` on an existing key also reports 1, so the
  insert-or-ignore form (empty ``update``) is ``INSERT IGNORE``, which reports 0.
* Indexes are declared inside ``CREATE TABLE`` (MySQL has no ``CREATE INDEX IF NOT
  EXISTS``); provisioning is serialised with ``GET_LOCK`` (DDL commits implicitly, so a
  transaction cannot do it), released explicitly on the same connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.dialects.base import format_placeholders, on_duplicate_key_upsert

_TYPES = {"key": "VARCHAR(191)", "text": "LONGTEXT", "int": "INT", "bigint": "BIGINT", "json": "LONGTEXT"}
_LOCK_TIMEOUT_S = 60


class MySQLDialect:
    """``Dialect`` for MySQL 8.0+ and MariaDB 10.6+."""

    name: str = "mysql"
    inline_indexes: bool = True
    """MySQL lacks ``CREATE INDEX IF NOT EXISTS``: indexes go inside ``CREATE TABLE``."""
    serialized_writes: bool = False
    """Concurrent write transactions: what a fence must hold, it locks by writing."""
    table_options: str = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

    def render(self, sql: str) -> str:
        """Rewrite ``?`` placeholders as ``%s`` and double literal ``%`` signs."""
        return format_placeholders(sql)

    def column_type(self, logical: str) -> str:
        """Map a logical type to its MySQL type.

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
        """``INSERT … ON DUPLICATE KEY UPDATE col = VALUES(col)``, or ``INSERT IGNORE`` for no update."""
        if not update:
            marks = ", ".join("?" * len(columns))
            return f"INSERT IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        return on_duplicate_key_upsert(table, columns, key, update)

    def lock_suffix(self) -> str:
        """``" FOR UPDATE"``: lock the rows a read returns until the transaction ends."""
        return " FOR UPDATE"

    def window_json(self, table: str, where: str) -> str | None:
        """None: windows load row by row (``JSON_QUOTE`` escapes control characters in
        upper-case hex, the wire encoder in lower case)."""
        return None

    def schema_lock(self, table_prefix: str) -> tuple[str, str | None]:
        """SQL taking and releasing the named schema lock of ``table_prefix`` (≤ 64 characters)."""
        name = f"power_loop_schema:{table_prefix}"
        return f"SELECT GET_LOCK('{name}', {_LOCK_TIMEOUT_S})", f"SELECT RELEASE_LOCK('{name}')"

    def __repr__(self) -> str:
        return "MySQLDialect()"
