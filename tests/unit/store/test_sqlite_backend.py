"""SQLiteDatabase: one-hop batches, rollback on conflict, interactive transactions, threads."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from power_loop.contracts.errors import InvalidArgumentError, StoreConnectError, StoreError
from power_loop.store.backends.sqlite import SQLiteDatabase
from power_loop.store.port import Stmt, WriteConflict


@pytest.fixture(params=["file", "memory"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    path = str(tmp_path / "t.db") if request.param == "file" else ":memory:"
    database = await SQLiteDatabase.open(path)
    await database.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")])
    yield database
    await database.close()


async def test_write_returns_counts_and_counts_one_commit(db: SQLiteDatabase) -> None:
    db.counters.reset()
    counts = await db.write([
        Stmt("INSERT INTO t (k, v) VALUES (?, ?), (?, ?)", ("a", 1, "b", 2)),
        Stmt("UPDATE t SET v = v + 1", expect_rows=2),
    ])
    assert counts == [2, 2]
    assert (db.counters.commits, db.counters.statements, db.counters.reads) == (1, 2, 0)
    assert await db.fetchall("SELECT k, v FROM t ORDER BY k") == [("a", 2), ("b", 3)]
    assert db.counters.reads == 1


async def test_a_conflict_rolls_back_the_whole_batch(db: SQLiteDatabase) -> None:
    with pytest.raises(WriteConflict) as info:
        await db.write([
            Stmt("INSERT INTO t (k, v) VALUES ('a', 1)"),
            Stmt("UPDATE t SET v = 5 WHERE k = 'zzz'", expect_rows=1),
        ])
    assert (info.value.expected, info.value.actual) == (1, 0)
    assert await db.fetchall("SELECT * FROM t") == []
    await db.write([Stmt("INSERT INTO t (k, v) VALUES ('a', 1)")])  # the connection is usable


async def test_sqlite_errors_become_store_errors(db: SQLiteDatabase) -> None:
    with pytest.raises(StoreError) as info:
        await db.write([Stmt("INSERT INTO t (k, v) VALUES ('a', 1)"),
                        Stmt("INSERT INTO t (k, v) VALUES ('a', 2)")])
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert await db.fetchall("SELECT * FROM t") == []
    with pytest.raises(StoreError, match="no such table"):
        await db.fetchone("SELECT * FROM missing")


async def test_transaction_commits_and_rolls_back(db: SQLiteDatabase) -> None:
    async with db.transaction() as tx:
        assert await tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 1)) == 1
        assert await tx.fetchone("SELECT v FROM t WHERE k = ?", ("a",)) == (1,)
        assert await tx.fetchone("SELECT v FROM t WHERE k = ?", ("zz",)) is None
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (k, v) VALUES ('b', 2)")
            raise RuntimeError("boom")
    assert await db.fetchall("SELECT k FROM t") == [("a",)]
    with pytest.raises(StoreError, match="already finished"):
        await tx.execute("SELECT 1")


async def test_writes_wait_for_an_open_transaction(db: SQLiteDatabase) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (k, v) VALUES ('tx', 1)")
            entered.set()
            await release.wait()
            await tx.execute("UPDATE t SET v = 2 WHERE k = 'tx'")

    task = asyncio.create_task(holder())
    await entered.wait()
    writer = asyncio.create_task(db.write([Stmt("UPDATE t SET v = v * 10", expect_rows=1)]))
    await asyncio.sleep(0.01)
    assert not writer.done()
    release.set()
    await task
    assert await writer == [1]
    assert await db.fetchone("SELECT v FROM t WHERE k = 'tx'") == (20,)


async def test_file_reads_do_not_wait_for_an_open_transaction(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "r.db"))
    try:
        await db.write([Stmt("CREATE TABLE t (k TEXT)"), Stmt("INSERT INTO t VALUES ('committed')")])
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ('pending')")
            # The reader connection sees the last commit, not the open transaction.
            assert await asyncio.wait_for(db.fetchall("SELECT k FROM t"), 5) == [("committed",)]
        assert len(await db.fetchall("SELECT k FROM t")) == 2
    finally:
        await db.close()


async def test_a_cancelled_transaction_is_rolled_back(db: SQLiteDatabase) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (k, v) VALUES ('c', 1)")
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.fetchall("SELECT * FROM t") == []
    await db.write([Stmt("INSERT INTO t (k, v) VALUES ('after', 1)")])


async def test_file_pragmas(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "p.db"))
    try:
        async with db.transaction() as tx:
            pass
        rows = {}
        for pragma in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "auto_vacuum",
                       "wal_autocheckpoint"):
            async with db.transaction() as tx:
                rows[pragma] = (await tx.fetchone(f"PRAGMA {pragma}") or (None,))[0]
        # busy_timeout 0: inline writes never wait; the writer thread retries BEGIN itself
        assert rows == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 0, "foreign_keys": 0,
                        "auto_vacuum": 2, "wal_autocheckpoint": 0}
    finally:
        await db.close()


async def test_close_is_idempotent_and_stops_the_threads(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "c.db"))
    threads = [db._writer.thread, db._reader.thread]
    assert threads[0] is not threads[1] and all(t.is_alive() for t in threads)
    await db.close()
    await db.close()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    with pytest.raises(StoreError, match="closed"):
        await db.fetchone("SELECT 1")
    with pytest.raises(StoreError, match="closed"):
        await db.write([Stmt("SELECT 1")])


async def test_memory_uses_one_thread() -> None:
    db = await SQLiteDatabase.open(":memory:")
    try:
        assert db._writer is db._reader
    finally:
        await db.close()


async def test_a_missing_directory_is_a_connect_error(tmp_path: Path) -> None:
    with pytest.raises(StoreConnectError) as info:
        await SQLiteDatabase.open(str(tmp_path / "no" / "such" / "dir.db"))
    assert info.value.code == "store.connect_failed"


async def test_maintenance(tmp_path: Path, db: SQLiteDatabase) -> None:
    await db.write([Stmt("INSERT INTO t (k, v) VALUES ('x', 1)")])
    await db.vacuum()
    await db.vacuum(incremental=False)
    await db.checkpoint(mode="passive")
    with pytest.raises(InvalidArgumentError):
        await db.checkpoint(mode="sometimes")
    dest = tmp_path / "copy.db"
    await db.backup(dest)
    conn = sqlite3.connect(dest)
    assert conn.execute("SELECT k, v FROM t").fetchall() == [("x", 1)]
    conn.close()


async def test_calls_waiting_while_closing_fail_cleanly(db: SQLiteDatabase) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def holder() -> None:
        async with db.transaction():
            entered.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await entered.wait()
    waiting_write = asyncio.create_task(db.write([Stmt("INSERT INTO t (k, v) VALUES ('w', 1)")]))
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    release.set()
    await task
    await asyncio.wait_for(closing, 5)
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(waiting_write, 5)


async def test_a_write_meeting_another_connections_lock_waits_on_the_writer_thread(tmp_path: Path) -> None:
    import threading

    path = str(tmp_path / "locked.db")
    db = await SQLiteDatabase.open(path)
    try:
        await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        counts = await db.write([Stmt("INSERT INTO t VALUES (1)")])
        assert counts == [1]
        assert await db.fetchall("SELECT x FROM t") == [(1,)]
        other.close()
    finally:
        await db.close()


async def test_a_lock_held_past_busy_timeout_fails_cleanly(tmp_path: Path) -> None:
    path = str(tmp_path / "stuck.db")
    db = await SQLiteDatabase.open(path, busy_timeout_ms=200)
    try:
        await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError):
            await db.write([Stmt("INSERT INTO t VALUES (1)")])
        other.execute("ROLLBACK")
        other.close()
        assert await db.fetchall("SELECT x FROM t") == []
        assert await db.write([Stmt("INSERT INTO t VALUES (2)")]) == [1]  # usable afterwards
    finally:
        await db.close()


async def _concurrent_writes(db: SQLiteDatabase, batches: list[list[Stmt]]) -> list[object]:
    """Issue ``batches`` from concurrent tasks in one loop turn (so they group)."""
    return await asyncio.gather(*(db.write(b) for b in batches), return_exceptions=True)


async def test_concurrent_writes_share_one_transaction_and_fail_alone(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "group.db"))
    try:
        await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")])
        seen: list[str] = []
        assert db._wconn is not None
        db._wconn.set_trace_callback(seen.append)
        outcomes = await _concurrent_writes(db, [
            [Stmt("INSERT INTO t VALUES ('a', 1)")],
            [Stmt("INSERT INTO t VALUES ('b', 1)"), Stmt("UPDATE t SET v = 9 WHERE k = 'zz'", expect_rows=1)],
            [Stmt("INSERT INTO t VALUES ('a', 2)")],  # a duplicate key: a store error of its own
            [Stmt("INSERT INTO t VALUES ('c', 1)"), Stmt("UPDATE t SET v = v + 1 WHERE k = 'c'", expect_rows=1)],
        ])
        db._wconn.set_trace_callback(None)
        assert outcomes[0] == [1] and outcomes[3] == [1, 1]
        assert isinstance(outcomes[1], WriteConflict) and "nothing was written" in str(outcomes[1])
        assert isinstance(outcomes[2], StoreError) and "UNIQUE" in str(outcomes[2])
        # One transaction for the four batches; the failed ones rolled back alone.
        assert seen.count("BEGIN IMMEDIATE") == 1 and seen.count("COMMIT") == 1
        assert await db.fetchall("SELECT k, v FROM t ORDER BY k") == [("a", 1), ("c", 2)]
        assert db.counters.commits == 1 + 2  # the CREATE, then one per batch written
    finally:
        await db.close()


async def test_grouped_writes_pending_at_close_are_committed(tmp_path: Path) -> None:
    path = str(tmp_path / "close.db")
    db = await SQLiteDatabase.open(path)
    await db.write([Stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")])
    writes = [asyncio.ensure_future(db.write([Stmt("INSERT INTO t VALUES (?)", (str(i),))])) for i in range(5)]
    await asyncio.sleep(0)  # the writes queued for the next turn's group commit
    await db.close()
    assert [await w for w in writes] == [[1]] * 5
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (5,)
    check.close()


async def test_a_group_meeting_another_connections_lock_waits_on_the_writer_thread(tmp_path: Path) -> None:
    import threading

    path = str(tmp_path / "group-locked.db")
    db = await SQLiteDatabase.open(path)
    try:
        await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        outcomes = await _concurrent_writes(db, [[Stmt("INSERT INTO t VALUES (?)", (i,))] for i in range(3)])
        assert outcomes == [[1], [1], [1]]
        assert await db.fetchall("SELECT x FROM t ORDER BY x") == [(0,), (1,), (2,)]
        other.close()
    finally:
        await db.close()


async def test_a_group_waits_for_an_open_transaction(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "group-tx.db"))
    try:
        await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
        release = asyncio.Event()
        entered = asyncio.Event()

        async def holder() -> None:
            async with db.transaction() as tx:
                entered.set()
                await release.wait()
                await tx.execute("INSERT INTO t VALUES (0)")

        task = asyncio.create_task(holder())
        await entered.wait()
        writes = asyncio.ensure_future(_concurrent_writes(db, [[Stmt("INSERT INTO t VALUES (?)", (i,))]
                                                               for i in (1, 2)]))
        await asyncio.sleep(0.05)
        assert not writes.done()  # queued behind the transaction, not inside it
        release.set()
        await task
        assert await writes == [[1], [1]]
        assert await db.fetchall("SELECT x FROM t ORDER BY x") == [(0,), (1,), (2,)]
    finally:
        await db.close()


async def test_a_writer_cancelled_before_its_group_commits_writes_nothing(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "group-cancel.db"))
    try:
        await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
        writes = [asyncio.ensure_future(db.write([Stmt("INSERT INTO t VALUES (?)", (i,))])) for i in range(3)]
        await asyncio.sleep(0)  # all three queued for the next turn's group commit
        writes[1].cancel()
        done = await asyncio.gather(*writes, return_exceptions=True)
        assert done[0] == [1] and done[2] == [1] and isinstance(done[1], asyncio.CancelledError)
        assert await db.fetchall("SELECT x FROM t ORDER BY x") == [(0,), (2,)]
    finally:
        await db.close()


async def test_a_value_sqlite_cannot_bind_fails_its_batch_alone_and_releases_the_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "bind.db")
    db = await SQLiteDatabase.open(path)
    try:
        await db.write([Stmt("CREATE TABLE t (x)")])
        alone = await _concurrent_writes(db, [[Stmt("INSERT INTO t VALUES (?)", (2**70,))]])
        grouped = await _concurrent_writes(db, [
            [Stmt("INSERT INTO t VALUES (?)", (1,))],
            [Stmt("INSERT INTO t VALUES (?)", ("\ud800",))],  # a lone surrogate: no UTF-8 for it
            [Stmt("INSERT INTO t VALUES (?)", (2,))],
        ])
        for failed in (alone[0], grouped[1]):
            assert isinstance(failed, StoreError) and "cannot store a value" in str(failed)
            assert failed.__cause__ is not None
        assert grouped[0] == [1] and grouped[2] == [1]
        # No transaction was left open: another connection can write at once.
        other = sqlite3.connect(path, timeout=0)
        other.execute("INSERT INTO t VALUES (3)")
        other.commit()
        other.close()
        assert await db.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,), (3,)]
    finally:
        await db.close()


async def test_a_group_pending_when_a_transaction_starts_commits_before_it(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "order.db"))
    try:
        await db.write([Stmt("CREATE TABLE t (n INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT)")])

        async def tx() -> None:
            async with db.transaction() as t:
                await t.execute("INSERT INTO t (tag) VALUES ('tx')")

        async def writer(tag: str) -> None:
            await db.write([Stmt("INSERT INTO t (tag) VALUES (?)", (tag,))])

        a = asyncio.ensure_future(writer("a"))  # joins the group committed at the next turn ...
        t = asyncio.ensure_future(tx())  # ... and in the same turn the transaction takes the lock
        await asyncio.sleep(0)
        b = asyncio.ensure_future(writer("b"))  # issued after both: waits for the lock
        await asyncio.gather(a, t, b)
        assert [tag for (tag,) in await db.fetchall("SELECT tag FROM t ORDER BY n")] == ["a", "tx", "b"]
    finally:
        await db.close()


async def test_close_closes_the_checkpointer_connection_opened_by_a_queued_checkpoint(tmp_path: Path) -> None:
    from power_loop.store.backends import sqlite as sqlite_backend

    db = await SQLiteDatabase.open(str(tmp_path / "ckpt.db"))
    opened: list[sqlite3.Connection] = []
    connect = db._connect

    def recording() -> sqlite3.Connection:
        conn = connect()
        opened.append(conn)
        return conn

    db._connect = recording  # type: ignore[method-assign]
    await db.write([Stmt("CREATE TABLE t (x INTEGER)")])
    for i in range(sqlite_backend.CHECKPOINT_EVERY):
        await db.write([Stmt("INSERT INTO t VALUES (?)", (i,))])
    await db.close()  # the first background checkpoint may still be queued: it must not leak
    assert len(opened) == 1  # the checkpointer's own connection
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
