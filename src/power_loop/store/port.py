"""The storage port: the small async surface every database backend implements.

SQL above this port is written once, with ``?`` placeholders and portable syntax; a
``Dialect`` renders placeholders and supplies the few things that differ (DDL types,
upserts, row locks). Invariants every backend keeps:

* ``write`` runs its statements in one transaction, in order, and commits once; a
  statement whose ``expect_rows`` does not match the affected row count rolls the whole
  transaction back and raises ``WriteConflict``. This is how optimistic fencing works:
  ``UPDATE sessions SET next_seq = next_seq + 1 WHERE session_id = ? AND next_seq = ?``
  with ``expect_rows=1`` refuses a writer whose view of the session is stale.
* Reads never block the event loop and never see a half-applied ``write``.
* ``counters`` counts round trips, so benchmarks and tests can assert SQL per send.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from power_loop.contracts.errors import StoreError

Row = tuple[Any, ...]
Params = Sequence[Any]


# eq=False: an internal record nobody compares (no generated __eq__/__hash__ to build at import).
@dataclass(frozen=True, slots=True, eq=False)
class Stmt:
    """One statement of a ``Database.write`` batch."""

    sql: str
    params: Params = ()
    expect_rows: int | None = None
    """When set, the affected row count must equal it or the batch rolls back."""


class WriteConflict(StoreError):
    """A fenced statement affected an unexpected number of rows; nothing was written."""

    code = "store.write_conflict"

    def __init__(self, message: str, *, sql: str, expected: int, actual: int) -> None:
        self.sql = sql
        self.expected = expected
        self.actual = actual
        super().__init__(message)


@dataclass(slots=True)
class DBCounters:
    """Round trips made through a ``Database`` (reset freely; used by benchmarks)."""

    reads: int = 0
    """``fetchone``/``fetchall`` calls outside a transaction."""
    commits: int = 0
    """Committed ``write`` batches and ``transaction()`` blocks (on SQLite, batches of one
    group commit share a transaction and count one each)."""
    statements: int = 0
    """Every statement executed, reads and writes."""

    def reset(self) -> None:
        self.reads = self.commits = self.statements = 0


def check_fence(stmt: Stmt, n: int) -> None:
    """Raise ``WriteConflict`` when ``stmt`` is fenced and affected ``n != expect_rows`` rows."""
    if stmt.expect_rows is not None and n != stmt.expect_rows:
        raise WriteConflict(
            f"fenced statement affected {n} row(s), expected {stmt.expect_rows}; nothing was written: {stmt.sql}",
            sql=stmt.sql, expected=stmt.expect_rows, actual=n,
        )


class Dialect(Protocol):
    """What differs between SQL backends, and nothing else."""

    name: str
    """``"sqlite"``, ``"postgres"`` or ``"mysql"``."""

    serialized_writes: bool
    """Write transactions run one at a time (SQLite's ``BEGIN IMMEDIATE``): a read inside
    one sees the final state of every row until it commits, as good as a row lock."""

    def render(self, sql: str) -> str:
        """Rewrite ``?`` placeholders into the driver's style (``$1``, ``%s``)."""
        ...

    def column_type(self, logical: str) -> str:
        """The engine type of a logical type: ``text``, ``key`` (indexable), ``int``, ``bigint``, ``json``."""
        ...

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str]) -> str:
        """An insert-or-update statement with ``?`` placeholders for ``columns`` in order.

        ``update`` columns are incremented by the inserted value when prefixed ``+``
        (``"+sends"``), else overwritten.
        """
        ...

    def lock_suffix(self) -> str:
        """Suffix for a row-locking read (``" FOR UPDATE"``; ``""`` on SQLite)."""
        ...

    def window_json(self, table: str, where: str) -> str | None:
        """One row for the messages of ``table`` matching ``where``: their wire JSON
        (``wire_message_sql``: NULL for a row whose stored text fails its check) as UTF-8
        bytes, their seqs and their round indexes (``null`` for none), each column the
        items joined by ``,`` in one order, seq order where the engine can promise it (the
        caller checks); NULLs for no rows. None where the engine cannot build the wire
        JSON byte-exactly, and windows load row by row."""
        ...


class Transaction(Protocol):
    """An open read-write transaction (interactive: read, decide, write)."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the affected row count."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(Protocol):
    """An async connection (or pool) to one database."""

    dialect: Dialect
    counters: DBCounters

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """One row of a read, or ``None``."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a read."""
        ...

    async def write(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run ``stmts`` in one transaction and commit; return each affected row count.

        Raises:
            WriteConflict: a statement's ``expect_rows`` did not match (rolled back).
        """
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """An interactive transaction: committed on clean exit, rolled back on error."""
        ...

    async def close(self) -> None:
        """Close connections; idempotent."""
        ...


