"""Schema provisioning: create, verify or migrate a database to ``SCHEMA_VERSION``.

Invariants:

* A database stamped newer than the code is refused before anything is written.
* VERIFY writes nothing; it passes only when the stamp equals the target and every
  table exists with every column, else ``StoreSchemaError`` carries the full script.
* AUTO_CREATE provisions in one transaction (idempotent DDL, stamp last, insert-or-
  ignore), so processes booting at once all succeed: if a concurrent creator makes one
  attempt fail, the version is re-read and provisioning retried.
* Migration steps run forward, one version at a time, in one transaction with the
  stamp update fenced on the version read, so two migrators never apply a step twice.

* Where the dialect offers a schema lock (``schema_lock(prefix)``: PostgreSQL's
  transaction-scoped advisory lock, MySQL's ``GET_LOCK``), provisioning and migration
  hold it, so concurrent first boots queue instead of racing on DDL (MySQL commits DDL
  implicitly, so there a transaction alone could not serialise them).

A step is registered in ``MIGRATIONS`` under the version it upgrades *from*; its
statements come from a function of (dialect, prefix), so one step serves every engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from power_loop.contracts.errors import StoreConnectError, StoreError, StoreSchemaError
from power_loop.store.port import Database, Dialect, Transaction
from power_loop.store.rows import SchemaPolicy
from power_loop.store.schema import (
    SCHEMA_VERSION,
    SESSION_LEASES,
    TABLES,
    VERSION_TABLE,
    ddl,
    table_ddl,
    version_table_ddl,
)

_ATTEMPTS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationStep:
    """Upgrade a database from ``from_version`` to ``from_version + 1``."""

    from_version: int
    description: str
    statements: Callable[[Dialect, str], list[str]]
    """``(dialect, table_prefix) -> statements`` run in order inside the migration transaction."""


MIGRATIONS: dict[int, MigrationStep] = {}
"""Registered steps by ``from_version`` (see the bottom of this module)."""


def register_migration(step: MigrationStep) -> MigrationStep:
    """Add ``step`` to ``MIGRATIONS``.

    Raises:
        StoreSchemaError: ``store.schema`` — a step from that version already exists.
    """
    if step.from_version in MIGRATIONS:
        raise StoreSchemaError(f"a migration from schema version {step.from_version} is already registered")
    MIGRATIONS[step.from_version] = step
    return step


async def read_version(db: Database, table_prefix: str) -> int | None:
    """The stamped schema version, or ``None`` when the version table or its row is missing."""
    sql = db.dialect.render(f"SELECT version FROM {table_prefix}{VERSION_TABLE} WHERE id = 1")
    try:
        row = await db.fetchone(sql)
    except StoreConnectError:
        raise
    except StoreError:
        return None  # no version table: a fresh database (or another prefix's)
    return None if row is None else int(row[0])


async def missing_tables(db: Database, table_prefix: str) -> list[str]:
    """Prefixed names of the tables that are absent or lack a column this code uses."""
    missing: list[str] = []
    for table in TABLES:
        name = f"{table_prefix}{table.name}"
        try:
            probe = f"SELECT {', '.join(table.column_names)} FROM {name} WHERE 1 = 0"
            await db.fetchall(db.dialect.render(probe))
        except StoreConnectError:
            raise
        except StoreError:
            missing.append(name)
    return missing


async def ensure_schema(
    db: Database,
    table_prefix: str,
    policy: SchemaPolicy,
    *,
    target_version: int = SCHEMA_VERSION,
    steps: Mapping[int, MigrationStep] | None = None,
) -> int:
    """Bring the schema under ``table_prefix`` to ``target_version`` as ``policy`` allows.

    Args:
        db: The open database.
        table_prefix: A validated table prefix.
        policy: ``AUTO_CREATE`` (create/migrate/stamp) or ``VERIFY`` (check only).
        target_version: The version the code needs (tests pass a higher one).
        steps: Migration steps by ``from_version``; default ``MIGRATIONS``.

    Returns:
        The version the database is at afterwards (``target_version``).

    Raises:
        StoreSchemaError: ``store.schema`` — newer than ``target_version`` (untouched);
            under VERIFY missing, incomplete or older (``.ddl`` is the script); a missing
            migration step.
    """
    steps = MIGRATIONS if steps is None else steps
    script = ddl(db.dialect, table_prefix)
    for attempt in range(_ATTEMPTS + 1):
        version = await read_version(db, table_prefix)
        _refuse_newer(version, target_version, table_prefix)
        if policy is SchemaPolicy.VERIFY:
            return await _verify(db, table_prefix, version, target_version, script)
        if version == target_version or attempt == _ATTEMPTS:
            break
        try:
            if version is None:
                await _provision(db, table_prefix, script)
            else:
                await _migrate(db, table_prefix, version, target_version, steps, script)
        except StoreConnectError:
            raise
        except StoreError:
            # A concurrent creator or migrator won a race (e.g. PostgreSQL's duplicate
            # type on CREATE TABLE IF NOT EXISTS); re-read the version and go again.
            if attempt == _ATTEMPTS - 1:
                raise
    if version != target_version:
        raise StoreSchemaError(
            f"schema under prefix {table_prefix!r} is at version {version} after {_ATTEMPTS} attempts"
            f" to provision version {target_version}"
        )
    return target_version


def _refuse_newer(version: int | None, target: int, table_prefix: str) -> None:
    if version is not None and version > target:
        raise StoreSchemaError(
            f"database schema under prefix {table_prefix!r} is version {version}, newer than this code's"
            f" {target}: upgrade power-loop; the database was not changed"
        )


async def _verify(db: Database, table_prefix: str, version: int | None, target: int,
                  script: list[str]) -> int:
    where = f"under prefix {table_prefix!r}"
    if version is None:
        raise StoreSchemaError(
            f"no power-loop schema {where} and schema='verify' creates nothing: apply this script"
            " or open the store with schema='auto_create'",
            ddl=script,
        )
    if version < target:
        raise StoreSchemaError(
            f"database schema {where} is version {version}, older than this code's {target}:"
            " open the store once with schema='auto_create' to migrate it",
            ddl=script,
        )
    absent = await missing_tables(db, table_prefix)
    if absent:
        raise StoreSchemaError(
            f"schema {where} is incomplete (missing or outdated: {', '.join(absent)}): apply this script"
            " (it only creates what is missing) or open the store with schema='auto_create'",
            ddl=script,
        )
    return version


@asynccontextmanager
async def _locked_transaction(db: Database, table_prefix: str) -> AsyncIterator[Transaction]:
    """A transaction holding the dialect's schema lock for ``table_prefix``, if it has one."""
    lock = getattr(db.dialect, "schema_lock", None)
    async with db.transaction() as tx:
        if lock is None:
            yield tx
            return
        acquire, release = lock(table_prefix)
        row = await tx.fetchone(acquire)
        if row is not None and row[0] == 0:  # GET_LOCK's timeout; PostgreSQL's lock returns void
            raise StoreError(f"timed out waiting for the schema lock of prefix {table_prefix!r}")
        try:
            yield tx
        finally:
            if release is not None:
                await tx.fetchone(release)


