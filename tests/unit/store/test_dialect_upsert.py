"""The dialects: placeholders, types, the two upsert syntaxes, locks."""

from __future__ import annotations

import pytest

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.store.dialects.base import on_conflict_upsert, on_duplicate_key_upsert
from power_loop.store.dialects.mysql import MySQLDialect
from power_loop.store.dialects.postgres import PostgresDialect
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


def test_postgres_dialect() -> None:
    d = PostgresDialect()
    assert d.name == "postgres" and d.lock_suffix() == " FOR UPDATE"
    assert d.render("UPDATE t SET a = ?, b = 'it''s ?' WHERE c = ? AND d = ?") == (
        "UPDATE t SET a = $1, b = 'it''s ?' WHERE c = $2 AND d = $3")
    assert [d.column_type(t) for t in ("key", "text", "int", "bigint", "json")] == [
        "TEXT", "TEXT", "INTEGER", "BIGINT", "TEXT"]
    assert d.upsert("s", ["k", "n"], ["k"], ["+n"]) == on_conflict_upsert("s", ["k", "n"], ["k"], ["+n"])
    with pytest.raises(InvalidArgumentError, match="unknown logical column type 'blob'"):
        d.column_type("blob")


def test_mysql_dialect() -> None:
    d = MySQLDialect()
    assert d.name == "mysql" and d.lock_suffix() == " FOR UPDATE" and d.inline_indexes
    assert d.render("SELECT ? FROM t WHERE name LIKE 'a%' AND x = '?' AND y = ?") == (
        "SELECT %s FROM t WHERE name LIKE 'a%%' AND x = '?' AND y = %s")
    assert [d.column_type(t) for t in ("key", "text", "int", "bigint", "json")] == [
        "VARCHAR(191)", "LONGTEXT", "INT", "BIGINT", "LONGTEXT"]
    # Under CLIENT_FOUND_ROWS a no-op ON DUPLICATE KEY UPDATE reports 1: insert-or-ignore is INSERT IGNORE.
    assert d.upsert("s", ["k", "n"], ["k"], []) == "INSERT IGNORE INTO s (k, n) VALUES (?, ?)"
    assert d.upsert("s", ["k", "n"], ["k"], ["+n"]) == (
        "INSERT INTO s (k, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)")
    acquire, release = d.schema_lock("app_")
    assert "GET_LOCK('power_loop_schema:app_'" in acquire and release is not None
