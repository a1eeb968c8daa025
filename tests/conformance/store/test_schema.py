"""Schema provisioning: AUTO_CREATE, VERIFY with the exact DDL, newer refused, prefixes."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from store_targets import Backend, raw_database

from power_loop.contracts.errors import StoreConfigError, StoreSchemaError
from power_loop.store.dsn import open_store
from power_loop.store.port import Stmt
from power_loop.store.rows import NewMessage, SchemaPolicy
from power_loop.store.schema import SCHEMA_VERSION, TABLES, ddl, ddl_script


def exists(path: str) -> bool:
    return Path(path).exists()


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def needs_shared_database(backend: Backend) -> None:
    if not backend.shares_database:
        pytest.skip("an in-memory database does not outlive its store")


async def set_version(dsn: str, prefix: str, version: int) -> None:
    async with raw_database(dsn) as db:
        sql = db.dialect.render(f"UPDATE {prefix}schema_migrations SET version = ? WHERE id = 1")
        await db.write([Stmt(sql, (version,))])


async def read_version(dsn: str, prefix: str) -> int | None:
    async with raw_database(dsn) as db:
        row = await db.fetchone(f"SELECT version FROM {prefix}schema_migrations WHERE id = 1")
    return None if row is None else int(row[0])


async def test_auto_create_is_idempotent(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    async with await open_store(dsn, table_prefix=prefix) as first:
        assert first.schema_version == SCHEMA_VERSION
        sid = (await first.create_session()).session_id
        await first.append_messages(sid, [NewMessage(role="user", content="kept")], expected_next_seq=1)
    for policy in ("auto_create", SchemaPolicy.AUTO_CREATE, None, "verify"):
        async with await open_store(dsn, table_prefix=prefix, schema=policy) as again:
            assert again.schema_version == SCHEMA_VERSION
            assert [m.content for m in await again.load_all_messages(sid)] == ["kept"]
    assert await read_version(dsn, prefix) == SCHEMA_VERSION


async def test_concurrent_first_boot_succeeds_everywhere(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    stores = await asyncio.gather(*(open_store(dsn, table_prefix=prefix) for _ in range(5)))
    try:
        assert {s.schema_version for s in stores} == {SCHEMA_VERSION}
        sid = (await stores[0].create_session()).session_id
        assert await stores[4].get_session(sid) is not None
    finally:
        for s in stores:
            await s.close()


async def test_verify_on_an_empty_database_raises_with_the_script(backend: Backend) -> None:
    dsn, prefix = backend.dsn(), backend.prefix()
    with pytest.raises(StoreSchemaError) as info:
        await open_store(dsn, table_prefix=prefix, schema="verify")
    exc = info.value
    assert exc.code == "store.schema"
    assert exc.ddl and all(not s.rstrip().endswith(";") for s in exc.ddl)
    assert str(exc).endswith(";\n".join(exc.ddl) + ";")
    assert f"{prefix}schema_migrations" in exc.ddl[0]
    if backend.name == "sqlite-file":
        assert not exists(dsn)  # VERIFY created nothing
        assert exc.ddl == ddl_script("sqlite", prefix)


async def test_applying_the_script_makes_verify_pass(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    with pytest.raises(StoreSchemaError) as info:
        await open_store(dsn, table_prefix=prefix, schema=SchemaPolicy.VERIFY)
    if backend.name == "sqlite-file":
        with sqlite3.connect(dsn) as conn:  # the script stands alone: any SQL client can run it
            conn.executescript(str(info.value).split("-- provisioning script:\n", 1)[1])
        conn.close()
    else:
        async with raw_database(dsn) as db:
            await db.write([Stmt(s) for s in info.value.ddl])
    async with await open_store(dsn, table_prefix=prefix, schema="verify") as store:
        assert store.schema_version == SCHEMA_VERSION
        sid = (await store.create_session()).session_id
        await store.append_messages(sid, [NewMessage(role="user", content="x")], expected_next_seq=1)
    # Applying it twice is harmless (idempotent) and keeps the data.
    async with raw_database(dsn) as db:
        await db.write([Stmt(s) for s in info.value.ddl])
    async with await open_store(dsn, table_prefix=prefix, schema="verify") as store:
        assert len(await store.load_all_messages(sid)) == 1


async def test_verify_reports_an_incomplete_schema(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    await (await open_store(dsn, table_prefix=prefix)).close()
    async with raw_database(dsn) as db:
        await db.write([Stmt(f"DROP TABLE {prefix}follow_ups")])
    with pytest.raises(StoreSchemaError, match=f"incomplete.*{prefix}follow_ups") as info:
        await open_store(dsn, table_prefix=prefix, schema="verify")
    async with raw_database(dsn) as db:
        await db.write([Stmt(s) for s in info.value.ddl])
    await (await open_store(dsn, table_prefix=prefix, schema="verify")).close()


async def test_verify_refuses_an_older_schema(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    await (await open_store(dsn, table_prefix=prefix)).close()
    await set_version(dsn, prefix, 0)
    with pytest.raises(StoreSchemaError, match="older") as info:
        await open_store(dsn, table_prefix=prefix, schema="verify")
    assert info.value.ddl
    # AUTO_CREATE would migrate, but no step from version 0 exists: refused, unchanged.
    with pytest.raises(StoreSchemaError, match="no migration step"):
        await open_store(dsn, table_prefix=prefix)
    assert await read_version(dsn, prefix) == 0


@pytest.mark.parametrize("policy", ["auto_create", "verify"])
async def test_a_newer_database_is_refused_and_untouched(backend: Backend, policy: str) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    async with await open_store(dsn, table_prefix=prefix) as store:
        await store.create_session(session_id="s")
    await set_version(dsn, prefix, SCHEMA_VERSION + 98)
    before = digest(dsn) if backend.name == "sqlite-file" else None
    with pytest.raises(StoreSchemaError, match="newer than this code") as info:
        await open_store(dsn, table_prefix=prefix, schema=policy)
    assert info.value.ddl == []
    assert await read_version(dsn, prefix) == SCHEMA_VERSION + 98
    if before is not None:
        assert digest(dsn) == before


async def test_a_newer_stamp_alone_creates_no_tables(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE pl_schema_migrations (id INTEGER PRIMARY KEY CHECK (id = 1),"
                     " version INTEGER NOT NULL)")
        conn.execute("INSERT INTO pl_schema_migrations VALUES (1, 7)")
    conn.close()
    with pytest.raises(StoreSchemaError, match="version 7, newer"):
        await open_store(str(path))
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["pl_schema_migrations"]


async def test_prefixes_in_one_database_are_isolated(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn = backend.dsn()
    a = await open_store(dsn, table_prefix=backend.prefix("a_"))
    b = await open_store(dsn, table_prefix=backend.prefix("b_"))
    bare = await open_store(dsn, table_prefix=backend.prefix(""))
    try:
        for store, tag in ((a, "a"), (b, "b"), (bare, "bare")):
            await store.create_session(session_id="same", metadata={"tag": tag})
        await a.append_messages("same", [NewMessage(role="user", content="only in a")], expected_next_seq=1)
        await a.enqueue_follow_up("same", "fa")
        assert await b.load_all_messages("same") == []
        assert await bare.list_follow_ups("same") == []
        row_b = await b.get_session("same")
        assert row_b is not None and row_b.metadata == {"tag": "b"} and row_b.next_seq == 1
        assert await a.close_session("same") == 1
        assert await b.get_session("same") is not None
        assert await bare.get_session("same") is not None
    finally:
        for store in (a, b, bare):
            await store.close()


def test_ddl_script_for_sqlite_is_complete_and_prefixed() -> None:
    script = ddl_script("sqlite", "app_")
    assert script[0] == ("CREATE TABLE IF NOT EXISTS app_schema_migrations"
                         " (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
    assert script[-1].startswith("INSERT INTO app_schema_migrations")
    for table in ("sessions", "messages", "session_stats", "follow_ups"):
        assert any(f"CREATE TABLE IF NOT EXISTS app_{table} " in s for s in script)
    assert all("IF NOT EXISTS" in s for s in script[:-1])
    assert all(not s.endswith(";") for s in script)
    assert ddl_script("sqlite3", "") == ddl_script("SQLite", "")


@pytest.mark.parametrize("dialect", ["oracle", "mssql"])
def test_ddl_script_for_an_unknown_dialect_is_a_config_error(dialect: str) -> None:
    with pytest.raises(StoreConfigError, match="unknown dialect") as info:
        ddl_script(dialect, "pl_")
    assert info.value.code == "store.config_invalid"
    assert "sqlite, postgres, mysql" in str(info.value)


def test_ddl_script_for_postgres() -> None:
    script = ddl_script("postgresql", "app_")
    assert script == ddl_script("postgres", "app_")
    assert "session_id TEXT NOT NULL" in script[1] and "next_seq BIGINT NOT NULL DEFAULT 1" in script[1]
    index = "CREATE INDEX IF NOT EXISTS app_messages_state_idx ON app_messages (session_id, state, seq)"
    assert index in script
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS app_session_leases ") for s in script)
    assert script[-1] == (f"INSERT INTO app_schema_migrations (id, version) VALUES (1, {SCHEMA_VERSION})"
                          " ON CONFLICT (id) DO NOTHING")


def test_ddl_script_for_mysql_runs_on_mysql_and_mariadb() -> None:
    script = ddl_script("mariadb", "app_")
    assert script == ddl_script("mysql", "app_")
    sessions = script[1]
    assert "session_id VARCHAR(191) NOT NULL" in sessions and "config LONGTEXT NOT NULL" in sessions
    assert "INDEX app_sessions_parent_idx (parent_session_id)" in sessions
    assert sessions.endswith(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
    assert not any(s.startswith("CREATE INDEX") for s in script)  # MySQL lacks IF NOT EXISTS there
    stamp = f"INSERT IGNORE INTO app_schema_migrations (id, version) VALUES (1, {SCHEMA_VERSION})"
    assert script[-1] == stamp
    assert all(" AS new" not in s and "%" not in s and "?" not in s for s in script)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_the_ddl_command_prints_the_script_without_a_database(dialect: str) -> None:
    for flag in ("--prefix", "--table-prefix"):
        done = subprocess.run([sys.executable, "-m", "power_loop", "db", "ddl", "--dialect", dialect, flag,
                               "app_"], capture_output=True, text=True, check=True, timeout=60)
        assert done.stdout == ";\n".join(ddl_script(dialect, "app_")) + ";\n"


async def test_a_version_one_database_is_migrated_forward(backend: Backend) -> None:
    needs_shared_database(backend)
    dsn, prefix = backend.dsn(), backend.prefix()
    v1_tables = [t for t in TABLES if t.name != "session_leases"]
    async with raw_database(dsn) as db:
        v1_script = ddl(db.dialect, prefix, tables=v1_tables, version=1)
        await db.write([Stmt(s) for s in v1_script])
        insert = db.dialect.render(
            f"INSERT INTO {prefix}sessions (session_id, created_at, updated_at, config, status, kind,"
            " metadata, next_seq, send_count) VALUES (?, 1, 1, '{}', 'active', 'root', '{}', 1, 0)")
        await db.write([Stmt(insert, ("old",))])
    assert not any("session_leases" in s for s in v1_script)
    with pytest.raises(StoreSchemaError, match="version 1, older"):
        await open_store(dsn, table_prefix=prefix, schema="verify")
    assert await read_version(dsn, prefix) == 1
    async with await open_store(dsn, table_prefix=prefix) as store:
        assert store.schema_version == SCHEMA_VERSION
        lease = await store.acquire_lease("old", holder="h", ttl_ms=1000, wait_s=0)
        await store.append_messages("old", [NewMessage(role="user", content="after")], expected_next_seq=1,
                                    lease=lease)
    assert await read_version(dsn, prefix) == SCHEMA_VERSION
    async with await open_store(dsn, table_prefix=prefix, schema="verify") as store:
        assert [m.content for m in await store.load_all_messages("old")] == ["after"]


def test_ddl_script_refuses_a_bad_prefix() -> None:
    with pytest.raises(StoreConfigError, match="not an identifier"):
        ddl_script("sqlite", "x;drop")
