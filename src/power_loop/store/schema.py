"""The logical schema: every table the store owns, described once for every dialect.

A ``Table`` names its columns with *logical* types (``key``, ``text``, ``int``,
``bigint``, ``json``); a ``Dialect`` maps them to engine types, so adding a backend
means mapping five types, not rewriting DDL. Invariants:

* ``ddl(dialect, prefix)`` is the complete provisioning script: idempotent statements
  (``CREATE TABLE IF NOT EXISTS``, ``CREATE INDEX IF NOT EXISTS``) without trailing
  ``;``, the version table first and the version stamp last, so a crash part-way through
  provisioning leaves an unstamped database that the next boot provisions again.
* The stamp is an insert-or-ignore: it never overwrites a version another process wrote,
  and it never makes an older database look current.
* Every table and index name carries the prefix; prefixes in one database never share
  an object.
* A dialect whose engine lacks ``CREATE INDEX IF NOT EXISTS`` (MySQL) sets
  ``inline_indexes = True`` and gets the indexes declared inside ``CREATE TABLE``; a
  dialect may also set ``table_options`` (MySQL: engine, charset, binary collation),
  appended to every data table.
* A table with a ``session_id`` column belongs to a session: it is deleted with it and,
  unless ``exported=False`` (runtime state such as leases), carried by its archive.

Adding a table is adding a ``Table`` to ``TABLES`` (and, for existing databases, a
migration step in ``migrations.py`` plus a ``SCHEMA_VERSION`` bump).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from power_loop.contracts.errors import StoreConfigError
from power_loop.store.port import Dialect

SCHEMA_VERSION = 2
"""The schema version this code reads and writes; stamped in ``<prefix>schema_migrations``."""

LogicalType = Literal["key", "text", "int", "bigint", "json"]
"""``key`` is indexable text (``VARCHAR(191)`` on MySQL); ``json`` is JSON stored as text."""

LOGICAL_TYPES: tuple[LogicalType, ...] = ("key", "text", "int", "bigint", "json")


# Columns, indexes and tables are declared once, below, and compared by identity
# (``eq=False``: no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Column:
    """One column of a logical table."""

    name: str
    type: LogicalType
    nullable: bool = False
    default: int | None = None
    """A numeric default only: MySQL refuses defaults on text columns."""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Index:
    """A secondary index; its SQL name is ``<prefix><table>_<suffix>``."""

    suffix: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Table:
    """A logical table: its unprefixed name, columns, primary key and indexes."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    exported: bool = True
    """Whether ``export_session`` carries this table's rows (``False`` for runtime state)."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _col(name: str, type_: LogicalType, *, nullable: bool = False, default: int | None = None) -> Column:
    return Column(name=name, type=type_, nullable=nullable, default=default)


SESSIONS = Table(
    name="sessions",
    columns=(
        _col("session_id", "key"),
        _col("created_at", "bigint"),
        _col("updated_at", "bigint"),
        _col("system_prompt", "text", nullable=True),
        _col("model", "text", nullable=True),
        _col("config", "json"),
        _col("status", "key"),
        _col("kind", "key"),
        _col("parent_session_id", "key", nullable=True),
        _col("spawn_tool_call_id", "text", nullable=True),
        _col("spawn_depth", "int", default=0),
        _col("lifecycle", "key", nullable=True),
        _col("metadata", "json"),
        _col("next_seq", "bigint", default=1),
        _col("send_count", "int", default=0),
        _col("follow_up_seq", "bigint", default=0),
    ),
    primary_key=("session_id",),
    indexes=(Index(suffix="parent_idx", columns=("parent_session_id",)),),
)

MESSAGES = Table(
    name="messages",
    columns=(
        _col("session_id", "key"),
        _col("seq", "bigint"),
        _col("role", "key"),
        _col("name", "text", nullable=True),
        _col("content", "json"),
        _col("tool_calls", "json", nullable=True),
        _col("tool_call_id", "key", nullable=True),
        _col("round_index", "int", nullable=True),
        _col("send_index", "int", nullable=True),
        _col("state", "key"),
        _col("meta", "json"),
        _col("created_at", "bigint"),
    ),
    primary_key=("session_id", "seq"),
    indexes=(Index(suffix="state_idx", columns=("session_id", "state", "seq")),),
)

SESSION_STATS = Table(
    name="session_stats",
    columns=(
        _col("session_id", "key"),
        *(
            _col(counter, "bigint", default=0)
            for counter in (
                "sends", "rounds", "llm_calls", "tool_calls",
                "prompt_tokens", "completion_tokens", "total_tokens",
            )
        ),
        _col("first_send_at", "bigint", nullable=True),
        _col("last_send_at", "bigint", nullable=True),
        _col("updated_at", "bigint", nullable=True),
    ),
    primary_key=("session_id",),
    indexes=(Index(suffix="last_send_idx", columns=("last_send_at",)),),
)

FOLLOW_UPS = Table(
    name="follow_ups",
    columns=(
        _col("session_id", "key"),
        _col("follow_up_id", "bigint"),
        _col("content", "json"),
        _col("created_at", "bigint"),
    ),
    primary_key=("session_id", "follow_up_id"),
)

SESSION_LEASES = Table(
    name="session_leases",
    columns=(
        _col("session_id", "key"),
        _col("holder", "key"),
        _col("host", "text"),
        _col("pid", "int"),
        _col("epoch", "bigint"),
        _col("expires_at", "bigint"),
        _col("acquired_at", "bigint"),
    ),
    primary_key=("session_id",),
    exported=False,
)
"""One row per session ever leased (added in schema version 2); see ``leases.py``."""

TABLES: tuple[Table, ...] = (SESSIONS, MESSAGES, SESSION_STATS, FOLLOW_UPS, SESSION_LEASES)
"""Every data table, in creation order (the version table is separate: it is not data)."""

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

VERSION_TABLE = "schema_migrations"


def validate_table_prefix(table_prefix: str) -> str:
    """Return ``table_prefix`` if it is ``""`` or an identifier of at most 32 characters.

    The prefix is spliced into SQL as part of table names, so it must be an identifier.

    Raises:
        StoreConfigError: ``store.config_invalid`` — not a string or not an identifier.
    """
    if not isinstance(table_prefix, str):
        raise StoreConfigError(f"table prefix must be a string, got {type(table_prefix).__name__}")
    # An ASCII identifier of at most 32 characters is exactly [A-Za-z_][A-Za-z0-9_]{0,31}.
    if table_prefix and not (len(table_prefix) <= 32 and table_prefix.isascii() and table_prefix.isidentifier()):
        raise StoreConfigError(
            f"table prefix {table_prefix!r} is not an identifier: use letters, digits and '_'"
            " (at most 32, not starting with a digit)"
        )
    return table_prefix


def version_table_ddl(table_prefix: str) -> str:
    """The version table; identical on every engine (a portable ``CHECK`` keeps one row)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table_prefix}{VERSION_TABLE} "
        "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )


def stamp_sql(dialect: Dialect, table_prefix: str, version: int = SCHEMA_VERSION) -> str:
    """Insert-or-ignore of the version row, with literal values (a script needs no parameters)."""
    sql = dialect.upsert(f"{table_prefix}{VERSION_TABLE}", ("id", "version"), ("id",), ())
    # The upsert has exactly two placeholders, the VALUES of (id, version); table names
    # are validated identifiers, so no other '?' can occur.
    return sql.replace("?", "1", 1).replace("?", str(int(version)), 1)


def create_table_sql(dialect: Dialect, table: Table, table_prefix: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one logical table."""
    parts: list[str] = []
    for col in table.columns:
        spec = f"{col.name} {dialect.column_type(col.type)}"
        spec += " NULL" if col.nullable else " NOT NULL"
        if col.default is not None:
            spec += f" DEFAULT {int(col.default)}"
        parts.append(spec)
    parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    if _inline_indexes(dialect):
        parts.extend(
            f"INDEX {index_name(table, ix, table_prefix)} ({', '.join(ix.columns)})" for ix in table.indexes
        )
    options = str(getattr(dialect, "table_options", ""))
    return f"CREATE TABLE IF NOT EXISTS {table_prefix}{table.name} ({', '.join(parts)}){options}"


def index_name(table: Table, index: Index, table_prefix: str) -> str:
    return f"{table_prefix}{table.name}_{index.suffix}"


def ddl(dialect: Dialect, table_prefix: str, *, tables: Sequence[Table] = TABLES,
        version: int = SCHEMA_VERSION) -> list[str]:
    """The complete, idempotent provisioning script for ``dialect`` and ``table_prefix``.

    Args:
        dialect: Any ``Dialect``; only ``column_type`` and ``upsert`` are used.
        table_prefix: A validated prefix (see ``dsn.validate_table_prefix``).
        tables: The data tables to create (tests build older schemas with a subset).
        version: The version the stamp writes.

    Returns:
        Statements without trailing ``;``: the version table, every data table and
        index, then the version stamp.
    """
    statements = [version_table_ddl(table_prefix)]
    for table in tables:
        statements.extend(table_ddl(dialect, table, table_prefix))
    statements.append(stamp_sql(dialect, table_prefix, version))
    return statements


def table_ddl(dialect: Dialect, table: Table, table_prefix: str) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` for ``table`` and, unless inlined, its indexes."""
    statements = [create_table_sql(dialect, table, table_prefix)]
    if not _inline_indexes(dialect):
        statements.extend(
            f"CREATE INDEX IF NOT EXISTS {index_name(table, ix, table_prefix)} "
            f"ON {table_prefix}{table.name} ({', '.join(ix.columns)})"
            for ix in table.indexes
        )
    return statements


def _inline_indexes(dialect: Dialect) -> bool:
    # An optional capability rather than a Protocol member, so a dialect written
    # elsewhere stays a valid Dialect without knowing about it.
    return bool(getattr(dialect, "inline_indexes", False))


# -- dialect registry -------------------------------------------------------------------

_DIALECTS: dict[str, tuple[str, str]] = {
    "sqlite": ("power_loop.store.dialects.sqlite", "SQLiteDialect"),
    "postgres": ("power_loop.store.dialects.postgres", "PostgresDialect"),
    "mysql": ("power_loop.store.dialects.mysql", "MySQLDialect"),
}
"""Dialect name -> (module, class). A dialect module imports no driver, so loading it is cheap."""

_ALIASES = {"postgresql": "postgres", "mariadb": "mysql", "sqlite3": "sqlite"}


def dialect_for(name: str) -> Dialect:
    """The ``Dialect`` registered under ``name`` (``postgresql``/``mariadb`` are aliases).

    Raises:
        StoreConfigError: ``store.config_invalid`` — unknown dialect.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    entry = _DIALECTS.get(key)
    if entry is None:
        raise StoreConfigError(f"unknown dialect {name!r}: use one of {', '.join(_DIALECTS)}")
    module_name, class_name = entry
    dialect: Dialect = getattr(importlib.import_module(module_name), class_name)()
    return dialect


def ddl_script(dialect_name: str, table_prefix: str) -> list[str]:
    """The provisioning script for ``python -m power_loop db ddl --dialect D --table-prefix P``.

    Args:
        dialect_name: ``sqlite``, ``postgres``/``postgresql`` or ``mysql``/``mariadb``.
        table_prefix: ``""`` or an identifier of at most 32 characters.

    Returns:
        The statements of ``ddl`` (no trailing ``;``).

    Raises:
        StoreConfigError: ``store.config_invalid`` — bad prefix or unknown dialect.

    Example:
        >>> ddl_script("sqlite", "app_")[0].startswith("CREATE TABLE IF NOT EXISTS app_schema_migrations")
        True
    """
    validate_table_prefix(table_prefix)
    return ddl(dialect_for(dialect_name), table_prefix)
