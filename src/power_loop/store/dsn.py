"""DSNs and ``open_store``: from one connection string to a provisioned ``SessionStore``.

Invariants: every argument is validated before any connection is made or file is
created, so bad input leaves nothing behind; a backend is a module
``power_loop.store.backends.<name>`` exposing ``async connect(ParsedDSN) -> Database``,
imported only when a DSN names it — adding a backend is adding that module. Server DSNs
may hold a password: they never appear in an error message or a ``repr``.

Grammar (a ``+driver`` suffix on the scheme is accepted and ignored)::

    :memory:  |  path/to/file.db                        SQLite
    sqlite://  (memory)  |  sqlite:///rel.db  |  sqlite:////abs.db
    postgresql://user:pass@host:port/db  |  postgres://…    PostgreSQL (extra ``postgres``)
    mysql://user:pass@host:port/db  |  mariadb://…         MySQL / MariaDB (extra ``mysql``)

Server DSNs take ``?connect_timeout=10&pool_min=1&pool_max=10`` (and MySQL
``unix_socket=``); see ``backends/endpoint.py``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from power_loop.contracts.errors import StoreConfigError, StoreSchemaError
from power_loop.store.port import Database
from power_loop.store.rows import SchemaPolicy
from power_loop.store.schema import ddl, dialect_for, validate_table_prefix
from power_loop.store.session_store import SessionStore

__all__ = [
    "DEFAULT_DB_PATH", "MAX_SPAWN_DEPTH", "ParsedDSN", "open_store", "parse_dsn", "parse_schema_policy",
    "validate_table_prefix",
]

DEFAULT_DB_PATH = "./power_loop_sessions.db"
MAX_SPAWN_DEPTH = 3
MEMORY = ":memory:"

Backend = Literal["sqlite", "postgres", "mysql"]

_SCHEMES: dict[str, Backend] = {
    "sqlite": "sqlite", "sqlite3": "sqlite",
    "postgresql": "postgres", "postgres": "postgres",
    "mysql": "mysql", "mariadb": "mysql",
}
_ACCEPTED = (
    "a file path, ':memory:', sqlite:///rel.db, sqlite:////abs.db, sqlite://,"
    " postgresql://…, postgres://…, mysql://… or mariadb://…"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedDSN:
    """A validated DSN: which backend, and what it needs to connect."""

    backend: Backend
    """``"sqlite"``, ``"postgres"`` or ``"mysql"`` (MariaDB included)."""
    path: str = ""
    """SQLite only: the file path, or ``":memory:"``."""
    url: str = field(default="", repr=False)
    """Servers only: the DSN with any ``+driver`` removed and the scheme normalised
    (``postgresql://``, ``mysql://``). May contain a password, hence not in ``repr``."""
    driver: str | None = None
    """The ignored ``+driver`` suffix, if one was given."""

    @property
    def is_memory(self) -> bool:
        return self.backend == "sqlite" and self.path == MEMORY

    @property
    def redacted(self) -> str:
        """The DSN without credentials, for messages and logs."""
        if self.backend == "sqlite":
            return self.path
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


def parse_dsn(dsn: str) -> ParsedDSN:
    """Parse and validate ``dsn`` (see the module docstring for the grammar).

    Args:
        dsn: A SQLite path, ``:memory:``, or a ``sqlite``/``postgresql``/``mysql`` URL.

    Returns:
        The parsed DSN; nothing is opened.

    Raises:
        StoreConfigError: ``store.config_invalid`` — empty DSN, unknown scheme, a
            SQLite URL with a host or query string, or a server URL with a bad port,
            option, or (MySQL) no database.

    Example:
        >>> parse_dsn("sqlite:////var/lib/app.db").path
        '/var/lib/app.db'
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise StoreConfigError(f"DSN must be a non-empty string, got {dsn!r}: use {_ACCEPTED}")
    if "://" not in dsn:
        return ParsedDSN(backend="sqlite", path=dsn)
    scheme, _, rest = dsn.partition("://")
    base, _, driver = scheme.lower().partition("+")
    backend = _SCHEMES.get(base)
    if backend is None:
        raise StoreConfigError(f"unsupported DSN scheme {scheme!r}: use {_ACCEPTED}")
    if backend == "sqlite":
        return ParsedDSN(backend="sqlite", path=_sqlite_path(rest), driver=driver or None)
    # Only server DSNs need the endpoint parser (and urllib): SQLite users never load it.
    from power_loop.store.backends.endpoint import parse_endpoint

    normal = "postgresql" if backend == "postgres" else "mysql"
    url = f"{normal}://{rest}"
    parse_endpoint(backend, url)  # validates port, database and options; never echoes the password
    return ParsedDSN(backend=backend, url=url, driver=driver or None)


def _sqlite_path(rest: str) -> str:
    if rest == "" or rest == "/" + MEMORY:
        return MEMORY
    if not rest.startswith("/"):
        raise StoreConfigError(
            f"SQLite URL 'sqlite://{rest}' names a host: use sqlite:///relative.db or sqlite:////absolute.db"
        )
    if "?" in rest:
        raise StoreConfigError("SQLite URLs take no query parameters: pass a plain sqlite:///path.db")
    path = rest[1:]
    if not path:
        raise StoreConfigError("SQLite URL 'sqlite:///' has no path: use sqlite:///file.db or sqlite://")
    return path


def parse_schema_policy(schema: SchemaPolicy | str | None) -> SchemaPolicy:
    """``None`` → ``AUTO_CREATE``; a ``SchemaPolicy`` or its value string as is.

    Raises:
        StoreConfigError: ``store.config_invalid`` — anything else.
    """
    if schema is None:
        return SchemaPolicy.AUTO_CREATE
    if isinstance(schema, SchemaPolicy):
        return schema
    if isinstance(schema, str):
        try:
            return SchemaPolicy(schema.lower())
        except ValueError:
            pass
    accepted = ", ".join(repr(p.value) for p in SchemaPolicy)
    raise StoreConfigError(f"schema policy {schema!r} is unknown: use {accepted} or a SchemaPolicy")


def _check_spawn_depth(max_spawn_depth: object) -> str | None:
    if isinstance(max_spawn_depth, bool) or not isinstance(max_spawn_depth, int) or max_spawn_depth < 0:
        return f"max_spawn_depth must be an int >= 0, got {max_spawn_depth!r}"
    return None


def _backend_connect(parsed: ParsedDSN) -> Callable[[ParsedDSN], Awaitable[Database]]:
    # Backend modules import their driver lazily, inside ``connect`` (MissingExtraError
    # there names the extra), so importing one is always cheap and always succeeds.
    module = importlib.import_module(f"power_loop.store.backends.{parsed.backend}")
    # A module attribute is Any to mypy; every backend module defines this signature.
    connect: Callable[[ParsedDSN], Awaitable[Database]] = module.connect
    return connect


def _refuse_missing_sqlite_file(parsed: ParsedDSN, table_prefix: str) -> None:
    # VERIFY creates nothing: sqlite3.connect would create the file, so check first
    # (one stat call; not worth a thread hop).
    if parsed.backend == "sqlite" and not parsed.is_memory and not os.path.exists(parsed.path):
        raise StoreSchemaError(
            f"SQLite database {parsed.path!r} does not exist and schema='verify' creates nothing:"
            " provision it with this script or open it with schema='auto_create'",
            ddl=ddl(dialect_for("sqlite"), table_prefix),
        )


async def open_store(
    dsn: str = MEMORY,
    *,
    max_spawn_depth: int = MAX_SPAWN_DEPTH,
    table_prefix: str = "pl_",
    schema: SchemaPolicy | str | None = None,
) -> SessionStore:
    """Open (and provision, per ``schema``) the store a DSN names.

    Args:
        dsn: See the module docstring; default an in-memory SQLite database.
        max_spawn_depth: Deepest sub-agent nesting ``create_session`` accepts.
        table_prefix: ``""`` or ``[A-Za-z_][A-Za-z0-9_]{0,31}``; prefixes in one database
            are fully isolated.
        schema: ``SchemaPolicy``, its value string, or ``None`` (``AUTO_CREATE``).

    Returns:
        An open ``SessionStore``; close it (``await store.close()`` or ``async with``).

    Raises:
        StoreConfigError: ``store.config_invalid`` — bad DSN, prefix, policy or depth
            (every problem named; nothing opened or created).
        StoreSchemaError: ``store.schema`` — VERIFY found a missing, incomplete or older
            schema (``.ddl`` provisions it), or the database is newer than this code.
        StoreConnectError: ``store.connect_failed`` — the database cannot be opened: an
            unreachable server or refused credentials (named by ``host:port``, never the
            password), within the connect timeout (DSN option ``connect_timeout``, 10 s).
        MissingExtraError: ``extra.missing`` — the DSN's driver is not installed.

    Example:
        >>> import asyncio
        >>> async def main() -> int:
        ...     async with await open_store(":memory:") as store:
        ...         return store.schema_version
        >>> asyncio.run(main())
        2
    """
    problems: list[str] = []
    parsed: ParsedDSN | None = None
    policy = SchemaPolicy.AUTO_CREATE
    try:
        validate_table_prefix(table_prefix)
    except StoreConfigError as exc:
        problems.append(str(exc))
    try:
        policy = parse_schema_policy(schema)
    except StoreConfigError as exc:
        problems.append(str(exc))
    try:
        parsed = parse_dsn(dsn)
    except StoreConfigError as exc:
        problems.append(str(exc))
    depth_problem = _check_spawn_depth(max_spawn_depth)
    if depth_problem:
        problems.append(depth_problem)
    if problems or parsed is None:
        raise StoreConfigError("; ".join(problems))
    connect = _backend_connect(parsed)
    if policy is SchemaPolicy.VERIFY:
        _refuse_missing_sqlite_file(parsed, table_prefix)
    db = await connect(parsed)
    try:
        from power_loop.store.migrations import ensure_schema  # opening a store only

        version = await ensure_schema(db, table_prefix, policy)
    except BaseException:
        await db.close()
        raise
    return SessionStore(
        db, table_prefix=table_prefix, schema_version=version, max_spawn_depth=max_spawn_depth
    )
