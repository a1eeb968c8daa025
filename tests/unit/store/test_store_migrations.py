"""Migration steps: applied forward once, in a transaction, fenced against a second migrator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from power_loop.contracts.errors import StoreSchemaError
from power_loop.store.backends.sqlite import SQLiteDatabase
from power_loop.store.migrations import (
    MIGRATIONS,
    MigrationStep,
    ensure_schema,
    read_version,
    register_migration,
)
from power_loop.store.port import Dialect
from power_loop.store.rows import SchemaPolicy


def add_notes_table(dialect: Dialect, prefix: str) -> list[str]:
    # Deliberately not idempotent: applying the step twice would fail loudly.
    return [
        f"CREATE TABLE {prefix}fake_notes (id {dialect.column_type('bigint')} PRIMARY KEY)",
        f"INSERT INTO {prefix}fake_notes (id) VALUES (1)",
    ]


STEP = MigrationStep(from_version=1, description="add fake_notes", statements=add_notes_table)


async def to_v2(db: SQLiteDatabase) -> int:
    return await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=2, steps={1: STEP})


async def open_v1(path: Path) -> SQLiteDatabase:
    db = await SQLiteDatabase.open(str(path))
    assert await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE) == 1
    return db


async def test_the_registry_exists_and_is_empty_at_version_one() -> None:
    assert MIGRATIONS == {}


async def test_a_step_upgrades_once_and_stamps(tmp_path: Path) -> None:
    db = await open_v1(tmp_path / "m.db")
    try:
        assert await to_v2(db) == 2
        assert await read_version(db, "pl_") == 2
        assert await db.fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
        # Current already: the step is not applied again.
        assert await to_v2(db) == 2
        assert await ensure_schema(db, "pl_", SchemaPolicy.VERIFY, target_version=2, steps={1: STEP}) == 2
        # The code at version 1 now refuses the database.
        with pytest.raises(StoreSchemaError, match="newer"):
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE)
    finally:
        await db.close()


async def test_fresh_database_is_provisioned_then_migrated(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(str(tmp_path / "fresh.db"))
    try:
        assert await to_v2(db) == 2
        assert await db.fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
    finally:
        await db.close()


async def test_verify_refuses_an_older_database(tmp_path: Path) -> None:
    db = await open_v1(tmp_path / "old.db")
    try:
        with pytest.raises(StoreSchemaError, match="older") as info:
            await ensure_schema(db, "pl_", SchemaPolicy.VERIFY, target_version=2, steps={1: STEP})
        assert info.value.ddl
        assert await read_version(db, "pl_") == 1
    finally:
        await db.close()


async def test_a_missing_step_is_reported_and_nothing_changes(tmp_path: Path) -> None:
    db = await open_v1(tmp_path / "gap.db")
    try:
        with pytest.raises(StoreSchemaError, match="no migration step registered from schema version 2"):
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=3, steps={1: STEP})
        assert await read_version(db, "pl_") == 1
    finally:
        await db.close()


async def test_a_failing_step_rolls_back_entirely(tmp_path: Path) -> None:
    def broken(dialect: Dialect, prefix: str) -> list[str]:
        return [f"CREATE TABLE {prefix}half (id INTEGER)", "THIS IS NOT SQL"]

    db = await open_v1(tmp_path / "broken.db")
    try:
        with pytest.raises(Exception, match="syntax error"):
            await ensure_schema(db, "pl_", SchemaPolicy.AUTO_CREATE, target_version=2,
                                steps={1: MigrationStep(from_version=1, description="x", statements=broken)})
        assert await read_version(db, "pl_") == 1
        assert await db.fetchall("SELECT name FROM sqlite_master WHERE name = 'pl_half'") == []
    finally:
        await db.close()


async def test_concurrent_migrators_apply_the_step_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    await (await open_v1(path)).close()
    dbs = [await SQLiteDatabase.open(str(path)) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(
            to_v2(db) for db in dbs
        ))
        assert versions == [2, 2, 2, 2]
        assert await dbs[0].fetchall("SELECT id FROM pl_fake_notes") == [(1,)]
    finally:
        for db in dbs:
            await db.close()


def test_register_migration_refuses_a_duplicate() -> None:
    step = MigrationStep(from_version=999, description="test", statements=add_notes_table)
    try:
        assert register_migration(step) is step
        with pytest.raises(StoreSchemaError, match="already registered"):
            register_migration(step)
    finally:
        MIGRATIONS.pop(999, None)
