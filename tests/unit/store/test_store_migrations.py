"""Migration steps: applied forward once, in a transaction, fenced against a second migrator."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from power_loop.contracts.errors import StoreSchemaError
from power_loop.store.backends.sqlite import SQLiteDatabase
from power_loop.store.dsn import open_store
from power_loop.store.migrations import (
    MIGRATIONS,
    MigrationStep,
    ensure_schema,
    read_version,
    register_migration,
)
from power_loop.store.port import Dialect
from power_loop.store.rows import NewMessage, SchemaPolicy
from power_loop.store.schema import SCHEMA_VERSION


def add_notes_table(dialect: Dialect, prefix: str) -> list[str]:
    # Deliberately not idempotent: applying the step twice would fail loudly.
    return [
        f"CREATE TABLE {prefix}fake_notes (id {dialect.column_type('bigint')} PRIMARY KEY)",
        f"INSERT INTO {prefix}fake_notes (id) VALUES (1)",
    ]


CURRENT = SCHEMA_VERSION
NEXT = SCHEMA_VERSION + 1
STEP = MigrationStep(from_version=CURRENT, description="add fake_notes", statements=add_notes_table)
STEPS = {**MIGRATIONS, CURRENT: STEP}


async def to_next(db: SQLiteDatabase) -> int:
    return await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=NEXT, steps=STEPS)


async def open_current(path: Path) -> SQLiteDatabase:
    db = await SQLiteDatabase.open(str(path))
    assert await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE) == CURRENT
    return db


def test_every_version_below_the_current_one_has_a_step() -> None:
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))
    assert MIGRATIONS[1].description.startswith("add <prefix>session_leases")


async def test_a_step_upgrades_once_and_stamps(tmp_path: Path) -> None:
    db = await open_current(tmp_path / "m.db")
    try:
        assert await to_next(db) == NEXT
        assert await read_version(db, "pl_") == NEXT
        assert await db.fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
        # Current already: the step is not applied again.
        assert await to_next(db) == NEXT
        assert await ensure_schema(db, "pl_", SchemaPolicy.VERIFY, target_version=NEXT, steps=STEPS) == NEXT
        # The code at the current version now refuses the database.
        with pytest.raises(StoreSchemaError, match="newer"):
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE)
    finally:
        await db.close()


async def test_fresh_database_is_provisioned_then_migrated(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "fresh.db"))
    try:
        assert await to_next(db) == NEXT
        assert await db.fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
    finally:
        await db.close()


async def test_verify_refuses_an_older_database(tmp_path: Path) -> None:
    db = await open_current(tmp_path / "old.db")
    try:
        with pytest.raises(StoreSchemaError, match="older") as info:
            await ensure_schema(db, "pl_", SchemaPolicy.VERIFY, target_version=NEXT, steps=STEPS)
        assert info.value.ddl
        assert await read_version(db, "pl_") == CURRENT
    finally:
        await db.close()


async def test_a_missing_step_is_reported_and_nothing_changes(tmp_path: Path) -> None:
    db = await open_current(tmp_path / "gap.db")
    try:
        missing = f"no migration step registered from schema version {NEXT}"
        with pytest.raises(StoreSchemaError, match=missing):
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=NEXT + 1, steps=STEPS)
        assert await read_version(db, "pl_") == CURRENT
    finally:
        await db.close()


async def test_a_failing_step_rolls_back_entirely(tmp_path: Path) -> None:
    def broken(dialect: Dialect, prefix: str) -> list[str]:
        return [f"CREATE TABLE {prefix}half (id INTEGER)", "THIS IS NOT SQL"]

    db = await open_current(tmp_path / "broken.db")
    try:
        with pytest.raises(Exception, match="syntax error"):
            broken_step = MigrationStep(from_version=CURRENT, description="x", statements=broken)
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=NEXT,
                                steps={**MIGRATIONS, CURRENT: broken_step})
        assert await read_version(db, "pl_") == CURRENT
        assert await db.fetchall("SELECT name FROM sqlite_master WHERE name = 'pl_half'") == []
    finally:
        await db.close()


async def test_concurrent_migrators_apply_the_step_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    await (await open_current(path)).close()
    dbs = [await SQLiteDatabase.open(str(path)) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(
            to_next(db) for db in dbs
        ))
        assert versions == [NEXT] * 4
        assert await dbs[0].fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
    finally:
        for db in dbs:
            await db.close()


# The complete script of schema version 1, as that release printed it (frozen: a v1
# database must keep migrating, whatever the current tables look like).
V1_SQLITE_DDL = (
    'CREATE TABLE IF NOT EXISTS pl_schema_migrations (id INTEGER PRIMARY KEY CHECK (id = 1), version '
    'INTEGER NOT NULL)',
    'CREATE TABLE IF NOT EXISTS pl_sessions (session_id TEXT NOT NULL, created_at INTEGER NOT NULL, '
    'updated_at INTEGER NOT NULL, system_prompt TEXT NULL, model TEXT NULL, config TEXT NOT NULL, '
    'status TEXT NOT NULL, kind TEXT NOT NULL, parent_session_id TEXT NULL, spawn_tool_call_id TEXT '
    'NULL, spawn_depth INTEGER NOT NULL DEFAULT 0, lifecycle TEXT NULL, metadata TEXT NOT NULL, '
    'next_seq INTEGER NOT NULL DEFAULT 1, send_count INTEGER NOT NULL DEFAULT 0, follow_up_seq '
    'INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session_id))',
    'CREATE INDEX IF NOT EXISTS pl_sessions_parent_idx ON pl_sessions (parent_session_id)',
    'CREATE TABLE IF NOT EXISTS pl_messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, role '
    'TEXT NOT NULL, name TEXT NULL, content TEXT NOT NULL, tool_calls TEXT NULL, tool_call_id TEXT '
    'NULL, round_index INTEGER NULL, send_index INTEGER NULL, state TEXT NOT NULL, meta TEXT NOT '
    'NULL, created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq))',
    'CREATE INDEX IF NOT EXISTS pl_messages_state_idx ON pl_messages (session_id, state, seq)',
    'CREATE TABLE IF NOT EXISTS pl_session_stats (session_id TEXT NOT NULL, sends INTEGER NOT NULL '
    'DEFAULT 0, rounds INTEGER NOT NULL DEFAULT 0, llm_calls INTEGER NOT NULL DEFAULT 0, tool_calls '
    'INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER '
    'NOT NULL DEFAULT 0, total_tokens INTEGER NOT NULL DEFAULT 0, first_send_at INTEGER NULL, '
    'last_send_at INTEGER NULL, updated_at INTEGER NULL, PRIMARY KEY (session_id))',
    'CREATE INDEX IF NOT EXISTS pl_session_stats_last_send_idx ON pl_session_stats (last_send_at)',
    'CREATE TABLE IF NOT EXISTS pl_follow_ups (session_id TEXT NOT NULL, follow_up_id INTEGER NOT '
    'NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (session_id, '
    'follow_up_id))',
    'INSERT INTO pl_schema_migrations (id, version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING',
)


def make_v1_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(";\n".join(V1_SQLITE_DDL) + ";")
        conn.execute("INSERT INTO pl_sessions (session_id, created_at, updated_at, config, status, kind,"
                     " metadata, next_seq, send_count)"
                     " VALUES ('old', 1, 1, '{}', 'active', 'root', '{}', 2, 1)")
        conn.execute("INSERT INTO pl_messages (session_id, seq, role, content, state, meta, created_at)"
                     " VALUES ('old', 1, 'user', '\"hi\"', 'active', '{}', 1)")
    conn.close()


async def test_verify_refuses_a_version_one_database_untouched(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_v1_database(path)
    with pytest.raises(StoreSchemaError, match="version 1, older") as info:
        await open_store(str(path), schema="verify")
    assert any("session_leases" in s for s in info.value.ddl)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "pl_session_leases" not in tables


async def test_auto_create_migrates_a_version_one_database(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_v1_database(path)
    async with await open_store(str(path)) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [m.content for m in await store.load_all_messages("old")] == ["hi"]
        lease = await store.acquire_lease("old", holder="h", ttl_ms=1000, wait_s=0)
        await store.append_messages("old", [NewMessage(role="assistant", content="yo")], expected_next_seq=2,
                                    lease=lease)
    async with await open_store(str(path), schema="verify") as again:
        assert [m.seq for m in await again.load_all_messages("old")] == [1, 2]


def test_register_migration_refuses_a_duplicate() -> None:
    step = MigrationStep(from_version=999, description="test", statements=add_notes_table)
    try:
        assert register_migration(step) is step
        with pytest.raises(StoreSchemaError, match="already registered"):
            register_migration(step)
    finally:
        MIGRATIONS.pop(999, None)
