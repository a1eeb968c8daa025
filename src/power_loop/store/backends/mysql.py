"""The MySQL/MariaDB backend: ``aiomysql`` (extra ``mysql``) behind the async ``Database`` port.

A connection pool (``pool_min``..``pool_max``, default 1..10; DSN query options) serves
every call. Connections are utf8mb4, ``sql_mode=TRADITIONAL`` (strict), ``READ
COMMITTED`` and ``CLIENT_FOUND_ROWS`` (an ``UPDATE`` reports matched rows, which the
fences count). Invariants:

* Autocommit is on at the connection level, so a lone read is its own transaction and
  always sees the last commit (with autocommit off, InnoDB would pin the first read's
  snapshot on the pooled connection and later reads would be stale). Every ``write``
  batch and ``transaction()`` is an explicit ``BEGIN`` … ``COMMIT`` on one connection.
* An ``expect_rows`` mismatch rolls the batch back and raises ``WriteConflict``; a
  deadlock (1213) rolls back too and the batch is retried whole (at most
  ``_ATTEMPTS`` times).
* A connection that was cancelled mid-call or lost is closed, never returned to the
  pool half-read; the server rolls back whatever it had open.
* ``connect`` returns or fails within the connect timeout (default 10 s): an
  unreachable server, refused credentials or a missing database is a
  ``StoreConnectError`` naming ``host:port`` (never the password); every other driver
  error is a ``StoreError``, chained with ``from``.
* No maintenance capability: InnoDB purges deleted rows itself; ``OPTIMIZE TABLE`` and
  backups (``mariadb-dump``) are operator tasks — ``SessionStore.vacuum/checkpoint/backup``
  are no-ops here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from power_loop.contracts.errors import StoreConnectError, StoreError
from power_loop.store.backends.endpoint import Endpoint, import_driver, parse_endpoint
from power_loop.store.dialects.mysql import MySQLDialect
from power_loop.store.port import (
    Database,
    DBCounters,
    Dialect,
    Params,
    Row,
    Stmt,
    Transaction,
    WriteConflict,
    check_fence,
)

if TYPE_CHECKING:
    from power_loop.store.dsn import ParsedDSN

_ATTEMPTS = 3
_CLOSE_TIMEOUT_S = 10.0
_DEADLOCK = 1213
_CONNECTION_CODES = frozenset({2002, 2003, 2005, 2006, 2013, 2055})
"""Client errors meaning the server is unreachable or the connection is gone."""
_FOUND_ROWS = 2  # pymysql.constants.CLIENT.FOUND_ROWS


def _code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _connect_error(exc: BaseException, ep: Endpoint) -> StoreConnectError:
    where = f"MySQL at {ep.address}"
    code = _code(exc)
    if code == 1045:
        return StoreConnectError(
            f"{where}: authentication failed for user {ep.user!r} (check the DSN password)"
        )
    if code == 1044:
        return StoreConnectError(f"{where}: user {ep.user!r} may not use database {ep.database!r}")
    if code == 1049:
        return StoreConnectError(f"{where}: database {ep.database!r} does not exist (create it first)")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return StoreConnectError(
            f"cannot connect to {where}: no answer within {ep.connect_timeout_s:g} s (connect_timeout)"
        )
    detail = exc.args[1] if code is not None and len(exc.args) > 1 else str(exc)
    return StoreConnectError(f"cannot connect to {where}: {ep.scrub(str(detail)) or type(exc).__name__}")


def _quiet_cursor(driver: ModuleType) -> type:
    """A cursor class that does not fetch warnings after each statement.

    aiomysql's default cursor answers any warning (``IF NOT EXISTS`` notes, ``INSERT
    IGNORE`` duplicates — expected here) with an extra ``SHOW WARNINGS`` round trip and a
    Python ``Warning``; the store reads affected-row counts instead.
    """

    class QuietCursor(driver.Cursor):  # type: ignore[misc,name-defined]  # untyped driver class
        async def _show_warnings(self, conn: Any) -> None:
            return None

    return QuietCursor


class MySQLDatabase:
    """``Database`` over an aiomysql pool; build it with ``await connect(parsed_dsn)``."""

    def __init__(self, pool: Any, endpoint: Endpoint, driver: ModuleType) -> None:
        self.dialect: Dialect = MySQLDialect()
        self.counters = DBCounters()
        self.endpoint = endpoint
        self._pool = pool  # aiomysql.Pool: the driver is untyped
        self._driver = driver
        self._closed = False

    def _is_connection_error(self, exc: BaseException) -> bool:
        return (isinstance(exc, (OSError, asyncio.TimeoutError, self._driver.InterfaceError))
                or _code(exc) in _CONNECTION_CODES)

    def _translate(self, exc: Exception) -> StoreError:
        text = self.endpoint.scrub(str(exc))
        if self._is_connection_error(exc):
            return StoreConnectError(f"lost the connection to MySQL at {self.endpoint.address}: {text}")
        return StoreError(f"MySQL error at {self.endpoint.address}: {text}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"MySQL store at {self.endpoint.address} is closed")

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; closed instead of reused when a call on it was cut short."""
        self._check_open()
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise self._translate(exc) from exc
        try:
            yield conn
        except BaseException as exc:
            cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ is not None else exc
            if not isinstance(exc, Exception) or self._is_connection_error(cause):
                conn.close()  # cancelled mid-protocol or lost: the server rolls back
            raise
        finally:
            self._pool.release(conn)

    async def _read(self, sql: str, params: Params, one: bool) -> Any:
        self.counters.reads += 1
        self.counters.statements += 1
        async with self._connection() as conn:
            try:
                async with conn.cursor() as cur:
                    await cur.execute(sql, tuple(params))
                    return await (cur.fetchone() if one else cur.fetchall())
            except Exception as exc:
                raise self._translate(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """One row of a read, or ``None``."""
        row: Row | None = await self._read(sql, params, True)
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read."""
        return list(await self._read(sql, params, False))

    async def write(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run ``stmts`` in one transaction; retried whole on a deadlock.

        Raises:
            WriteConflict: ``store.write_conflict`` — an ``expect_rows`` mismatch (rolled back).
            StoreError: ``store.error`` — MySQL failed (rolled back).
        """
        self._check_open()
        for attempt in range(_ATTEMPTS):
            try:
                counts = await self._write_once(stmts)
            except WriteConflict:
                raise
            except Exception as exc:
                if _code(exc) == _DEADLOCK and attempt < _ATTEMPTS - 1:
                    await asyncio.sleep(0.005 * (attempt + 1))
                    continue
                raise self._translate(exc) from exc
            self.counters.commits += 1
            self.counters.statements += len(stmts)
            return counts
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _write_once(self, stmts: Sequence[Stmt]) -> list[int]:
        async with self._connection() as conn:
            await conn.begin()
            try:
                counts: list[int] = []
                async with conn.cursor() as cur:
                    for stmt in stmts:
                        n = await cur.execute(stmt.sql, tuple(stmt.params))
                        check_fence(stmt, n)
                        counts.append(n)
                await conn.commit()
            except Exception as exc:
                if not self._is_connection_error(exc):
                    await conn.rollback()
                raise
        return counts

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MySQLTransaction]:
        """An interactive transaction on one pooled connection (``READ COMMITTED``).

        Committed on clean exit, rolled back when the block raises (or is cancelled).
        Statements that commit implicitly (DDL) end it early, as MySQL always does.
        """
        async with self._connection() as conn:
            tx = _MySQLTransaction(self, conn)
            try:
                await conn.begin()
                yield tx
                tx.is_open = False
                await conn.commit()
            except Exception as exc:
                tx.is_open = False
                if not self._is_connection_error(exc):
                    await conn.rollback()
                if isinstance(exc, self._driver.Error):
                    raise self._translate(exc) from exc
                raise
            finally:
                tx.is_open = False
        self.counters.commits += 1

    async def close(self) -> None:
        """Close the pool (waiting at most 10 s for borrowed connections); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        try:
            await asyncio.wait_for(self._pool.wait_closed(), _CLOSE_TIMEOUT_S)
        except Exception:  # a borrowed connection never came back, or the server is gone
            self._pool.terminate()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"MySQLDatabase({self.endpoint.address}/{self.endpoint.database or ''}{state})"


class _MySQLTransaction:
    """``Transaction`` on one connection; valid only inside its ``async with``."""

    __slots__ = ("_conn", "_db", "is_open")

    def __init__(self, db: MySQLDatabase, conn: Any) -> None:
        self._db = db
        self._conn = conn
        self.is_open = True

    async def _run(self, sql: str, params: Params, fetch: int) -> Any:
        """``fetch``: 0 → affected rows, 1 → one row, 2 → all rows."""
        if not self.is_open:
            raise StoreError("transaction already finished: use it only inside its 'async with' block")
        self._db.counters.statements += 1
        try:
            async with self._conn.cursor() as cur:
                n = await cur.execute(sql, tuple(params))
                if fetch == 0:
                    return n
                return await (cur.fetchone() if fetch == 1 else cur.fetchall())
        except Exception as exc:
            raise self._db._translate(exc) from exc

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the affected (with ``FOUND_ROWS``: matched) row count."""
        n: int = await self._run(sql, params, 0)
        return n

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a read inside the transaction, or ``None``."""
        row: Row | None = await self._run(sql, params, 1)
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read inside the transaction."""
        return list(await self._run(sql, params, 2))


