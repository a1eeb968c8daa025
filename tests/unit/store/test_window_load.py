"""SQLite's one-value window read falls back to rows when the engine cannot build the value."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from power_loop.store.backends.sqlite import SQLiteDatabase
from power_loop.store.dsn import open_store
from power_loop.store.rows import NewMessage


async def test_a_window_past_the_longest_value_loads_row_by_row(tmp_path: Path) -> None:
    """A history longer than SQLite's longest string (1e9 bytes by default; lowered here on
    the reader connection) cannot be one value: the window is read row by row instead."""
    store = await open_store(str(tmp_path / "w.db"))
    sid = (await store.create_session()).session_id
    await store.append_messages(sid, [NewMessage(role="user", content="x" * 200) for _ in range(5)],
                                expected_next_seq=1)
    whole = await store.load_window(sid)
    assert whole.encoded is not None and len(whole.encoded) > 1000

    db = store.db
    assert isinstance(db, SQLiteDatabase)

    def lower_limit(*_: object) -> None:
        assert db._rconn is not None
        db._rconn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)

    await db._reader.submit(lower_limit, None, None)
    limited = await store.load_window(sid)
    assert limited.encoded is None  # the row path
    assert (limited.messages, limited.seqs, limited.round_indexes) == (
        whole.messages, whole.seqs, whole.round_indexes)
    await store.close()
