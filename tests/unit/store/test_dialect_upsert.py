"""The two upsert syntaxes the dialects share."""

from __future__ import annotations

from power_loop.store.dialects.base import on_conflict_upsert, on_duplicate_key_upsert
from power_loop.store.dialects.sqlite import SQLiteDialect


def test_on_conflict_form() -> None:
    assert on_conflict_upsert("s", ["k", "n", "t"], ["k"], ["+n", "t"]) == (
        "INSERT INTO s (k, n, t) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET n = s.n + excluded.n,"
        " t = excluded.t"
    )
    assert on_conflict_upsert("s", ["k"], ["k"], []) == (
        "INSERT INTO s (k) VALUES (?) ON CONFLICT (k) DO NOTHING"
    )


def test_on_duplicate_key_form_has_no_row_alias() -> None:
    assert on_duplicate_key_upsert("s", ["k", "n", "t"], ["k"], ["+n", "t"]) == (
        "INSERT INTO s (k, n, t) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n), t = VALUES(t)"
    )
    assert on_duplicate_key_upsert("s", ["k"], ["k"], []).endswith("ON DUPLICATE KEY UPDATE k = k")


def test_sqlite_dialect() -> None:
    d = SQLiteDialect()
    assert d.name == "sqlite"
    assert d.render("SELECT ? , ?") == "SELECT ? , ?"
    assert d.lock_suffix() == ""
    assert [d.column_type(t) for t in ("key", "text", "int", "bigint", "json")] == [
        "TEXT", "TEXT", "INTEGER", "INTEGER", "TEXT"]