async def connect(dsn: ParsedDSN) -> MySQLDatabase:
    """Open a pool on the server a parsed ``mysql`` DSN names (``open_store``'s entry point).

    Raises:
        MissingExtraError: ``extra.missing`` — aiomysql is not installed (extra ``mysql``).
        StoreConfigError: ``store.config_invalid`` — a malformed URL.
        StoreConnectError: ``store.connect_failed`` — unreachable, refused, or no such database.
    """
    driver = import_driver("aiomysql", extra="mysql", feature="the MySQL/MariaDB store")
    ep = parse_endpoint("mysql", dsn.url)
    try:
        pool = await asyncio.wait_for(
            driver.create_pool(
                host=ep.host, port=ep.port, user=ep.user or "", password=ep.password or "", db=ep.database,
                unix_socket=ep.options.get("unix_socket"), minsize=ep.pool_min, maxsize=ep.pool_max,
                autocommit=True, charset="utf8mb4", sql_mode="TRADITIONAL", client_flag=_FOUND_ROWS,
                init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                connect_timeout=ep.connect_timeout_s, pool_recycle=3600, cursorclass=_quiet_cursor(driver),
            ),
            ep.connect_timeout_s,  # aiomysql's own timeout covers the TCP connect, not the handshake
        )
    except Exception as exc:
        raise _connect_error(exc, ep) from ep.safe_cause(exc)
    return MySQLDatabase(pool, ep, driver)


if TYPE_CHECKING:  # mypy proves the structural conformance the rest of the store relies on

    def _is_database(db: MySQLDatabase) -> Database:
        return db

    def _is_transaction(tx: _MySQLTransaction) -> Transaction:
        return tx
