"""Write batches on a SQLite connection: ``BEGIN IMMEDIATE``, statements, ``COMMIT``.

The blocking half of the SQLite backend's writes, run inline on the event loop's thread
or on the writer thread (``sqlite.py`` decides where). Invariants: a batch is atomic —
an ``expect_rows`` mismatch or an error rolls back everything it did and nothing else;
in a group commit every batch has its own savepoint, so one batch failing leaves the
others to commit together; ``BEGIN IMMEDIATE`` never waits inline (``Busy`` sends the
work to the writer thread, which waits up to the busy timeout); every ``sqlite3.Error``
leaves as a ``StoreError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from power_loop.contracts.errors import StoreConnectError, StoreError
from power_loop.store.port import Stmt, WriteConflict, check_fence

_BUSY_SLEEP_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)

Group = list[tuple[Sequence[Stmt], "asyncio.Future[list[int]]"]]
"""Batches waiting for one group commit, each with the future its writer awaits."""


class Busy(Exception):
    """Inline ``BEGIN IMMEDIATE`` found the write lock held by another connection."""


def translate(exc: BaseException, path: str) -> StoreError:
    """The ``StoreError`` for a failure of a statement on the database at ``path``: a
    ``sqlite3`` error, or a value the driver cannot bind (a lone surrogate, an int past
    64 bits). The original is its ``__cause__``."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
        err: StoreError = StoreConnectError(
            f"cannot open SQLite database {path!r}: {text} (does its directory exist?)")
    elif isinstance(exc, sqlite3.Error):
        err = StoreError(f"SQLite error on {path!r}: {text}")
    else:
        err = StoreError(f"SQLite cannot store a value of this batch on {path!r}: {type(exc).__name__}: {text}")
    err.__cause__ = exc
    return err


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def begin_immediate(conn: sqlite3.Connection, *, inline: bool, wait_s: float) -> None:
    """``BEGIN IMMEDIATE``; off the loop thread, wait up to ``wait_s`` for another process's lock.

    Raises:
        Busy: inline only — the lock is held elsewhere (retry on the writer thread).
        sqlite3.OperationalError: still locked after ``wait_s``, or any other failure.
    """
    deadline = time.monotonic() + wait_s
    attempt = 0
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if inline:
                raise Busy from exc
            if time.monotonic() >= deadline:
                raise
            time.sleep(_BUSY_SLEEP_S[min(attempt, len(_BUSY_SLEEP_S) - 1)])
            attempt += 1


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):  # the connection already rolled back (e.g. SQLITE_FULL)
            conn.execute("ROLLBACK")


def _run(conn: sqlite3.Connection, stmts: Sequence[Stmt]) -> list[int]:
    """Execute one batch's statements in the open transaction.

    Raises:
        WriteConflict: an ``expect_rows`` mismatch (the caller rolls the batch back).
    """
    counts: list[int] = []
    for stmt in stmts:
        n = conn.execute(stmt.sql, stmt.params).rowcount
        check_fence(stmt, n)
        counts.append(n)
    return counts


@contextmanager
def _rolled_back_on_failure(conn: sqlite3.Connection, path: str) -> Iterator[None]:
    """Roll back whatever the block left open when it fails, so the write lock is never
    kept: ``Busy`` and ``WriteConflict`` pass through, any other error (``sqlite3``, or a
    value the driver cannot bind) leaves as a ``StoreError``."""
    try:
        yield
    except (Busy, WriteConflict):
        raise
    except Exception as exc:
        rollback_quietly(conn)
        raise translate(exc, path) from exc
    except BaseException:
        rollback_quietly(conn)
        raise


def write_batch(conn: sqlite3.Connection, stmts: Sequence[Stmt], *, inline: bool, wait_s: float,
                path: str) -> list[int]:
    """One batch in its own transaction; the affected row counts.

    Raises:
        Busy: inline, and another connection holds the write lock (nothing was done).
        WriteConflict: ``store.write_conflict`` — an ``expect_rows`` mismatch (rolled back).
        StoreError: ``store.error`` — SQLite failed (rolled back).
    """
    with _rolled_back_on_failure(conn, path):
        begin_immediate(conn, inline=inline, wait_s=wait_s)
        try:
            counts = _run(conn, stmts)
        except WriteConflict:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return counts


def write_group(conn: sqlite3.Connection, batches: Sequence[Sequence[Stmt]], *, inline: bool, wait_s: float,
                path: str) -> list[list[int] | StoreError]:
    """Several batches in one transaction (group commit): each batch's counts, or its error.

    Raises:
        Busy: inline, and another connection holds the write lock (nothing was done).
        StoreError: ``store.error`` — BEGIN or COMMIT failed, or SQLite abandoned the
            transaction: no batch was written.
    """
    outcomes: list[list[int] | StoreError] = []
    with _rolled_back_on_failure(conn, path):
        begin_immediate(conn, inline=inline, wait_s=wait_s)
        for stmts in batches:
            conn.execute("SAVEPOINT pl_batch")
            try:
                outcomes.append(_run(conn, stmts))
            except Exception as exc:  # a fence, a constraint, or a value the driver cannot bind
                if not conn.in_transaction:
                    raise  # SQLite abandoned the whole transaction (disk full, I/O error)
                conn.execute("ROLLBACK TO pl_batch")
                outcomes.append(exc if isinstance(exc, WriteConflict) else translate(exc, path))
            conn.execute("RELEASE pl_batch")
        conn.execute("COMMIT")
    return outcomes


def settle(group: Group, outcome: BaseException | Sequence[list[int] | StoreError]) -> None:
    """Resolve every waiting batch: each with its own outcome, or all with one failure."""
    for i, (_, fut) in enumerate(group):
        if fut.done():  # the awaiting task was cancelled
            continue
        value = outcome if isinstance(outcome, BaseException) else outcome[i]
        if isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)
