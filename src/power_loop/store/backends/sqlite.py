"""The SQLite backend: stdlib ``sqlite3`` behind the async ``Database`` port.

One writer connection lives on its own thread and a separate reader connection on
another, so the event loop never blocks and reads never wait behind writes (WAL lets
readers see the last commit while a write is in flight). Invariants:

* A ``write`` batch is ``BEGIN IMMEDIATE``, every statement, ``COMMIT``. When nothing is
  queued on the writer thread and no interactive transaction is open, it runs inline on
  the event loop's thread — pure CPU in WAL mode with ``synchronous=NORMAL`` (tens of
  microseconds, no fsync), which saves two thread hand-offs per commit. It never waits
  there: the writer connection has ``busy_timeout = 0``, so if another process holds the
  write lock the batch moves to the writer thread, which retries ``BEGIN IMMEDIATE``
  (sleeping on that thread) for up to ``busy_timeout_ms``. WAL checkpoints, the only
  writes that fsync, never run inline: auto-checkpointing is off on the writer and a
  PASSIVE checkpoint runs every ``CHECKPOINT_EVERY`` commits on a third connection with
  its own thread, so inline writes go on while it fsyncs (a checkpoint queued on the
  writer thread would push every write behind it onto that thread, and under concurrent
  load they would stay there).
  ``BEGIN IMMEDIATE`` takes the write lock up front, so writers in other processes
  serialise instead of failing mid-transaction.
* Group commit: a batch written while other tasks are ready to run in the same loop turn
  (concurrent sends) waits for the start of the next turn, and every batch queued by
  then commits in one transaction, each batch inside its own savepoint (atomic alone: a
  failing batch is rolled back and gets its error, the rest commit). Each ``write``
  still returns only once its batch is committed; a lone writer (nothing else ready)
  commits at once. Under concurrent load this shares one ``BEGIN``/``COMMIT`` and the
  WAL frames of shared pages among many batches. (Asyncio's ready queue is read through
  the private ``_ready`` attribute; event loops without it always commit at once.)
* Jobs on a thread run in submission order. An interactive ``transaction()`` holds
  ``_wlock`` from BEGIN to COMMIT; a ``write`` only waits for that lock when it is held,
  and anything it queued before the lock was taken finishes before BEGIN runs.
* ``:memory:`` has one connection (and thread) for both roles; there, reads also wait
  for an open interactive transaction, so they never see one half-applied.
* A cancelled caller does not cancel a job already queued: a write whose awaiting task
  is cancelled may still commit (as with any database driver). A batch waiting for a
  group commit whose writer is cancelled before the group starts is dropped unwritten.
* Every ``sqlite3.Error`` is raised as a ``StoreError`` (``StoreConnectError`` when the
  file cannot be opened), chained with ``from``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from power_loop.contracts.errors import InvalidArgumentError, StoreError
from power_loop.store.backends.job_thread import JobThread, stop_queues
from power_loop.store.backends.sqlite_batches import (
    Busy,
    Group,
    begin_immediate,
    rollback_quietly,
    settle,
    translate,
    write_batch,
    write_group,
)
from power_loop.store.dialects.sqlite import SQLiteDialect
from power_loop.store.port import (
    Database,
    DBCounters,
    Dialect,
    Params,
    Row,
    Stmt,
    Transaction,
)

if TYPE_CHECKING:
    from power_loop.store.dsn import ParsedDSN

MEMORY = ":memory:"
CHECKPOINT_EVERY = 200
"""Commits between two background PASSIVE checkpoints (the writer never auto-checkpoints)."""
CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")


def _ignore_outcome(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed background checkpoint is retried at the next one


class SQLiteDatabase:
    """``Database`` over one SQLite file (WAL) or an in-memory database.

    Build it with ``await SQLiteDatabase.open(path)``; ``close()`` when done.
    """

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.dialect: Dialect = SQLiteDialect()
        self.counters = DBCounters()
        self.busy_timeout_ms = busy_timeout_ms
        self.is_memory = path == MEMORY
        self._closed = False
        self._has_written = False
        """Whether anything was committed: ``close()`` only runs ``PRAGMA optimize`` then,
        so opening and closing a database (even one refused as too new) never writes to it."""
        self._wlock = asyncio.Lock()
        self._wbusy = 0
        """Jobs submitted to the writer thread and not finished: inline writes wait their turn."""
        self._inline_ok = not self.is_memory
        self._group: Group = []
        """Write batches waiting for the group commit scheduled at the next loop turn."""
        self._group_tasks: set[asyncio.Future[None]] = set()
        """Group commits waiting for the writer thread (another process's lock, a transaction)."""
        self._since_checkpoint = 0
        self._checkpoint_job: asyncio.Future[Any] | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._cconn: sqlite3.Connection | None = None
        """The background checkpointer's connection, opened by its first checkpoint."""
        self._writer = JobThread("power_loop-sqlite-writer")
        self._reader = self._writer if self.is_memory else JobThread("power_loop-sqlite-reader")
        self._checkpointer: JobThread | None = None
        queues = [self._writer.queue] if self.is_memory else [self._writer.queue, self._reader.queue]
        self._queues = queues
        """Every thread's queue (the checkpointer's joins when it starts), for the finalizer."""
        # Stops the threads if the database is garbage-collected without close().
        self._finalizer = weakref.finalize(self, stop_queues, queues)

    @classmethod
    async def open(cls, path: str, *, busy_timeout_ms: int = 10_000) -> SQLiteDatabase:
        """Open (creating if needed) the database at ``path``, or ``":memory:"``.

        Raises:
            StoreConnectError: ``store.connect_failed`` — the file cannot be opened.
            StoreError: ``store.error`` — any other SQLite failure.
        """
        db = cls(path, busy_timeout_ms=busy_timeout_ms)
        try:
            await db._wsubmit(db._open_writer)
            if not db.is_memory:
                await db._reader.submit(db._open_reader)
        except BaseException:
            await db.close()
            raise
        return db

    # -- jobs run on the worker threads --------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, cached_statements=256,
                check_same_thread=False,  # the writer connection also runs inline writes, never concurrently
            )
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return conn

    def _open_writer(self, _a: None, _b: None) -> None:
        conn = self._wconn = self._connect()
        try:
            # auto_vacuum takes effect only on an empty database, and setting it on an
            # existing one still writes its header: opening must never write.
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            if not self.is_memory:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on the checkpointer thread
                conn.execute("PRAGMA busy_timeout = 0")  # never wait inline: _begin retries on the thread
            else:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = OFF")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        if self.is_memory:
            self._rconn = conn

    def _open_reader(self, _a: None, _b: None) -> None:
        conn = self._rconn = self._connect()
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _fetchone_job(self, sql: str, params: Params) -> Row | None:
        assert self._rconn is not None
        try:
            cur = self._rconn.execute(sql, params)
            row: Row | None = cur.fetchone()
            cur.close()  # resets the statement: no read snapshot stays open
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return row

    def _fetchall_job(self, sql: str, params: Params) -> list[Row]:
        assert self._rconn is not None
        try:
            rows: list[Row] = self._rconn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return rows

    def _begin(self, conn: sqlite3.Connection, *, inline: bool) -> None:
        begin_immediate(conn, inline=inline, wait_s=0 if self.is_memory else self.busy_timeout_ms / 1000)

    def _write_job(self, stmts: Sequence[Stmt], inline: bool | None) -> list[int]:
        assert self._wconn is not None
        return write_batch(self._wconn, stmts, inline=bool(inline), wait_s=self.busy_timeout_ms / 1000,
                           path=self.path)

    def _group_job(self, batches: list[Sequence[Stmt]], inline: bool | None) -> list[list[int] | StoreError]:
        assert self._wconn is not None
        return write_group(self._wconn, batches, inline=bool(inline), wait_s=self.busy_timeout_ms / 1000,
                           path=self.path)

    def _begin_job(self, _a: None, _b: None) -> int:
        assert self._wconn is not None
        try:
            self._begin(self._wconn, inline=False)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return 0

    def _tx_exec_job(self, sql: str, params: Params) -> int:
        """A statement of an interactive transaction (BEGIN and COMMIT included)."""
        assert self._wconn is not None
        try:
            return self._wconn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _tx_fetch_job(self, sql: str, params: Params) -> list[Row]:
        assert self._wconn is not None
        try:
            rows: list[Row] = self._wconn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return rows

    def _rollback_job(self, _a: None, _b: None) -> None:
        assert self._wconn is not None
        rollback_quietly(self._wconn)

    def _background_checkpoint_job(self, _a: None, _b: None) -> None:
        """A PASSIVE checkpoint on the checkpointer's own connection (connected on first use)."""
        try:
            if self._cconn is None:
                self._cconn = self._connect()
            self._cconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _close_checkpointer_job(self, _a: None, _b: None) -> None:
        conn, self._cconn = self._cconn, None  # read here: a queued checkpoint may open it first
        self._close_job(conn, False)

    def _maintenance_job(self, sql: str, _b: None) -> list[Row]:
        assert self._wconn is not None
        try:
            rows: list[Row] = self._wconn.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return rows

    def _backup_job(self, dest_path: str, _b: None) -> None:
        assert self._wconn is not None
        try:
            dest = sqlite3.connect(dest_path)
            try:
                self._wconn.backup(dest)
            finally:
                dest.close()
        except sqlite3.Error as exc:
            raise translate(exc, dest_path) from exc

    def _close_job(self, conn: sqlite3.Connection | None, optimize: bool) -> None:
        if conn is None:
            return
        if optimize:
            with suppress(sqlite3.Error):  # best effort; the close below is what matters
                conn.execute("PRAGMA optimize")
        conn.close()

    # -- the Database port ---------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"SQLite database {self.path!r} is closed")

    async def _after_lock(self, thread: JobThread, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        """Run a job once ``_wlock`` is free (the slow path: a transaction or close is under way)."""
        self._flush_pending()
        async with self._wlock:
            self._check_open()  # close() may have stopped the threads while this task waited
            if thread is self._writer:
                return await self._wsubmit(fn, a, b)
            return await thread.submit(fn, a, b)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """One row of a read, or ``None``; runs on the reader thread."""
        if self._closed:
            self._check_open()
        counters = self.counters
        counters.reads += 1
        counters.statements += 1
        if self.is_memory and self._wlock.locked():
            row: Row | None = await self._after_lock(self._reader, self._fetchone_job, sql, params)
        else:
            row = await self._reader.submit(self._fetchone_job, sql, params)
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read; runs on the reader thread."""
        if self._closed:
            self._check_open()
        counters = self.counters
        counters.reads += 1
        counters.statements += 1
        if self.is_memory and self._wlock.locked():
            rows: list[Row] = await self._after_lock(self._reader, self._fetchall_job, sql, params)
        else:
            rows = await self._reader.submit(self._fetchall_job, sql, params)
        return rows

    async def write(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run ``stmts`` in one ``BEGIN IMMEDIATE`` transaction, in one hop to the writer.

        Raises:
            WriteConflict: ``store.write_conflict`` — an ``expect_rows`` mismatch (rolled back).
            StoreError: ``store.error`` — SQLite failed (rolled back).
        """
        if self._closed:
            self._check_open()
        if self._wlock.locked():
            counts: list[int] = await self._after_lock(self._writer, self._write_job, stmts, None)
        elif self._wbusy == 0 and self._inline_ok and self._wconn is not None:
            loop = asyncio.get_running_loop()
            if self._group or getattr(loop, "_ready", None):
                counts = await self._join_group(loop, stmts)
            else:
                try:
                    counts = self._write_job(stmts, True)
                except Busy:
                    counts = await self._wsubmit(self._write_job, stmts, False)
        else:
            counts = await self._wsubmit(self._write_job, stmts, False)
        counters = self.counters
        counters.commits += 1
        counters.statements += len(stmts)
        self._has_written = True
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._inline_ok:
            self._schedule_checkpoint()
        return counts

    def _join_group(self, loop: asyncio.AbstractEventLoop, stmts: Sequence[Stmt]) -> asyncio.Future[list[int]]:
        """Queue a batch for the group committed at the start of the next loop turn."""
        fut: asyncio.Future[list[int]] = loop.create_future()
        if not self._group:
            loop.call_soon(self._flush_group)
        self._group.append((stmts, fut))
        return fut

    def _flush_group(self) -> None:
        """Commit the queued batches: inline when the writer connection is free, else on its thread."""
        group, self._group = [entry for entry in self._group if not entry[1].done()], []
        if not group:  # close() flushed it already, or every writer was cancelled meanwhile
            return
        if self._closed:
            settle(group, StoreError(f"SQLite database {self.path!r} is closed"))
            return
        batches = [stmts for stmts, _ in group]
        if self._wlock.locked():  # not expected: every lock taker flushes the group first
            self._track(self._settle_when(group, self._after_lock(self._writer, self._group_job, batches, None)))
            return
        if self._wbusy or self._wconn is None:  # queued now, so it runs before any later job
            self._track(self._settle_when(group, self._wsubmit(self._group_job, batches, False)))
            return
        try:
            outcomes: list[list[int] | StoreError] = (
                self._group_job(batches, True) if len(batches) > 1 else [self._write_or_error(batches[0])])
        except Busy:  # another process holds the write lock: wait for it on the writer thread
            self._track(self._settle_when(group, self._wsubmit(self._group_job, batches, False)))
            return
        except BaseException as exc:
            settle(group, exc)
            return
        settle(group, outcomes)

    def _write_or_error(self, stmts: Sequence[Stmt]) -> list[int] | StoreError:
        try:
            return self._write_job(stmts, True)
        except StoreError as exc:
            return exc

    def _track(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._group_tasks.add(task)
        task.add_done_callback(self._group_tasks.discard)

    @staticmethod
    async def _settle_when(group: Group, job: Awaitable[list[list[int] | StoreError]]) -> None:
        try:
            outcomes = await job
        except BaseException as exc:
            settle(group, exc)
            return
        settle(group, outcomes)

    def _flush_pending(self) -> None:
        """Start the pending group commit now, before ``_wlock`` is taken: what was written
        before a transaction, a maintenance job or close() commits before it."""
        if self._group:
            self._flush_group()

    def _wsubmit(self, fn: Callable[[Any, Any], Any], a: Any = None, b: Any = None) -> asyncio.Future[Any]:
        """Queue a job on the writer thread, counted until the thread has finished it (not
        merely until its awaiting task gave up), so an inline write never shares the
        connection with a running job."""
        loop = asyncio.get_running_loop()
        done = self._writer_done

        def counted(x: Any, y: Any) -> Any:
            try:
                return fn(x, y)
            finally:
                with suppress(RuntimeError):  # the event loop closed meanwhile
                    loop.call_soon_threadsafe(done)

        self._wbusy += 1
        return self._writer.submit(counted, a, b)

    def _writer_done(self) -> None:
        self._wbusy -= 1

    def _schedule_checkpoint(self) -> None:
        """A PASSIVE checkpoint on the checkpointer thread (never inline: it may fsync).

        PASSIVE never waits for a lock and never blocks a writer, so the writer
        connection stays free for inline writes meanwhile.
        """
        if self._checkpoint_job is not None and not self._checkpoint_job.done():
            return
        self._since_checkpoint = 0
        if self._checkpointer is None:
            self._checkpointer = JobThread("power_loop-sqlite-checkpointer")
            self._queues.append(self._checkpointer.queue)
        job = self._checkpoint_job = self._checkpointer.submit(self._background_checkpoint_job)
        job.add_done_callback(_ignore_outcome)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTransaction]:
        """An interactive ``BEGIN IMMEDIATE`` transaction on the writer connection.

        Committed on clean exit, rolled back when the block raises (or is cancelled).
        """
        self._check_open()
        self._flush_pending()
        async with self._wlock:
            self._check_open()
            tx = _SQLiteTransaction(self)
            try:
                await self._wsubmit(self._begin_job)
                yield tx
                tx.is_open = False
                await self._wsubmit(self._tx_exec_job, "COMMIT", ())
            except BaseException:
                tx.is_open = False
                # Queued behind every job of this transaction (one thread, FIFO), so it
                # runs even if this task is cancelled again while awaiting it.
                await self._wsubmit(self._rollback_job)
                raise
            self.counters.commits += 1
            self._has_written = True

    async def close(self) -> None:
        """Close both connections and stop both threads; idempotent."""
        if self._closed:
            return
        self._flush_pending()  # batches written before close() still commit
        if self._group_tasks:
            await asyncio.gather(*self._group_tasks, return_exceptions=True)
        self._closed = True
        async with self._wlock:
            try:
                if self._checkpointer is not None:  # after a checkpoint still queued there
                    await self._checkpointer.submit(self._close_checkpointer_job)
                if not self.is_memory:
                    await self._reader.submit(self._close_job, self._rconn, False)
                await self._wsubmit(self._close_job, self._wconn, self._has_written)
            finally:
                self._wconn = self._rconn = self._cconn = None
                self._finalizer()

    # -- maintenance capabilities (see SessionStore.vacuum/checkpoint/backup) -------------
    async def vacuum(self, *, incremental: bool = True) -> None:
        """Reclaim free pages: ``PRAGMA incremental_vacuum`` or a full ``VACUUM``."""
        self._check_open()
        sql = "PRAGMA incremental_vacuum" if incremental else "VACUUM"
        await self._after_lock(self._writer, self._maintenance_job, sql, None)

    async def checkpoint(self, *, mode: str = "TRUNCATE") -> None:
        """Copy the WAL into the database file (``PASSIVE``/``FULL``/``RESTART``/``TRUNCATE``).

        Raises:
            InvalidArgumentError: ``invalid_argument`` — unknown mode.
        """
        upper = str(mode).upper()
        if upper not in CHECKPOINT_MODES:
            raise InvalidArgumentError(
                f"checkpoint mode {mode!r} is not one of {', '.join(CHECKPOINT_MODES)}"
            )
        self._check_open()
        if self.is_memory:
            return
        background = self._checkpoint_job
        if background is not None and not background.done():  # two checkpointers: one would get "busy"
            await asyncio.wait([background])
        await self._after_lock(self._writer, self._maintenance_job, f"PRAGMA wal_checkpoint({upper})", None)

    async def backup(self, dest_path: str | Path) -> None:
        """Write a consistent copy of the whole database to ``dest_path`` (a new SQLite file)."""
        self._check_open()
        await self._after_lock(self._writer, self._backup_job, str(dest_path), None)

    def __repr__(self) -> str:
        return f"SQLiteDatabase({self.path!r}{', closed' if self._closed else ''})"


class _SQLiteTransaction:
    """``Transaction`` on the writer connection; valid only inside its ``async with``."""

    __slots__ = ("_db", "is_open")

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db
        self.is_open = True

    def _submit(self, fn: Callable[[Any, Any], Any], sql: str, params: Params) -> asyncio.Future[Any]:
        if not self.is_open:
            raise StoreError("transaction already finished: use it only inside its 'async with' block")
        self._db.counters.statements += 1
        return self._db._wsubmit(fn, sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the affected row count."""
        count: int = await self._submit(self._db._tx_exec_job, sql, params)
        return count

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a read inside the transaction, or ``None``."""
        rows: list[Row] = await self._submit(self._db._tx_fetch_job, sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read inside the transaction."""
        rows: list[Row] = await self._submit(self._db._tx_fetch_job, sql, params)
        return rows


async def connect(dsn: ParsedDSN) -> SQLiteDatabase:
    """Open the database a parsed ``sqlite`` DSN names (the backend entry point of ``open_store``)."""
    return await SQLiteDatabase.open(dsn.path)


if TYPE_CHECKING:  # mypy proves the structural conformance the rest of the store relies on

    def _is_database(db: SQLiteDatabase) -> Database:
        return db

    def _is_transaction(tx: _SQLiteTransaction) -> Transaction:
        return tx
