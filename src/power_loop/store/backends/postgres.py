"""The PostgreSQL backend: ``asyncpg`` (extra ``postgres``) behind the async ``Database`` port.

A connection pool (``pool_min``..``pool_max``, default 1..10; DSN query options) serves
every call. Invariants:

* A ``write`` batch is one transaction on one pooled connection: ``BEGIN``, each
  statement (prepared and cached by asyncpg), ``COMMIT``; an ``expect_rows`` mismatch
  rolls it back and raises ``WriteConflict``. A deadlock or serialization failure rolls
  back too and the batch is retried whole (at most ``_ATTEMPTS`` times): nothing of a
  failed attempt survives, so a retry is safe.
* Reads run on any pooled connection in autocommit mode: each sees the last commit.
* ``connect`` returns or fails within the connect timeout (default 10 s, DSN option
  ``connect_timeout``): an unreachable server, refused credentials or a missing database
  is a ``StoreConnectError`` naming ``host:port`` (never the password); every other
  driver error is a ``StoreError``, chained with ``from``.
* ``close()`` waits (bounded) for borrowed connections, then terminates; idempotent.
* No maintenance capability: autovacuum reclaims space, the WAL is the server's, and a
  backup is ``pg_dump``'s job — ``SessionStore.vacuum/checkpoint/backup`` are no-ops here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from power_loop.contracts.errors import StoreConnectError, StoreError
from power_loop.store.backends.endpoint import Endpoint, import_driver, parse_endpoint
from power_loop.store.dialects.postgres import PostgresDialect
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
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected: the transaction was rolled back whole."""


def _rowcount(status: str) -> int:
    """The row count of a command tag (``"UPDATE 3"``, ``"INSERT 0 1"``), else 0."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


def _connect_error(exc: BaseException, ep: Endpoint, pg: ModuleType) -> StoreConnectError:
    where = f"PostgreSQL at {ep.address}"
    if isinstance(exc, pg.InvalidPasswordError):
        return StoreConnectError(
            f"{where}: authentication failed for user {ep.user!r} (check the DSN password)"
        )
    if isinstance(exc, pg.InvalidAuthorizationSpecificationError):
        return StoreConnectError(f"{where} refused user {ep.user!r}: {ep.scrub(str(exc))}")
    if isinstance(exc, pg.InvalidCatalogNameError):
        return StoreConnectError(f"{where}: database {ep.database!r} does not exist (create it first)")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return StoreConnectError(
            f"cannot connect to {where}: no answer within {ep.connect_timeout_s:g} s (connect_timeout)"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or ep.scrub(str(exc)) or type(exc).__name__
        return StoreConnectError(f"cannot connect to {where}: {reason}")
    return StoreConnectError(f"cannot connect to {where}: {type(exc).__name__}: {ep.scrub(str(exc))}")


class PostgresDatabase:
    """``Database`` over an asyncpg pool; build it with ``await connect(parsed_dsn)``."""

    def __init__(self, pool: Any, endpoint: Endpoint, driver: ModuleType) -> None:
        self.dialect: Dialect = PostgresDialect()
        self.counters = DBCounters()
        self.endpoint = endpoint
        self._pool = pool  # asyncpg.Pool: the driver is untyped
        self._pg = driver
        self._closed = False

    def _translate(self, exc: Exception) -> StoreError:
        where, text = self.endpoint.address, self.endpoint.scrub(str(exc))
        if isinstance(exc, (OSError, asyncio.TimeoutError, self._pg.PostgresConnectionError,
                            self._pg.exceptions.ConnectionDoesNotExistError)):
            return StoreConnectError(f"lost the connection to PostgreSQL at {where}: {text}")
        state = getattr(exc, "sqlstate", None)
        code = f" [{state}]" if state else ""
        return StoreError(f"PostgreSQL error{code} at {where}: {text}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"PostgreSQL store at {self.endpoint.address} is closed")

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """One row of a read, or ``None``."""
        self._check_open()
        self.counters.reads += 1
        self.counters.statements += 1
        try:
            record = await self._pool.fetchrow(sql, *params)
        except Exception as exc:
            raise self._translate(exc) from exc
        return None if record is None else tuple(record)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read."""
        self._check_open()
        self.counters.reads += 1
        self.counters.statements += 1
        try:
            records = await self._pool.fetch(sql, *params)
        except Exception as exc:
            raise self._translate(exc) from exc
        return [tuple(r) for r in records]

    async def write(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run ``stmts`` in one transaction; retried whole on a deadlock or serialization failure.

        Raises:
            WriteConflict: ``store.write_conflict`` — an ``expect_rows`` mismatch (rolled back).
            StoreError: ``store.error`` — PostgreSQL failed (rolled back).
        """
        self._check_open()
        for attempt in range(_ATTEMPTS):
            try:
                counts = await self._write_once(stmts)
            except WriteConflict:
                raise
            except Exception as exc:
                if getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES and attempt < _ATTEMPTS - 1:
                    await asyncio.sleep(0.005 * (attempt + 1))
                    continue
                raise self._translate(exc) from exc
            self.counters.commits += 1
            self.counters.statements += len(stmts)
            return counts
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _write_once(self, stmts: Sequence[Stmt]) -> list[int]:
        async with self._pool.acquire() as conn, conn.transaction():
            counts: list[int] = []
            for stmt in stmts:
                n = _rowcount(await conn.execute(stmt.sql, *stmt.params))
                check_fence(stmt, n)
                counts.append(n)
        return counts

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTransaction]:
        """An interactive transaction on one pooled connection (``READ COMMITTED``).

        Committed on clean exit, rolled back when the block raises (or is cancelled).
        """
        self._check_open()
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise self._translate(exc) from exc
        try:
            tx = _PostgresTransaction(self, conn)
            try:
                async with conn.transaction():
                    yield tx
                    tx.is_open = False
            except Exception as exc:
                if isinstance(exc, (self._pg.PostgresError, self._pg.InterfaceError, OSError)):
                    raise self._translate(exc) from exc
                raise
            finally:
                tx.is_open = False
        finally:
            await self._pool.release(conn)
        self.counters.commits += 1

    async def close(self) -> None:
        """Close the pool (waiting at most 10 s for borrowed connections); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._pool.close(), _CLOSE_TIMEOUT_S)
        except Exception:  # a borrowed connection never came back, or the server is gone
            self._pool.terminate()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"PostgresDatabase({self.endpoint.address}/{self.endpoint.database or ''}{state})"


