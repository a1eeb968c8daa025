"""Group commit, property-tested: concurrent batches behave exactly as if each ran alone."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from power_loop.contracts.errors import StoreError
from power_loop.store.backends.sqlite import SQLiteDatabase
from power_loop.store.port import Stmt, WriteConflict

# A batch: some keys to insert (a key already present is a constraint error), then
# optionally a fenced update that must touch exactly `expect` rows of its own keys.
batch = st.tuples(st.lists(st.integers(0, 12), min_size=1, max_size=3, unique=True),
                  st.sampled_from([None, 0, 1, 2]))


def _stmts(keys: list[int], expect: int | None) -> list[Stmt]:
    stmts = [Stmt("INSERT INTO t (k, v) VALUES (?, 0)", (k,)) for k in keys]
    if expect is not None:
        marks = ", ".join("?" * len(keys))
        stmts.append(Stmt(f"UPDATE t SET v = v + 1 WHERE k IN ({marks})", tuple(keys), expect_rows=expect))
    return stmts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch, min_size=1, max_size=8))
def test_concurrent_batches_match_applying_each_alone_in_order(batches: list[tuple[list[int], int | None]]) -> None:
    async def run() -> tuple[list[object], list[tuple[int, int]]]:
        with tempfile.TemporaryDirectory() as d:
            db = await SQLiteDatabase.open(str(Path(d) / "p.db"))
            try:
                await db.write([Stmt("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")])
                outcomes = await asyncio.gather(*(db.write(_stmts(*b)) for b in batches), return_exceptions=True)
                rows = await db.fetchall("SELECT k, v FROM t ORDER BY k")
            finally:
                await db.close()
        return list(outcomes), [(int(k), int(v)) for k, v in rows]

    outcomes, rows = asyncio.run(run())
    # The model: batches applied one by one in issue order, each all or nothing.
    table: dict[int, int] = {}
    for (keys, expect), outcome in zip(batches, outcomes, strict=True):
        if any(k in table for k in keys):
            assert isinstance(outcome, StoreError) and not isinstance(outcome, WriteConflict)
            continue
        if expect is not None and expect != len(keys):
            assert isinstance(outcome, WriteConflict)
            continue
        assert outcome == [1] * len(keys) + ([len(keys)] if expect is not None else [])
        for k in keys:
            table[k] = 1 if expect is not None else 0
    assert rows == sorted(table.items())