async def _provision(db: Database, table_prefix: str, script: list[str]) -> None:
    async with _locked_transaction(db, table_prefix) as tx:
        if await read_version_in(tx, db.dialect, table_prefix) is not None:
            return  # a concurrent creator finished first; the caller re-reads the version
        for statement in script:
            await tx.execute(statement)


async def read_version_in(tx: Transaction, dialect: Dialect, table_prefix: str) -> int | None:
    """The stamped version read inside ``tx``, or ``None`` when there is no version table yet.

    Probes the catalog-free way (a failing ``SELECT`` would abort a PostgreSQL
    transaction): only after the version table exists is its row read.
    """
    table = f"{table_prefix}{VERSION_TABLE}"
    await tx.execute(version_table_ddl(table_prefix))
    row = await tx.fetchone(dialect.render(f"SELECT version FROM {table} WHERE id = 1"))
    return None if row is None else int(row[0])


async def _migrate(db: Database, table_prefix: str, version: int, target: int,
                   steps: Mapping[int, MigrationStep], script: list[str]) -> None:
    missing = [v for v in range(version, target) if v not in steps]
    if missing:
        raise StoreSchemaError(
            f"no migration step registered from schema version {missing[0]} (database under prefix"
            f" {table_prefix!r} is at {version}, code needs {target})"
        )
    dialect = db.dialect
    table = f"{table_prefix}{VERSION_TABLE}"
    async with _locked_transaction(db, table_prefix) as tx:
        locked_read = f"SELECT version FROM {table} WHERE id = 1{dialect.lock_suffix()}"
        row = await tx.fetchone(dialect.render(locked_read))
        if row is None or int(row[0]) != version:
            return  # another process migrated meanwhile; the caller re-reads the version
        for v in range(version, target):
            for statement in steps[v].statements(dialect, table_prefix):
                await tx.execute(statement)
        # New tables and indexes of the target version; the stamp in the script is an
        # insert-or-ignore, so the fenced update below is what moves the version.
        for statement in script[:-1]:
            await tx.execute(statement)
        updated = await tx.execute(
            dialect.render(f"UPDATE {table} SET version = ? WHERE id = 1 AND version = ?"), (target, version)
        )
        if updated != 1:
            raise StoreError(f"schema version under prefix {table_prefix!r} changed during migration")


def _add_session_leases(dialect: Dialect, table_prefix: str) -> list[str]:
    return table_ddl(dialect, SESSION_LEASES, table_prefix)


register_migration(MigrationStep(
    from_version=1, description="add <prefix>session_leases (per-session leases)",
    statements=_add_session_leases,
))