class _PostgresTransaction:
    """``Transaction`` on one connection; valid only inside its ``async with``."""

    __slots__ = ("_conn", "_db", "is_open")

    def __init__(self, db: PostgresDatabase, conn: Any) -> None:
        self._db = db
        self._conn = conn
        self.is_open = True

    def _check(self) -> None:
        if not self.is_open:
            raise StoreError("transaction already finished: use it only inside its 'async with' block")
        self._db.counters.statements += 1

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the affected row count."""
        self._check()
        try:
            return _rowcount(await self._conn.execute(sql, *params))
        except Exception as exc:
            raise self._db._translate(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a read inside the transaction, or ``None``."""
        self._check()
        try:
            record = await self._conn.fetchrow(sql, *params)
        except Exception as exc:
            raise self._db._translate(exc) from exc
        return None if record is None else tuple(record)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read inside the transaction."""
        self._check()
        try:
            records = await self._conn.fetch(sql, *params)
        except Exception as exc:
            raise self._db._translate(exc) from exc
        return [tuple(r) for r in records]


async def connect(dsn: ParsedDSN) -> PostgresDatabase:
    """Open a pool on the server a parsed ``postgresql`` DSN names (``open_store``'s entry point).

    Raises:
        MissingExtraError: ``extra.missing`` — asyncpg is not installed (extra ``postgres``).
        StoreConfigError: ``store.config_invalid`` — a malformed URL.
        StoreConnectError: ``store.connect_failed`` — unreachable, refused, or no such database.
    """
    pg = import_driver("asyncpg", extra="postgres", feature="the PostgreSQL store")
    ep = parse_endpoint("postgres", dsn.url)
    try:
        pool = await asyncio.wait_for(
            pg.create_pool(
                dsn=ep.driver_url, min_size=ep.pool_min, max_size=ep.pool_max, timeout=ep.connect_timeout_s,
                server_settings={"application_name": "power_loop"},
            ),
            ep.connect_timeout_s + 2,
        )
    except Exception as exc:
        raise _connect_error(exc, ep, pg) from ep.safe_cause(exc)
    return PostgresDatabase(pool, ep, pg)


if TYPE_CHECKING:  # mypy proves the structural conformance the rest of the store relies on

    def _is_database(db: PostgresDatabase) -> Database:
        return db

    def _is_transaction(tx: _PostgresTransaction) -> Transaction:
        return tx
